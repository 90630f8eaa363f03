"""An item's verification record for the current pipeline version: what it holds, the findings
of every submission, duplicates and the status they imply, and the item's summary row."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from verification.core.findings import Finding, derive_status
from verification.ledger.models import (
    DuplicateLink,
    Item,
    ItemFinding,
    Record,
    utcnow,
)
from verification.pipeline.context import Context
from verification.pipeline.custody_events import record_validation
from verification.pipeline.layout import pipeline_version
from verification.pipeline.model import Analysis

log = logging.getLogger(__name__)


def write_record(ctx: Context, session: Session, analysis: Analysis, submission_id: int) -> str:
    """Create or update the item's record for this pipeline version in ``session`` (the item
    locked); returns the status."""
    assert analysis.digests is not None and analysis.info is not None
    sha, version = analysis.digests.sha256, pipeline_version()
    session.flush()  # the duplicate links written just before are read back below
    record = session.scalar(
        select(Record).where(Record.item_sha256 == sha, Record.pipeline_version == version)
    )
    data = dict(record.data) if record else _new_record(analysis, version)
    data["submissions"] = _merge_submission(data.get("submissions", []), analysis, submission_id)
    data["duplicates"] = _linked_duplicates(session, sha)
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
    record_validation(ctx, session, analysis, submission_id, status, reasons, findings)
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


def _linked_duplicates(session: Session, sha: str) -> list[dict[str, Any]]:
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
