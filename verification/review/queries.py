"""The review queue and case views: filtering, sorting and paging in the database, case counts,
and the submissions the pipeline could not process.

Queries only: nothing here writes. They run in the database so the queue stays fast on hundreds
of thousands of items.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, Select, and_, func, select
from sqlalchemy.orm import Session

from verification.ledger.models import Item, ItemFinding, Submission

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)

STATUSES = ("pending", "consistent", "needs-review", "inconsistent", "unreadable")
MAX_PAGE_SIZE = 200

# Sort name -> (column, descending). sha256 breaks ties so pages never overlap.
SORTS: Mapping[str, tuple[Any, bool]] = {
    "-first_seen": (Item.first_seen, True),
    "first_seen": (Item.first_seen, False),
    "-capture_time": (Item.capture_time, True),
    "capture_time": (Item.capture_time, False),
    "status": (Item.status, False),
    "case": (Item.case_id, False),
}
DEFAULT_SORT = "-first_seen"


class ReviewError(ValueError):
    """A decision, access or query the caller asked for cannot be made as asked."""


@dataclass(frozen=True, slots=True)
class QueueFilters:
    """What the analyst narrows the queue to; ``None`` means no restriction.

    ``since`` and ``until`` bound ``first_seen`` (inclusive, exclusive); naive values are UTC.
    """

    case: str | None = None
    status: str | None = None
    finding: str | None = None
    submitter: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    fixity: str | None = None  # "failed": the last fixity check found the original damaged or gone


@dataclass(frozen=True, slots=True)
class QueueRow:
    """One item in the queue with the finding codes (and severities) of its current record."""

    sha256: str
    case_id: str
    submitter: str | None
    status: str
    format: str
    size: int
    first_seen: datetime
    capture_time: str | None
    findings: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Page:
    """One page of the queue and what is needed to link to the others."""

    rows: tuple[QueueRow, ...]
    page: int
    page_size: int
    total: int

    @property
    def pages(self) -> int:
        """Number of pages (at least 1, so "page 1 of 1" reads right for an empty queue)."""
        return max(1, -(-self.total // self.page_size))

    @property
    def has_next(self) -> bool:
        """True when a later page exists."""
        return self.page < self.pages

    @property
    def has_previous(self) -> bool:
        """True when an earlier page exists."""
        return self.page > 1


@dataclass(frozen=True, slots=True)
class CaseSummary:
    """Counts of a case's items per status and per finding code (with the code's severity)."""

    case: str
    items: int
    by_status: Mapping[str, int] = field(default_factory=dict)
    by_finding: Mapping[str, int] = field(default_factory=dict)
    severities: Mapping[str, str] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# The queue


def queue(
    engine: Engine,
    filters: QueueFilters | None = None,
    sort: str = DEFAULT_SORT,
    page: int = 1,
    page_size: int = 50,
) -> Page:
    """One page of items matching ``filters``, sorted by ``sort`` (a key of :data:`SORTS`).

    Filtering, counting, sorting and paging (LIMIT/OFFSET) happen in the database; only the
    page's rows and their finding codes are loaded.
    """
    if sort not in SORTS:
        msg = f"sort must be one of {', '.join(SORTS)}"
        raise ReviewError(msg)
    if page < 1 or not 1 <= page_size <= MAX_PAGE_SIZE:
        msg = f"page must be >= 1 and page_size between 1 and {MAX_PAGE_SIZE}"
        raise ReviewError(msg)
    filters = filters or QueueFilters()
    with Session(engine) as session:
        total = session.scalar(_filtered(select(func.count()).select_from(Item), filters)) or 0
        # Page the keys first (index-only), then load those rows: deep pages stay cheap.
        keys = _ordered(_filtered(select(Item.sha256), filters), sort)
        shas = list(session.scalars(keys.limit(page_size).offset((page - 1) * page_size)))
        loaded = {i.sha256: i for i in session.scalars(select(Item).where(Item.sha256.in_(shas)))}
        items = [loaded[sha] for sha in shas]
        codes = _finding_codes(session, shas)
    rows = tuple(_row(item, codes.get(item.sha256, ())) for item in items)
    return Page(rows, page, page_size, int(total))


def _filtered(query: Select[Any], filters: QueueFilters) -> Select[Any]:
    if filters.finding:
        # A join, not IN/EXISTS: (item, code) is the primary key, so it never duplicates rows,
        # and it lets the planner start from whichever side is more selective.
        query = query.join(
            ItemFinding,
            and_(ItemFinding.item_sha256 == Item.sha256, ItemFinding.code == filters.finding),
        )
    if filters.case:
        query = query.where(Item.case_id == filters.case)
    if filters.status:
        query = query.where(Item.status == filters.status)
    if filters.submitter:
        query = query.where(Item.submitter == filters.submitter)
    if filters.since:
        query = query.where(Item.first_seen >= _utc(filters.since))
    if filters.until:
        query = query.where(Item.first_seen < _utc(filters.until))
    if filters.fixity == "failed":
        query = query.where(Item.fixity.in_(("failure", "missing")))
    elif filters.fixity:
        query = query.where(Item.fixity == filters.fixity)
    return query


def _ordered(query: Select[Any], sort: str) -> Select[Any]:
    column, descending = SORTS[sort]
    if descending:
        return query.order_by(column.desc(), Item.sha256.desc())
    return query.order_by(column.asc(), Item.sha256.asc())


def _finding_codes(session: Session, shas: list[str]) -> dict[str, tuple[tuple[str, str], ...]]:
    found: dict[str, list[tuple[str, str]]] = {}
    if not shas:
        return {}
    query = (
        select(ItemFinding.item_sha256, ItemFinding.code, ItemFinding.severity)
        .where(ItemFinding.item_sha256.in_(shas))
        .order_by(ItemFinding.item_sha256, ItemFinding.code)
    )
    for sha, code, severity in session.execute(query):
        found.setdefault(sha, []).append((code, severity))
    return {sha: tuple(pairs) for sha, pairs in found.items()}


def _row(item: Item, findings: tuple[tuple[str, str], ...]) -> QueueRow:
    return QueueRow(
        sha256=item.sha256,
        case_id=item.case_id,
        submitter=item.submitter,
        status=item.status,
        format=item.format,
        size=item.size,
        first_seen=item.first_seen.replace(tzinfo=item.first_seen.tzinfo or UTC),
        capture_time=item.capture_time,
        findings=findings,
    )


def _utc(moment: datetime) -> datetime:
    """UTC wall time: what the pipeline stores, and what SQLite compares as text."""
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


# ---------------------------------------------------------------------------------------------
# Choices for the filter form, case summaries and exports


def cases(engine: Engine) -> list[str]:
    """Every case id, sorted."""
    with Session(engine) as session:
        return list(session.scalars(select(Item.case_id).distinct().order_by(Item.case_id)))


def finding_codes(engine: Engine) -> list[str]:
    """Every finding code present on some item, sorted."""
    with Session(engine) as session:
        query = select(ItemFinding.code).distinct().order_by(ItemFinding.code)
        return list(session.scalars(query))


def case_summary(engine: Engine, case: str) -> CaseSummary:
    """Counts of ``case``'s items per status and per finding code; raises KeyError if unknown."""
    with Session(engine) as session:
        by_status = dict(
            session.execute(
                select(Item.status, func.count())
                .where(Item.case_id == case)
                .group_by(Item.status)
                .order_by(Item.status)
            ).all()
        )
        if not by_status:
            msg = f"no case {case[:200]}"
            raise KeyError(msg)
        rows = session.execute(
            select(ItemFinding.code, ItemFinding.severity, func.count())
            .join(Item, Item.sha256 == ItemFinding.item_sha256)
            .where(Item.case_id == case)
            .group_by(ItemFinding.code, ItemFinding.severity)
            .order_by(ItemFinding.code)
        ).all()
    by_finding: dict[str, int] = {}
    severities: dict[str, str] = {}
    for code, severity, count in rows:
        by_finding[code] = by_finding.get(code, 0) + count
        severities[code] = severity
    return CaseSummary(case, sum(by_status.values()), by_status, by_finding, severities)


