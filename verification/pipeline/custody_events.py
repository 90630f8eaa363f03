"""The custody events a submission leaves: ingestion, digests, the vault's fixity check, format
identification, metadata extraction, derivatives, quarantine and validation.

Each event has a step key, so writing them again (a retried transaction, a second run) adds none.

Events are staged in the recording transaction (:func:`stage`) and written at its end
(:func:`write_staged`): each item's chain gets one look-up of its steps, one row lock, one read
of its head and one flush, whatever the number of events, in the order they were staged.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC
from typing import Any, Literal

from sqlalchemy.orm import Session

from verification.core.findings import Finding
from verification.ledger.custody import CustodyStep
from verification.pipeline.context import Context
from verification.pipeline.layout import pipeline_version, vault_key
from verification.pipeline.model import Analysis
from verification.pipeline.preservation import collection_check

log = logging.getLogger(__name__)

_STAGED = "evidence.custody.staged"


def stage(session: Session, sha: str, steps: Sequence[CustodyStep]) -> None:
    """Queue ``steps`` for ``sha``'s chain until :func:`write_staged` ends the transaction's
    recording (in order, after those already queued)."""
    staged: dict[str, list[CustodyStep]] = session.info.setdefault(_STAGED, {})
    staged.setdefault(sha, []).extend(steps)


def write_staged(ctx: Context, session: Session) -> None:
    """Append every staged event, item by item (in SHA-256 order: the items' rows are already
    locked by the recording transaction), each item's events in the order they were staged."""
    staged: dict[str, list[CustodyStep]] = session.info.pop(_STAGED, {})
    for sha in sorted(staged):
        ctx.ledger.append_many(sha, staged[sha], session=session)


def record_preservation(
    ctx: Context, session: Session, analysis: Analysis, submission_id: int
) -> None:
    info, digests = analysis.info, analysis.digests
    assert info is not None and digests is not None
    sha, agents = digests.sha256, ctx.agents
    claims = analysis.claims.to_dict() if analysis.claims else {}
    received_at = info.last_modified.astimezone(UTC).isoformat()
    detail: dict[str, Any] = {
        "submission": submission_id,
        "source": f"{ctx.store.url}/{info.key}",
        "etag": info.etag,
        "version_id": info.version_id,
        "received_at": received_at,
        "claims": claims,
        "vault_key": vault_key(sha),
        "vault_version": analysis.vault_version,
    }
    collection = collection_check(info, digests)
    if collection is not None:
        detail["collection_sha256"] = collection["expected"]
    receipt = _receipt_entry(info.metadata, info.key, digests.size, received_at)
    if receipt is not None:
        detail["receipt"] = receipt
    vault = dict(analysis.vault_check)
    outcome = vault.pop("outcome", "not-run")
    steps = [
        CustodyStep("ingestion", "success", detail, f"ingestion:{info.key}:{info.etag}", agents),
        CustodyStep(
            "message digest calculation",
            "success",
            {**digests.labelled(), "size": digests.size},
            "digest",
            agents,
        ),
    ]
    if collection is not None:
        found = dict(collection)
        steps.append(
            CustodyStep(
                "fixity check",
                found.pop("outcome"),
                found,
                f"collection:{info.key}:{info.etag}",
                agents,
            )
        )
    steps.append(
        CustodyStep(
            "fixity check",
            outcome,
            {"stage": "preservation", **vault},
            f"preservation:{info.key}:{info.etag}",
            agents,
        )
    )
    stage(session, sha, steps)


def _receipt_entry(
    metadata: Mapping[str, str], key: str, size: int, received_at: str
) -> dict[str, Any] | None:
    """The receipt's line for this file (the upload page's ``receipt`` reference), if any."""
    reference = metadata.get("receipt")
    if not reference:
        return None
    return {
        "reference": reference[:40],
        "name": metadata.get("submitted-name") or key.rsplit("/", 1)[-1],
        "size": size,
        "sha256": metadata.get("sha256"),
        "received_at": received_at,
    }


