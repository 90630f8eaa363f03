"""What the queue shows of each item at a glance, what a case holds, and what a case export
would reveal of other cases.

Queries over one page of items (never the whole collection), so the cost does not grow with the
number of items.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from verification.ledger.models import Record, Submission


@dataclass(frozen=True, slots=True)
class Glance:
    """One queue row's extras: original filename, submissions and cases, claim gaps."""

    filename: str | None
    submitter: str | None
    case_id: str | None
    submissions: int
    cases: int
    gap_km: float | None
    gap_hours: float | None


@dataclass(frozen=True, slots=True)
class CaseSubmission:
    """One submission made to a case (what the case page lists)."""

    id: int
    item: str | None
    filename: str
    submitter: str | None
    received_at: datetime
    state: str


@dataclass(frozen=True, slots=True)
class Exposure:
    """What exporting a case would also reveal: other cases' submissions of its items."""

    cases: tuple[str, ...]
    items: int
    submissions: int
    submitters: int
    notes: int

    @property
    def any(self) -> bool:
        """True when the export would carry something from another case."""
        return self.submissions > 0


def filename(key: str) -> str:
    """The original file name: the last part of the object key it arrived under."""
    return key.rsplit("/", 1)[-1]


def glances(
    engine: Engine,
    shas: Sequence[str],
    case: str | None = None,
    visible: frozenset[str] | None = None,
) -> dict[str, Glance]:
    """Extras of the given items; with ``case``, the filename, submitter and gaps are that
    case's; with ``visible`` (per-case access), they come from visible cases only."""
    if not shas:
        return {}
    with Session(engine) as session:
        subs = session.execute(
            select(
                Submission.id,
                Submission.item_sha256,
                Submission.case_id,
                Submission.store_key,
                Submission.submitter,
            )
            .where(Submission.item_sha256.in_(shas))
            .order_by(Submission.id)
        ).all()
        records: dict[str, Any] = dict(
            session.execute(
                select(Record.item_sha256, Record.data).where(
                    Record.id.in_(
                        select(func.max(Record.id))
                        .where(Record.item_sha256.in_(shas))
                        .group_by(Record.item_sha256)
                    )
                )
            ).all()
        )
    by_item: dict[str, list[Any]] = {}
    for row in subs:
        by_item.setdefault(row.item_sha256, []).append(row)
    return {
        sha: _glance(by_item.get(sha, []), records.get(sha) or {}, case, visible) for sha in shas
    }


def _glance(
    subs: list[Any], record: Mapping[str, Any], case: str | None, visible: frozenset[str] | None
) -> Glance:
    chosen = [s for s in subs if s.case_id == case] if case else subs
    if visible is not None:
        chosen = [s for s in chosen if s.case_id in visible]
    first = chosen[0] if chosen else None
    ids = {s.id for s in chosen}
    gaps = [g for g in (_gaps(s) for s in record.get("submissions", [])) if g[0] in ids]
    km = [g[1] for g in gaps if g[1] is not None]
    hours = [g[2] for g in gaps if g[2] is not None]
    return Glance(
        filename=filename(first.store_key) if first else None,
        submitter=first.submitter if first else None,
        case_id=first.case_id if first else None,
        submissions=len(subs),
        cases=len({s.case_id for s in subs}),
        gap_km=max(km) if km else None,
        gap_hours=max(hours) if hours else None,
    )


def _gaps(sub: Mapping[str, Any]) -> tuple[Any, float | None, float | None]:
    """(submission id, km between claimed and observed place, hours between the times)."""
    geo, claims = sub.get("geolocation") or {}, sub.get("claims") or {}
    km = geo.get("distance_km")
    return (
        sub.get("id"),
        km if isinstance(km, int | float) else None,
        time_gap(claims.get("time"), geo.get("capture_time")),
    )


def time_gap(claimed: Any, captured: Any) -> float | None:
    """Hours between a claimed and an observed time (ISO 8601; naive means UTC)."""
    try:
        a, b = _moment(str(claimed)), _moment(str(captured))
    except ValueError:
        return None
    if claimed is None or captured is None:
        return None
    hours = abs((a - b).total_seconds()) / 3600
    return round(hours, 2) if math.isfinite(hours) else None


def _moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def case_submissions(engine: Engine, case: str, limit: int = 200) -> list[CaseSubmission]:
    """Submissions made to ``case``, newest first (at most ``limit``)."""
    with Session(engine) as session:
        rows = session.scalars(
            select(Submission)
            .where(Submission.case_id == case)
            .order_by(Submission.received_at.desc(), Submission.id.desc())
            .limit(limit)
        )
        return [
            CaseSubmission(
                s.id,
                s.item_sha256,
                filename(s.store_key),
                s.submitter,
                s.received_at.replace(tzinfo=s.received_at.tzinfo or UTC),
                s.state,
            )
            for s in rows
        ]


def exposure(engine: Engine, case: str) -> Exposure:
    """Other cases' submissions of the items ``case`` holds: what its export would include."""
    in_case = select(Submission.item_sha256).where(
        Submission.case_id == case, Submission.item_sha256.is_not(None)
    )
    with Session(engine) as session:
        rows = session.execute(
            select(
                Submission.case_id, Submission.item_sha256, Submission.submitter, Submission.claims
            ).where(Submission.case_id != case, Submission.item_sha256.in_(in_case))
        ).all()
    return Exposure(
        cases=tuple(sorted({r.case_id for r in rows})),
        items=len({r.item_sha256 for r in rows}),
        submissions=len(rows),
        submitters=len({r.submitter for r in rows if r.submitter}),
        notes=sum(1 for r in rows if _has_note(r.claims)),
    )


def _has_note(claims: Any) -> bool:
    return isinstance(claims, Mapping) and bool(claims.get("note"))


def latest_record(engine: Engine, sha: str) -> Mapping[str, Any] | None:
    """The newest verification record of an item, or None (what a thumbnail request needs,
    without the chain check of a full report)."""
    with Session(engine) as session:
        data = session.scalar(
            select(Record.data).where(Record.item_sha256 == sha).order_by(Record.id.desc()).limit(1)
        )
    return data if isinstance(data, Mapping) else None