# Submission states that mean the pipeline could not process a file (a retry clears them).
PROBLEM_STATES = ("failed", "rejected")


@dataclass(frozen=True, slots=True)
class Problem:
    """A submission the pipeline could not process, and why (shown to analysts, escaped)."""

    key: str
    case_id: str
    state: str
    error: str | None
    received_at: datetime


@dataclass(frozen=True, slots=True)
class Problems:
    """Unprocessed submissions: how many in all and per case, and the newest ones."""

    total: int
    by_case: Mapping[str, int]
    rows: tuple[Problem, ...]


def intake_problems(engine: Engine, case: str | None = None, limit: int = 100) -> Problems:
    """Submissions whose latest attempt failed (or was rejected), newest first.

    A later successful attempt marks the failed one ``retried``, which clears it from here.
    """
    where = Submission.state.in_(PROBLEM_STATES)
    with Session(engine) as session:
        by_case = dict(
            session.execute(
                select(Submission.case_id, func.count())
                .where(where)
                .group_by(Submission.case_id)
                .order_by(Submission.case_id)
            ).all()
        )
        query = select(Submission).where(where)
        if case:
            query = query.where(Submission.case_id == case)
        rows = tuple(
            Problem(s.store_key, s.case_id, s.state, s.error, _utc(s.received_at))
            for s in session.scalars(
                query.order_by(Submission.received_at.desc(), Submission.id.desc()).limit(limit)
            )
        )
    total = by_case.get(case, 0) if case else sum(by_case.values())
    return Problems(total, by_case, rows)
