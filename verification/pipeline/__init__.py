"""The pipeline layer: submit ─> preserve ─> hash ─> identify ─> extract ─> check ─> dedupe ─>
record, then fixity and reprocessing over the preserved originals.

Owns the flow of a submission through the system, split along the worker boundary:

* submitting files to ``incoming/`` (:mod:`.submission`) and the store layout (:mod:`.layout`);
* the store side (:mod:`.preservation`): read once while hashing, keep write-once in the vault,
  prove the vault copy, store derivatives; it runs in the process that owns the batch;
* the analysis (:mod:`verification.analysis`): in worker processes, bytes in, findings out;
* the recording side (:mod:`.record`, :mod:`.dedupe`): items, submissions, records, duplicate
  links and custody events in the ledger database, one transaction per submission;
* batches (:mod:`.batch`) overlap the three and report (:mod:`.summary`) evidence outcomes apart
  from pipeline failures; :mod:`.reprocess` analyses preserved originals again; :mod:`.fixity`
  re-checks them and writes checkpoints; :mod:`.records` reads an item's results back.

It may import the analysis, duplicates, media, checks, ledger, storage and core layers; the
exports, the review layer, the CLI, the DAGs and the plugin import it, never the other way round.
"""

from __future__ import annotations

from verification.analysis import WorkersUnavailable
from verification.pipeline.batch import (
    FAULT_ENV,
    analysis_pool,
    ingest,
    list_new,
    process_batch,
    process_submission,
)
from verification.pipeline.context import Context, open_context
from verification.pipeline.dedupe import load_index
from verification.pipeline.layout import (
    INCOMING,
    SIDECAR_SUFFIX,
    case_of,
    derivative_key,
    pipeline_version,
    vault_key,
)
from verification.pipeline.model import EVIDENCE_STATUSES, FAILED, REJECTED, Analysis, Outcome
from verification.pipeline.preservation import PreservationError, preserve, read_claims
from verification.pipeline.record import recorded_outcomes
from verification.pipeline.reprocess import reprocess_item, reprocess_items, stale_items
from verification.pipeline.summary import IntakeIncomplete, check_complete, summarise

__all__ = [
    "EVIDENCE_STATUSES",
    "FAILED",
    "FAULT_ENV",
    "INCOMING",
    "REJECTED",
    "SIDECAR_SUFFIX",
    "Analysis",
    "Context",
    "IntakeIncomplete",
    "Outcome",
    "PreservationError",
    "WorkersUnavailable",
    "analysis_pool",
    "case_of",
    "check_complete",
    "derivative_key",
    "ingest",
    "list_new",
    "load_index",
    "open_context",
    "pipeline_version",
    "preserve",
    "process_batch",
    "process_submission",
    "read_claims",
    "recorded_outcomes",
    "reprocess_item",
    "reprocess_items",
    "stale_items",
    "summarise",
    "vault_key",
]