def record_analysis_events(ctx: Context, session: Session, analysis: Analysis) -> None:
    """Format identification, metadata extraction and derivative creation events."""
    assert analysis.digests is not None
    sha, agents, version = analysis.digests.sha256, ctx.agents, pipeline_version()
    tools = [
        {"type": "software", "name": k, "version": v}
        for k, v in sorted(analysis.extractors.items())
    ]
    unreadable = any(f.code == "unreadable" for f in analysis.item_findings)
    steps = [
        CustodyStep("format identification", "success", dict(analysis.format), "format", agents),
        CustodyStep(
            "metadata extraction",
            "failure" if unreadable else "success",
            {
                "pipeline_version": version,
                "media": dict(analysis.media),
                "findings": [f.to_dict() for f in analysis.item_findings],
            },
            f"extraction:{version}",
            [*agents, *tools],
        ),
    ]
    steps += [
        CustodyStep(
            "creation",
            "success",
            {
                "derivative": derivative["key"],
                "sha256": derivative["sha256"],
                "mime": derivative["mime"],
            },
            f"derivative:{derivative['key']}:{derivative['sha256']}",
            [*agents, {"type": "software", "name": derivative["tool"]}],
        )
        for derivative in analysis.derivatives
    ]
    stage(session, sha, steps)


def record_validation(
    ctx: Context,
    session: Session,
    analysis: Analysis,
    submission_id: int,
    status: str,
    reasons: list[str],
    findings: list[Finding],
) -> None:
    assert analysis.digests is not None and analysis.info is not None
    outcome: Literal["success", "warning"] = "success" if status == "consistent" else "warning"
    detail = {
        "pipeline_version": pipeline_version(),
        "submission": submission_id,
        "status": status,
        "status_reasons": reasons,
        "findings": sorted({f.code for f in findings}),
    }
    key = f"validation:{pipeline_version()}:{analysis.info.key}:{analysis.info.etag}"
    step = CustodyStep("validation", outcome, detail, key, ctx.agents)
    stage(session, analysis.digests.sha256, [step])


def record_reevaluation(
    ctx: Context,
    session: Session,
    sha: str,
    version: str,
    reason: str,
    cause: Mapping[str, Any],
    previous_status: str,
    data: Mapping[str, Any],
) -> None:
    """The custody event of an item re-evaluated because of another item (a ``validation``).

    ``reason`` is ``new-link`` (a later item linked to this one) or ``linked-item-changed``
    (a linked item's first-seen time, case or capture time changed); ``cause`` names the
    other item (and the link). Appended once per cause (its step key).
    """
    status = data["status"]
    outcome: Literal["success", "warning"] = "success" if status == "consistent" else "warning"
    words = _REEVALUATION_REASONS[reason]
    other = cause["item"]
    if reason == "new-link":
        suffix = cause["kind"]
    else:  # one event per state of the linked item
        state = json.dumps(dict(cause), sort_keys=True, default=str).encode()
        suffix = f"{reason}:{hashlib.sha256(state).hexdigest()[:16]}"
    detail = {
        "re_evaluation": True,
        "reason": words,
        "cause": dict(cause),
        "pipeline_version": version,
        "previous_status": previous_status,
        "status": status,
        "status_reasons": list(data.get("status_reasons", [])),
        "findings": sorted({f["code"] for f in data.get("findings", [])}),
        "earliest_copy": data.get("earliest_copy"),
    }
    key = f"re-evaluation:{version}:{other}:{suffix}"[:200]
    stage(session, sha, [CustodyStep("validation", outcome, detail, key, ctx.agents)])


_REEVALUATION_REASONS = {
    "new-link": "re-evaluation: a later item was linked to this one as a near-duplicate",
    "linked-item-changed": (
        "re-evaluation: a linked item's first-seen time, case or capture time changed "
        "(an earlier submission of it was recorded)"
    ),
}
