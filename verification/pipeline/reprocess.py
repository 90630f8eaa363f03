"""Reprocessing with newer extractors: analyse a preserved original again, add a record.

The older record and its custody events stay as they were; the new record is for the current
pipeline version. Each submission's claims are checked again.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from verification.analysis import AnalysisJob, AnalysisPool, FileFailed
from verification.core.claims import Claims, parse_time
from verification.core.hashing import hash_stream
from verification.core.text import printable
from verification.ledger.models import Item, Submission
from verification.pipeline.batch import analysis_pool
from verification.pipeline.context import Context
from verification.pipeline.dedupe import CollectionIndex
from verification.pipeline.layout import case_of, pipeline_version, vault_key
from verification.pipeline.model import FAILED, Analysis, Outcome, reason, with_analysis
from verification.pipeline.preservation import (
    PreservationError,
    collection_problem,
    store_derivatives,
)
from verification.pipeline.record import record_reanalysis
from verification.storage import ObjectInfo, StoreError

log = logging.getLogger(__name__)


def stale_items(ctx: Context) -> list[str]:
    """Items whose newest record came from an older pipeline version (or that have none)."""
    version = pipeline_version()
    with Session(ctx.engine) as session:
        query = select(Item.sha256).where(
            (Item.record_version != version) | (Item.record_version.is_(None))
        )
        return list(session.scalars(query.order_by(Item.sha256)))


def reprocess_items(ctx: Context, items: list[str], *, workers: int | None = None) -> list[Outcome]:
    """:func:`reprocess_item` for each item with one set of analysis workers.

    An original that cannot be read (or no longer matches its SHA-256) is that item's ``failed``
    outcome, with the reason; the others go on.
    """
    if not items:
        return []
    size = max(1, min(workers or ctx.settings.workers, len(items)))
    outcomes = []
    index = CollectionIndex(ctx.engine)
    with analysis_pool(ctx.settings, size) as pool:
        for sha in items:
            try:
                outcomes.append(reprocess_item(ctx, sha, pool, index))
            except (StoreError, OSError) as exc:
                log.error("cannot reprocess %s: %s", sha[:12], printable(reason(exc)))
                outcomes.append(Outcome(sha, sha, FAILED, error=reason(exc)))
    return outcomes


def reprocess_item(
    ctx: Context,
    sha: str,
    pool: AnalysisPool | None = None,
    index: CollectionIndex | None = None,
) -> Outcome:
    """Analyse the preserved original again with the current extractors and record it.

    Raises :class:`PreservationError` when the vault copy no longer matches its SHA-256 (the
    fixity check records that); returns a ``failed`` outcome when the analysis cannot finish.
    """
    if pool is None:
        with analysis_pool(ctx.settings, 1) as own:
            return reprocess_item(ctx, sha, own, index)
    with Session(ctx.engine) as session:
        subs = list(
            session.scalars(
                select(Submission)
                .where(Submission.item_sha256 == sha, Submission.state == "processed")
                .order_by(Submission.id)
            )
        )
    if not subs:
        return Outcome(sha, sha, FAILED, error="item has no processed submission to reprocess")
    outcome = Outcome(sha, sha, FAILED, error="nothing was reprocessed")
    with tempfile.TemporaryDirectory(prefix="evidence-") as tmp:
        working = Path(tmp) / "original"
        with ctx.store.open(vault_key(sha)) as source, working.open("wb") as sink:
            digests = hash_stream(source, sink)
        if digests.sha256 != sha:
            msg = f"vault copy of {sha[:12]} no longer matches its SHA-256; run the fixity check"
            raise PreservationError(msg)
        for sub in subs:
            info = ObjectInfo(
                key=sub.store_key,
                size=digests.size,
                etag=sub.etag,
                last_modified=sub.received_at.replace(tzinfo=sub.received_at.tzinfo or UTC),
                version_id=sub.version_id,
                metadata=_collection_metadata(ctx, sha, sub.id),
            )
            claims = _claims(sub.claims) or Claims(case_of(sub.store_key))
            job = AnalysisJob(str(working), sub.store_key, claims, info.last_modified)
            result = pool.analyse(job)
            if isinstance(result, FileFailed):
                return Outcome(sub.store_key, sha, FAILED, error=result.reason)
            base = Analysis(sub.store_key, info, claims, digests, None, {"outcome": "success"})
            derivatives = store_derivatives(ctx.store, sha, result.derivatives)
            problem = collection_problem(info, digests)
            analysis = with_analysis(base, result, derivatives, (problem,) if problem else ())
            recorded = record_reanalysis(ctx, analysis, sub.id, index)
            outcome = replace(recorded, key=subs[0].store_key)
    return outcome


def _collection_metadata(ctx: Context, sha: str, submission_id: int) -> dict[str, str]:
    """The hash at collection a submission's ingestion event recorded, as object metadata."""
    for event in ctx.ledger.events(sha):
        detail = event.detail
        if event.type == "ingestion" and detail.get("submission") == submission_id:
            sent = str(detail.get("collection_sha256") or "")
            return {"sha256": sent.removeprefix("sha256:")} if sent else {}
    return {}


def _claims(data: Mapping[str, Any] | None) -> Claims | None:
    if not data:
        return None
    value = data.get("time")
    return Claims(**{**data, "time": parse_time(value) if value else None})
