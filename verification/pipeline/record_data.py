"""An item's verification record for the current pipeline version: what it holds, the findings
of every submission, duplicates and the status they imply, and the item's summary row."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import flag_modified

from verification.core.findings import Finding, derive_status
from verification.ledger.models import (
    DuplicateLink,
    Item,
    ItemFinding,
    Record,
    Submission,
    utcnow,
)
from verification.pipeline.context import Context
from verification.pipeline.custody_events import record_reevaluation, record_validation
from verification.pipeline.dedupe import linked_items, lock_items
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
    findings = evaluate(session, sha, data)
    status, reasons = str(data["status"]), list(data["status_reasons"])
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
        flag_modified(record, "data")
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
    # Earliest first, whatever order they were recorded in (ties by key, not by row id).
    return sorted([*kept, entry], key=lambda s: (s["received_at"], s["key"], s["id"]))


def _linked_duplicates(session: Session, sha: str) -> list[dict[str, Any]]:
    """The item's links, one entry per other item (the closest kind), earliest copy first."""
    links = session.execute(
        select(DuplicateLink, Item.first_seen, Item.case_id, Item.capture_time)
        .join(Item, Item.sha256 == DuplicateLink.other_sha256)
        .where(DuplicateLink.item_sha256 == sha)
    ).all()
    best: dict[str, dict[str, Any]] = {}
    for link, first_seen, case_id, capture_time in links:
        entry = {
            "item": link.other_sha256,
            "kind": link.kind,
            "distance": link.distance,
            "first_seen": _utc(first_seen).isoformat(),
            "case_id": case_id,
            "capture_time": capture_time,
            **{name: (link.evidence or {}).get(name) for name in _EVIDENCE_FIELDS},
        }
        current = best.get(link.other_sha256)
        if current is None or _link_rank(entry) < _link_rank(current):
            best[link.other_sha256] = entry
    return sorted(
        best.values(), key=lambda d: _seniority(d["first_seen"], d["capture_time"], d["item"])
    )


_EVIDENCE_FIELDS = ("keyframe", "other_keyframe", "transform", "crop")
_KIND_ORDER = {"near-pdq": 0, "near-pdq-dihedral": 1, "crop-orb": 2}


def _link_rank(entry: Mapping[str, Any]) -> tuple[int, int, str]:
    return _KIND_ORDER.get(entry["kind"], 9), entry["distance"], entry["kind"]


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def _seniority(first_seen: str, capture_time: str | None, item: str) -> tuple[datetime, float, str]:
    """Sort key of the earliest-copy rule: first seen, then capture time (unknown last), then
    SHA-256. A capture time without an offset is taken as UTC (only ties of first-seen times
    reach it)."""
    captured = float("inf")
    if capture_time:
        try:
            captured = _utc(datetime.fromisoformat(capture_time)).timestamp()
        except ValueError:
            captured = float("inf")
    return _utc(datetime.fromisoformat(first_seen)), captured, item


def earliest_copy(
    item: Mapping[str, Any], duplicates: list[dict[str, Any]]
) -> dict[str, Any] | None:
    """The earliest copy among an item and its near-duplicates, and the rule that decided it.

    Earliest first-seen time in this collection; ties broken by capture time, then by
    SHA-256. ``rule`` names the first of these that told the earliest copy from the next one.
    """
    if not duplicates:
        return None
    group = sorted(
        [item, *duplicates], key=lambda d: _seniority(d["first_seen"], d["capture_time"], d["item"])
    )
    first, second = group[0], group[1]
    key_first = _seniority(first["first_seen"], first["capture_time"], first["item"])
    key_second = _seniority(second["first_seen"], second["capture_time"], second["item"])
    rule = "first-seen" if key_first[0] != key_second[0] else "capture-time"
    if key_first[:2] == key_second[:2]:
        rule = "sha256"
    return {
        "item": first["item"],
        "first_seen": first["first_seen"],
        "case_id": first.get("case_id"),
        "rule": rule,
        "this_item": first["item"] == item["item"],
    }


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
    findings.extend(_duplicate_findings(data))
    return findings


def _duplicate_findings(data: Mapping[str, Any]) -> list[Finding]:
    duplicates, earliest = data.get("duplicates") or [], data.get("earliest_copy")
    if not duplicates or not earliest:
        return []
    seen = earliest["first_seen"][:10]
    rule = _RULE_WORDS[earliest["rule"]]
    if earliest["this_item"]:
        where = f"this item is the earliest copy (first seen {seen}; {rule})"
    else:
        where = (
            f"earliest copy {earliest['item'][:12]} first seen {seen} in case "
            f"{earliest['case_id']} ({rule})"
        )
    own = data.get("first_seen") or ""
    older = not earliest["this_item"] and earliest["first_seen"] < own
    return [
        Finding(
            "near-duplicate",
            "warning",
            f"near-duplicate of {len(duplicates)} item(s); {where}",
            {
                "earliest": earliest["item"],
                "earliest_rule": earliest["rule"],
                "this_is_earliest": earliest["this_item"],
                "matches": sorted(d["item"] for d in duplicates),
                "kinds": {d["item"]: d["kind"] for d in duplicates},
                "older": older,
            },
        )
    ]


