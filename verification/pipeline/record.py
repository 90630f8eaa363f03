"""The recording side: items, submissions, records and custody events in the ledger database.

Runs in the process that owns the batch, one submission at a time, after the store side
(:mod:`verification.pipeline.preserve`) and the analysis (:mod:`verification.analysis`). Every
write is idempotent: a step that already left its custody event is not repeated, a submission
(key + ETag) already processed is returned as it was.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC
from typing import Any, Literal

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from verification.claims import Claims
from verification.db import DuplicateLink, Item, ItemFinding, Record, Submission, utcnow
from verification.findings import Finding, derive_status
from verification.pipeline.context import Context
from verification.pipeline.dedupe import dedupe
from verification.pipeline.layout import case_of, pipeline_version, vault_key
from verification.pipeline.model import FAILED, Analysis, Outcome
from verification.storage import ObjectInfo
from verification.text import printable

log = logging.getLogger(__name__)


def record_analysis(ctx: Context, analysis: Analysis) -> Outcome:
    """Write what a worker found into the ledger and the database; idempotent."""
    if analysis.info is not None:
        existing = processed_outcome(ctx, analysis.info)
        if existing is not None:
            return existing
    if analysis.info is None or analysis.digests is None:
        return _record_failed_read(ctx, analysis)
    sha = analysis.digests.sha256
    submission_id = _upsert_item_and_submission(ctx, analysis)
    _record_preservation(ctx, analysis, submission_id)
    if analysis.error:
        return _record_quarantine(ctx, analysis, submission_id)
    record_analysis_events(ctx, analysis)
    duplicates = dedupe(ctx, analysis)
    status = write_record(ctx, analysis, submission_id, duplicates)
    with Session(ctx.engine) as session, session.begin():
        sub = session.get(Submission, submission_id)
        assert sub is not None
        sub.state, sub.processed_at, sub.error = "processed", utcnow(), None
        _supersede_failures(session, analysis.key, submission_id)
    return outcome_of(ctx, analysis.key, sha, status)


def _supersede_failures(session: Session, key: str, submission_id: int) -> None:
    """Earlier failed attempts at the same key stay on record, marked as retried."""
    earlier = session.scalars(
        select(Submission).where(
            Submission.store_key == key,
            Submission.state == "failed",
            Submission.id != submission_id,
        )
    )
    for failed in earlier:
        failed.state = "retried"


def is_processed(ctx: Context, info: ObjectInfo) -> bool:
    """Whether this submission (key + ETag) was already recorded."""
    with Session(ctx.engine) as session:
        found = session.scalar(
            select(Submission.id).where(
                Submission.store_key == info.key,
                Submission.etag == info.etag,
                Submission.state == "processed",
                Submission.item_sha256.is_not(None),
            )
        )
    return found is not None


def recorded_outcomes(ctx: Context, keys: Sequence[str]) -> list[Outcome]:
    """What the ledger says about each key (its newest submission), without touching the store.

    ``pending`` when the key was never attempted, ``failed`` with the reason when the newest
    attempt could not be processed.
    """
    latest: dict[str, Submission] = {}
    with Session(ctx.engine) as session:
        for start in range(0, len(keys), 500):
            chunk = list(keys[start : start + 500])
            for sub in session.scalars(
                select(Submission).where(Submission.store_key.in_(chunk)).order_by(Submission.id)
            ):
                latest[sub.store_key] = sub
        found = {k: (s.state, s.item_sha256, s.error) for k, s in latest.items()}
    outcomes = []
    for key in keys:
        state, sha, error = found.get(key, ("pending", None, None))
        if state == "processed" and sha:
            outcomes.append(outcome_of(ctx, key, sha, _item_status(ctx, sha)))
        else:
            outcomes.append(
                Outcome(key, None, FAILED if state == "failed" else "pending", error=error)
            )
    return outcomes


def current(ctx: Context, outcome: Outcome) -> Outcome:
    """``outcome`` with its item's status and findings as the ledger has them now.

    A later submission can change an earlier one's item (a resubmission, a near-duplicate), so
    a batch reports every outcome as it stands at the end, whatever the order of recording.
    """
    if outcome.item is None or outcome.failed:
        return outcome
    return outcome_of(ctx, outcome.key, outcome.item, _item_status(ctx, outcome.item))


def _item_status(ctx: Context, sha: str) -> str:
    with Session(ctx.engine) as session:
        item = session.get(Item, sha)
        return item.status if item else "pending"


def processed_outcome(ctx: Context, info: ObjectInfo) -> Outcome | None:
    with Session(ctx.engine) as session:
        sub = session.scalar(
            select(Submission).where(
                Submission.store_key == info.key,
                Submission.etag == info.etag,
                Submission.state == "processed",
            )
        )
        if sub is None or sub.item_sha256 is None:
            return None
        item = session.get(Item, sub.item_sha256)
        assert item is not None
        sha, status = item.sha256, item.status
    # A second session inside the first would wait for SQLite's write lock held by the first.
    return outcome_of(ctx, info.key, sha, status)


def outcome_of(ctx: Context, key: str, sha: str, status: str) -> Outcome:
    with Session(ctx.engine) as session:
        item = session.get(Item, sha)
        codes = session.scalars(
            select(ItemFinding.code).where(
                ItemFinding.item_sha256 == sha, ItemFinding.severity != "info"
            )
        )
        assert item is not None
        return Outcome(key, sha, status, tuple(sorted(codes)), format=item.format, size=item.size)


def _record_failed_read(ctx: Context, analysis: Analysis) -> Outcome:
    """A submission whose bytes could not be read: kept as ``failed`` so the next run retries."""
    info = analysis.info
    etag = info.etag if info else "unreadable"
    with Session(ctx.engine) as session, session.begin():
        sub = session.scalar(
            select(Submission).where(Submission.store_key == analysis.key, Submission.etag == etag)
        )
        if sub is None:
            sub = Submission(
                store_key=analysis.key,
                etag=etag,
                version_id=info.version_id if info else None,
                case_id=case_of(analysis.key),
                claims={},
                received_at=info.last_modified if info else utcnow(),
            )
            session.add(sub)
        sub.state, sub.error = "failed", analysis.error
    log.warning("could not read %s: %s", printable(analysis.key), analysis.error)
    return Outcome(analysis.key, None, "failed", error=analysis.error)


def _upsert_item_and_submission(ctx: Context, analysis: Analysis) -> int:
    info, digests, claims = analysis.info, analysis.digests, analysis.claims
    assert info is not None and digests is not None
    claims = claims or Claims(case_of(analysis.key))
    fmt = analysis.format or {
        "format": "unknown",
        "mime": "application/octet-stream",
        "kind": "unknown",
    }
    with Session(ctx.engine) as session, session.begin():
        if session.get(Item, digests.sha256) is None:
            session.add(
                Item(
                    sha256=digests.sha256,
                    size=digests.size,
                    sha1=digests.sha1,
                    md5=digests.md5,
                    format=fmt["format"],
                    mime=fmt["mime"],
                    kind=fmt["kind"],
                    vault_key=vault_key(digests.sha256),
                    vault_version=analysis.vault_version,
                    first_seen=info.last_modified,
                    case_id=claims.case_id,
                    submitter=claims.submitter,
                    status="pending",
                )
            )
            session.flush()
        sub = session.scalar(
            select(Submission).where(Submission.store_key == info.key, Submission.etag == info.etag)
        )
        if sub is None:
            sub = Submission(store_key=info.key, etag=info.etag)
            session.add(sub)
        sub.version_id = info.version_id
        sub.item_sha256 = digests.sha256
        sub.case_id = claims.case_id
        sub.submitter = claims.submitter
        sub.claims = claims.to_dict()
        sub.received_at = info.last_modified
        sub.state = "recording"
        sub.error = None
        session.flush()
        return sub.id


def _record_preservation(ctx: Context, analysis: Analysis, submission_id: int) -> None:
    info, digests = analysis.info, analysis.digests
    assert info is not None and digests is not None
    sha, agents = digests.sha256, ctx.agents
    claims = analysis.claims.to_dict() if analysis.claims else {}
    ctx.ledger.append(
        sha,
        "ingestion",
        "success",
        {
            "submission": submission_id,
            "source": f"{ctx.store.url}/{info.key}",
            "etag": info.etag,
            "version_id": info.version_id,
            "received_at": info.last_modified.astimezone(UTC).isoformat(),
            "claims": claims,
            "vault_key": vault_key(sha),
            "vault_version": analysis.vault_version,
        },
        step_key=f"ingestion:{info.key}:{info.etag}",
        agents=agents,
    )
    ctx.ledger.append(
        sha,
        "message digest calculation",
        "success",
        {**digests.labelled(), "size": digests.size},
        step_key="digest",
        agents=agents,
    )
    vault = dict(analysis.vault_check)
    outcome = vault.pop("outcome", "not-run")
    ctx.ledger.append(
        sha,
        "fixity check",
        outcome,
        {"stage": "preservation", **vault},
        step_key=f"preservation:{info.key}:{info.etag}",
        agents=agents,
    )


def record_analysis_events(ctx: Context, analysis: Analysis) -> None:
    assert analysis.digests is not None
    sha, agents, version = analysis.digests.sha256, ctx.agents, pipeline_version()
    tools = [
        {"type": "software", "name": k, "version": v}
        for k, v in sorted(analysis.extractors.items())
    ]
    ctx.ledger.append(
        sha,
        "format identification",
        "success",
        dict(analysis.format),
        step_key="format",
        agents=agents,
    )
    unreadable = any(f.code == "unreadable" for f in analysis.item_findings)
    ctx.ledger.append(
        sha,
        "metadata extraction",
        "failure" if unreadable else "success",
        {
            "pipeline_version": version,
            "media": dict(analysis.media),
            "findings": [f.to_dict() for f in analysis.item_findings],
        },
        step_key=f"extraction:{version}",
        agents=[*agents, *tools],
    )
    for derivative in analysis.derivatives:
        ctx.ledger.append(
            sha,
            "creation",
            "success",
            {
                "derivative": derivative["key"],
                "sha256": derivative["sha256"],
                "mime": derivative["mime"],
            },
            step_key=f"derivative:{derivative['key']}:{derivative['sha256']}",
            agents=[*agents, {"type": "software", "name": derivative["tool"]}],
        )


def _record_quarantine(ctx: Context, analysis: Analysis, submission_id: int) -> Outcome:
    assert analysis.digests is not None and analysis.info is not None
    sha = analysis.digests.sha256
    reason = analysis.error or "unreadable"
    ctx.ledger.append(
        sha,
        "quarantine",
        "warning",
        {"reason": reason, "stage": analysis.error_stage, "submission": submission_id},
        step_key=f"quarantine:{analysis.info.key}:{analysis.info.etag}",
        agents=ctx.agents,
    )
    finding = Finding("unreadable", "warning", reason, {"stage": analysis.error_stage})
    failed = replace(analysis, item_findings=(finding,), claim_findings=())
    status = write_record(ctx, failed, submission_id, [])
    with Session(ctx.engine) as session, session.begin():
        sub = session.get(Submission, submission_id)
        assert sub is not None
        sub.state, sub.processed_at, sub.error = "processed", utcnow(), reason
        _supersede_failures(session, analysis.key, submission_id)
    return outcome_of(ctx, analysis.key, sha, status)


def write_record(
    ctx: Context, analysis: Analysis, submission_id: int, duplicates: list[dict[str, Any]]
) -> str:
    """Create or update the item's record for this pipeline version; returns the status."""
    assert analysis.digests is not None and analysis.info is not None
    sha, version = analysis.digests.sha256, pipeline_version()
    with Session(ctx.engine) as session, session.begin():
        record = session.scalar(
            select(Record).where(Record.item_sha256 == sha, Record.pipeline_version == version)
        )
        data = dict(record.data) if record else _new_record(analysis, version)
        data["submissions"] = _merge_submission(
            data.get("submissions", []), analysis, submission_id
        )
        data["duplicates"] = _linked_duplicates(session, sha, duplicates)
        findings = _all_findings(data)
        status, reasons = derive_status(findings)
        data.update(findings=[f.to_dict() for f in findings], status=status, status_reasons=reasons)
        if record is None:
            session.add(
                Record(
                    item_sha256=sha,
                    pipeline_version=version,
                    created_at=utcnow(),
                    status=status,
                    data=data,
                )
            )
        else:
            record.data, record.status = data, status
        _update_item_summary(session, sha, data, findings, version)
    _record_validation(ctx, analysis, submission_id, status, reasons, findings)
    return status


