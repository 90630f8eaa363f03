"""What a case export holds of other cases, and how it leaves them out when asked.

An item belongs to every case it was submitted to, so its record names every submission: who
sent it to which case, with which claims and notes. Exporting one case therefore carries the
other cases' submitter identities, claims and notes unless they are left out. Leaving them out
drops those submissions from the records and reports, the findings that compare the file with
their claims, and, in the custody chains, the detail of the events about them: such an event
keeps its sequence number, time, type, agents, hashes and signature (the chain still links) but
its detail says it was withheld, so its own hash can no longer be recomputed from the export. A BagIt package is checked offline event by event, so it cannot withhold anything:
it is refused with that option.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

WITHHELD = "withheld: concerns a submission to another case"


def withhold_other_cases(report: Mapping[str, Any], case: str | Collection[str]) -> dict[str, Any]:
    """``report`` without the submissions of cases other than ``case`` (one, or several): their
    submitters, claims and notes, and the findings that compare the file with those claims."""
    keep = {case} if isinstance(case, str) else set(case)
    kept = [s for s in report.get("submissions", []) if s.get("case_id") in keep]
    ids = {s["id"] for s in kept}
    record = dict(report.get("record") or {})
    record["submissions"] = [s for s in record.get("submissions", []) if s.get("id") in ids]
    record["findings"] = [_scoped(f, ids) for f in record.get("findings", []) if _kept(f, ids)]
    item = dict(report.get("item", {}))
    if item.get("case_id") not in keep:
        item["case_id"] = min(s["case_id"] for s in kept) if kept else None
    return {**report, "item": item, "submissions": kept, "record": record}


def withheld_events(events: Sequence[Any], kept_submissions: Iterable[int]) -> frozenset[int]:
    """Sequence numbers of the events whose detail is about a submission not kept."""
    kept = set(kept_submissions)
    return frozenset(
        e.seq
        for e in events
        if isinstance(e.detail.get("submission"), int) and e.detail["submission"] not in kept
    )


def exported_event(event: Any, withheld: frozenset[int]) -> dict[str, Any]:
    """An event as exported: in full, or (withheld) with its detail replaced by a note, so the
    chain's links (hashes, sequence, signature) stay but the event no longer verifies alone."""
    data: dict[str, Any] = event.to_dict()
    if event.seq in withheld:
        data["detail"] = {"withheld": WITHHELD}
    return data


def _scoped(finding: Mapping[str, Any], ids: set[int]) -> Mapping[str, Any]:
    """A finding about several submissions (the same bytes sent again) without the others."""
    evidence = finding.get("evidence") or {}
    listed = evidence.get("submissions")
    if not isinstance(listed, list) or set(listed) <= ids:
        return finding
    message = (
        f"the same bytes were also submitted {len(set(listed) - ids)} time(s) to other cases "
        "(withheld from this export)"
    )
    return {**finding, "message": message, "evidence": {"submissions": sorted(ids)}}


def _kept(finding: Mapping[str, Any], ids: Iterable[int]) -> bool:
    submission = (finding.get("evidence") or {}).get("submission")
    return submission is None or submission in set(ids)
