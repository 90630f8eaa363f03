"""
# Evidence intake

Every few minutes: find new submissions under `incoming/`, preserve and analyse them in batches,
and record every step in the custody ledger.

1. **list_new**: objects under `incoming/` (optionally one case) not yet processed by key + ETag;
   submissions that failed before come back. An object whose key is refused (control
   characters, `..`: possible on S3) is recorded as *rejected* with the reason, once.
2. **make_batches**: lists of at most `batch_size` keys.
3. **process_batch** (mapped, one task per batch): preserve, hash, extract, check, dedupe,
   record, with `EVIDENCE_WORKERS` analysis processes (default: cores, bounded by memory). A file that is
   corrupt, hostile or crashes the analysis is *quarantined*: a recorded result, the batch
   succeeds. A submission the pipeline could not process (store, database or worker failure)
   fails the task, which is retried; its asset event (`evidence://items`) is emitted only when
   the whole batch was recorded.
4. **summary**: reads the ledger for every listed key and reports evidence outcomes (per status
   and finding code, quarantined files, rejected keys) apart from pipeline failures (`failed`,
   `pending`, each with its reason). It fails the run when anything was not processed, so a red
   run always means work is left and `on_failure_callback` alerts; a rejected key is a recorded
   result and does not. No coordinates, ever; keys are escaped in the log.
5. **views** (mapped, one task per batch, after the batches, beside the summary): the review
   pages' full-size view of each new photo (a JPEG's own bytes minus its metadata) and a
   browser-playable WebM proxy of each new video, from the vault copy, each recorded with a
   `creation` custody event. Not on the batches' path: the summary does not wait for it. A
   view that cannot be made (a truncated file) is recorded with the reason; the task fails
   (and is retried) only when the store could not be read or written.

Every step is idempotent: clear and re-run any task and the ledger gains no duplicate.
The store is the `evidence_s3` Connection's bucket (else `EVIDENCE_*`); the ledger is
`EVIDENCE_DATABASE_URL`. Schedule: `EVIDENCE_INTAKE_SCHEDULE` (default every 5 minutes).
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any

from airflow.sdk import Asset, Param, dag, get_current_context, task
from evidence_common import (
    DEFAULT_ARGS,
    notify_failure,
    open_evidence_context,
    printable,
    run_locally,
    schedule,
)

log = logging.getLogger(__name__)

ITEMS = Asset(uri="evidence://items", name="evidence_items")


@dag(
    dag_id="evidence_intake",
    schedule=schedule("intake", "*/5 * * * *"),
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["evidence", "intake"],
    default_args=DEFAULT_ARGS,
    doc_md=__doc__,
    on_failure_callback=notify_failure,
    params={
        "case": Param(
            None, type=["null", "string"], description="Only this case id (empty: every case)."
        ),
        "batch_size": Param(
            50, type="integer", minimum=1, maximum=5000, description="Submissions per batch task."
        ),
    },
)
def evidence_intake() -> None:
    """Find new submissions, process them in mapped batches, summarise."""

    @task
    def list_new(params: dict[str, Any] | None = None) -> list[str]:
        """Keys of new (or previously failed) submissions."""
        from verification import pipeline

        ctx = open_evidence_context(get_current_context())
        keys = [info.key for info in pipeline.list_new(ctx, (params or {}).get("case"))]
        log.info("%s new submission(s) under incoming/", len(keys))
        return keys

    @task
    def make_batches(keys: list[str], params: dict[str, Any] | None = None) -> list[list[str]]:
        """Split the keys into batches of ``batch_size``."""
        size = max(1, int((params or {}).get("batch_size") or 50))
        return [keys[i : i + size] for i in range(0, len(keys), size)]

    @task(outlets=[ITEMS])
    def process_batch(batch: list[str]) -> dict[str, Any]:
        """Preserve, analyse and record one batch; fail (and retry) if any submission could not
        be processed. A bad file is quarantined, never a failure."""
        from verification import pipeline

        ctx = open_evidence_context(get_current_context())
        outcomes = pipeline.process_batch(ctx, batch, workers=ctx.settings.workers)
        report = pipeline.summarise(outcomes)
        log.info(
            "batch: recorded %s, quarantined %s, rejected %s",
            report["recorded"],
            len(report["quarantined"]),
            len(report["rejected"]),
        )
        pipeline.check_complete(report)
        return report

    @task(trigger_rule="all_done")  # also after a failed batch: the report says what is left
    def summary(keys: list[str]) -> dict[str, Any]:
        """Evidence outcomes and pipeline failures of this run, from the ledger; fails the run
        when any listed submission was not processed."""
        from verification import pipeline

        ctx = open_evidence_context(get_current_context())
        report = pipeline.summarise(pipeline.recorded_outcomes(ctx, keys))
        log.info("intake: %s submission(s); recorded %s", report["submissions"], report["recorded"])
        log.info("intake: findings %s", report["findings"])
        for rejected in report["rejected"]:
            log.warning(
                "rejected: %s: %s", printable(rejected["key"]), printable(rejected["reason"])
            )
        for failure in report["failed"]:
            log.error(
                "not processed: %s: %s", printable(failure["key"]), printable(failure["error"])
            )
        pipeline.check_complete(report)
        return report

    @task(trigger_rule="all_done")  # the items a failed batch did record get their views too
    def views(batch: list[str]) -> dict[str, int]:
        """Full-size views of the batch's photos and proxies of its videos, each recorded; fails
        (and is retried) only when the store could not be read or written."""
        from verification import pipeline
        from verification.pipeline import views as item_views

        ctx = open_evidence_context(get_current_context())
        items = [o.item for o in pipeline.recorded_outcomes(ctx, batch) if o.item]
        return item_views.account_views(item_views.make_views(ctx, items), "views")

    keys = list_new()
    batches = make_batches(keys)
    done = process_batch.expand(batch=batches)
    done >> summary(keys)
    done >> views.expand(batch=batches)


dag = evidence_intake()

if __name__ == "__main__":
    sys.exit(run_locally(dag))