def _new_record(analysis: Analysis, version: str) -> dict[str, Any]:
    assert analysis.digests is not None
    return {
        "item": analysis.digests.sha256,
        "pipeline_version": version,
        "hashes": analysis.digests.to_dict(),
        "format": dict(analysis.format),
        "media": dict(analysis.media),
        "metadata": dict(analysis.metadata),
        "raw": dict(analysis.raw),
        "perceptual": dict(analysis.perceptual),
        "derivatives": [dict(d) for d in analysis.derivatives],
        "item_findings": [f.to_dict() for f in analysis.item_findings],
        "extractors": dict(analysis.extractors),
    }


def _merge_submission(
    existing: list[dict[str, Any]], analysis: Analysis, submission_id: int
) -> list[dict[str, Any]]:
    assert analysis.info is not None
    entry = {
        "id": submission_id,
        "key": analysis.key,
        "etag": analysis.info.etag,
        "received_at": analysis.info.last_modified.astimezone(UTC).isoformat(),
        "claims": analysis.claims.to_dict() if analysis.claims else {},
        "geolocation": dict(analysis.geolocation),
        "findings": [f.to_dict() for f in analysis.claim_findings],
    }
    kept = [s for s in existing if s.get("id") != submission_id]
    return sorted([*kept, entry], key=lambda s: (s["received_at"], s["id"]))