_RULE_WORDS = {
    "first-seen": "by first-seen time",
    "capture-time": "first seen at the same time; by capture time",
    "sha256": "first seen and captured at the same time; by SHA-256",
}


def evaluate(session: Session, sha: str, data: dict[str, Any]) -> list[Finding]:
    """Duplicates, earliest copy, findings and status of ``data`` (an item's record), in place."""
    item = session.get(Item, sha)
    assert item is not None
    data["first_seen"] = _utc(item.first_seen).isoformat()
    data["duplicates"] = _linked_duplicates(session, sha)
    me = {
        "item": sha,
        "first_seen": data["first_seen"],
        "capture_time": _capture_time(data),
        "case_id": item.case_id,
    }
    data["earliest_copy"] = earliest_copy(me, data["duplicates"])
    findings = _all_findings(data)
    status, reasons = derive_status(findings)
    data.update(findings=[f.to_dict() for f in findings], status=status, status_reasons=reasons)
    return findings


def reevaluate(
    ctx: Context, session: Session, sha: str, reason: str, cause: Mapping[str, Any]
) -> None:
    """Bring an earlier item's newest record up to date after a later item changed its links
    (or a linked item's first-seen time), with a custody event of its own.

    The event is a ``validation`` saying it is a re-evaluation, why, and what changed
    (``cause``: the new link, or the linked item); its step key makes it happen once.
    """
    record = session.scalar(
        select(Record).where(Record.item_sha256 == sha).order_by(Record.id.desc()).limit(1)
    )
    if record is None:
        return
    data, previous = dict(record.data), record.status
    findings = evaluate(session, sha, data)
    record.data, record.status = data, data["status"]
    flag_modified(record, "data")
    _update_item_summary(session, sha, data, findings, record.pipeline_version)
    session.flush()
    record_reevaluation(ctx, session, sha, record.pipeline_version, reason, cause, previous, data)


def _capture_time(data: Mapping[str, Any]) -> str | None:
    geo = (data.get("submissions") or [{}])[0].get("geolocation", {})
    value = geo.get("capture_time") or (data.get("metadata") or {}).get("datetime_original")
    return str(value) if value else None


def _update_item_summary(
    session: Session, sha: str, data: Mapping[str, Any], findings: list[Finding], version: str
) -> None:
    item = session.get(Item, sha)
    assert item is not None
    geo = (data.get("submissions") or [{}])[0].get("geolocation", {})
    place = geo.get("place") or {}
    item.status = data["status"]
    item.capture_time = _capture_time(data)
    item.place = ", ".join(p for p in (place.get("name"), place.get("country_code")) if p) or None
    item.record_version = version
    session.execute(delete(ItemFinding).where(ItemFinding.item_sha256 == sha))
    severities: dict[str, str] = {}
    for f in findings:
        severities.setdefault(f.code, f.severity)
    for code, severity in severities.items():
        session.add(ItemFinding(item_sha256=sha, code=code, severity=severity))


def reevaluate_linked(
    ctx: Context,
    session: Session,
    sha: str,
    new: list[dict[str, Any]],
    before: tuple[Any, ...] | None,
) -> None:
    """Re-evaluate each item newly linked to ``sha``, and every linked item when ``sha``'s
    first-seen time, case or capture time changed (they decide the earliest copy)."""
    for entry in sorted(new, key=lambda e: e["item"]):
        cause = {"item": sha, "kind": entry["kind"], "distance": entry["distance"]}
        reevaluate(ctx, session, entry["item"], "new-link", cause)
    after = item_state(session, sha)
    if before is None or after is None or after == before:
        return
    others = [o for o in linked_items(session, sha) if o not in {e["item"] for e in new}]
    lock_items(session, others)
    first_seen, case_id, capture_time = after
    cause = {
        "item": sha,
        "first_seen": first_seen.isoformat(),
        "case_id": case_id,
        "capture_time": capture_time,
    }
    for other in others:
        reevaluate(ctx, session, other, "linked-item-changed", cause)


def item_state(session: Session, sha: str) -> tuple[Any, ...] | None:
    """What other items' earliest-copy rule reads of this one (None before it is recorded)."""
    session.flush()
    item = session.get(Item, sha)
    if item is None or item.status == "pending":
        return None
    first_seen = item.first_seen
    first_seen = first_seen if first_seen.tzinfo else first_seen.replace(tzinfo=UTC)
    return first_seen.astimezone(UTC), item.case_id, item.capture_time


def adopt_earliest_submission(session: Session, sha: str) -> None:
    """First seen, case and submitter of the item are its earliest submission's (ties by key),
    whatever order the submissions are recorded in."""
    session.flush()
    earliest = session.scalar(
        select(Submission)
        .where(
            Submission.item_sha256 == sha,
            Submission.state.in_(("processed", "recording")),
        )
        .order_by(Submission.received_at, Submission.store_key)
        .limit(1)
    )
    item = session.get(Item, sha)
    if earliest is None or item is None:
        return
    item.first_seen = earliest.received_at
    item.case_id, item.submitter = earliest.case_id, earliest.submitter