def _linked_duplicates(
    session: Session, sha: str, fresh: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    links = session.execute(
        select(DuplicateLink, Item.first_seen, Item.case_id)
        .join(Item, Item.sha256 == DuplicateLink.other_sha256)
        .where(DuplicateLink.item_sha256 == sha)
    ).all()
    out = [
        {
            "item": link.other_sha256,
            "kind": link.kind,
            "distance": link.distance,
            "first_seen": first_seen.astimezone(UTC).isoformat()
            if first_seen.tzinfo
            else first_seen.replace(tzinfo=UTC).isoformat(),
            "case_id": case_id,
        }
        for link, first_seen, case_id in links
    ]
    return sorted(out, key=lambda d: (d["first_seen"], d["distance"]))


def _all_findings(data: Mapping[str, Any]) -> list[Finding]:
    findings = [Finding.from_dict(f) for f in data.get("item_findings", [])]
    submissions = data.get("submissions", [])
    for sub in submissions:
        findings.extend(
            Finding.from_dict({**f, "evidence": {**f.get("evidence", {}), "submission": sub["id"]}})
            for f in sub.get("findings", [])
        )
    if len(submissions) > 1:
        first = submissions[0]
        findings.append(
            Finding(
                "exact-duplicate",
                "warning",
                f"the same bytes were submitted {len(submissions)} times; first as {first['key']}",
                {
                    "submissions": [s["id"] for s in submissions],
                    "keys": [s["key"] for s in submissions],
                },
            )
        )
    findings.extend(_duplicate_findings(data.get("duplicates", []), data))
    return findings


def _duplicate_findings(duplicates: list[dict[str, Any]], data: Mapping[str, Any]) -> list[Finding]:
    if not duplicates:
        return []
    earliest = duplicates[0]
    mine = data.get("submissions", [{}])[0].get("received_at", "")
    older = earliest["first_seen"] < mine
    message = (
        f"near-duplicate of {len(duplicates)} item(s); earliest copy {earliest['item'][:12]} "
        f"seen {earliest['first_seen'][:10]} in case {earliest['case_id']}"
    )
    return [
        Finding(
            "near-duplicate",
            "warning",
            message + (" (older than this submission)" if older else ""),
            {
                "earliest": earliest["item"],
                "matches": [d["item"] for d in duplicates],
                "older": older,
            },
        )
    ]


def _update_item_summary(
    session: Session, sha: str, data: Mapping[str, Any], findings: list[Finding], version: str
) -> None:
    item = session.get(Item, sha)
    assert item is not None
    geo = (data.get("submissions") or [{}])[0].get("geolocation", {})
    place = geo.get("place") or {}
    item.status = data["status"]
    item.capture_time = geo.get("capture_time") or (data.get("metadata") or {}).get(
        "datetime_original"
    )
    item.place = ", ".join(p for p in (place.get("name"), place.get("country_code")) if p) or None
    item.record_version = version
    session.execute(delete(ItemFinding).where(ItemFinding.item_sha256 == sha))
    severities: dict[str, str] = {}
    for f in findings:
        severities.setdefault(f.code, f.severity)
    for code, severity in severities.items():
        session.add(ItemFinding(item_sha256=sha, code=code, severity=severity))


def _record_validation(
    ctx: Context,
    analysis: Analysis,
    submission_id: int,
    status: str,
    reasons: list[str],
    findings: list[Finding],
) -> None:
    assert analysis.digests is not None and analysis.info is not None
    outcome: Literal["success", "warning"] = "success" if status == "consistent" else "warning"
    ctx.ledger.append(
        analysis.digests.sha256,
        "validation",
        outcome,
        {
            "pipeline_version": pipeline_version(),
            "submission": submission_id,
            "status": status,
            "status_reasons": reasons,
            "findings": sorted({f.code for f in findings}),
        },
        step_key=f"validation:{pipeline_version()}:{analysis.info.key}:{analysis.info.etag}",
        agents=ctx.agents,
    )
