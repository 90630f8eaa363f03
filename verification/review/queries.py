"""The review queue and case views: filtering, sorting and paging in the database, case counts,
and the submissions the pipeline could not process.

Queries only: nothing here writes. They run in the database so the queue stays fast on hundreds
of thousands of items.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    ColumnElement,
    Engine,
    Select,
    and_,
    false,
    func,
    select,
    true,
)
from sqlalchemy.orm import Session

from verification.ledger.models import Item, ItemFinding, ItemReview, Submission
from verification.review.filters import (
    in_case,
    in_cases,
    review_conditions,
    search_condition,
    submitted_where,
)

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
# What the sort menu says for each sort name (the names stay in URLs).
SORT_LABELS: Mapping[str, str] = {
    "-first_seen": "Newest first",
    "first_seen": "Oldest first",
    "-capture_time": "Capture time, latest first",
    "capture_time": "Capture time, earliest first",
    "status": "Status (A to Z)",
    "case": "Case of first submission (A to Z)",
}
# Review-state filters: no decision yet, a decision in force, analysts' decisions differ.
REVIEW_FILTERS: Mapping[str, str] = {
    "undecided": "Undecided",
    "decided": "Decided",
    "disagree": "Disputed (analysts disagree)",
}
MAX_LISTED_MATCHES = 5000
MAX_SEARCH = 200


class ReviewError(ValueError):
    """A decision, access or query the caller asked for cannot be made as asked."""


def required_text(value: str, name: str, limit: int) -> str:
    """``value`` stripped; ReviewError when empty or longer than ``limit``."""
    text = (value or "").strip()
    if not text:
        msg = f"{name} is required"
        raise ReviewError(msg)
    if len(text) > limit:
        msg = f"{name} is longer than {limit} characters"
        raise ReviewError(msg)
    return text


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
    review: str | None = None
    assignee: str | None = None
    search: str | None = None
    # The cases the reviewer may see (per-case access); None: every case.
    cases: frozenset[str] | None = None
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
    decision: str | None = None
    disagree: bool = False
    assignee: str | None = None
    fixity: str = "success"  # the last fixity check's outcome (preservation's at first)


# The queue's fixity filter: value -> label.
FIXITY_FILTERS = {"failed": "failed or missing", "success": "verified", "not-run": "could not run"}


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
    reviewed: int = 0
    shared: int = 0


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
    _check_filters(filters)
    with Session(engine) as session:
        found = _resolved(session, filters)
        total = _count(session, filters, found)
        # Past the last page: show the last page (a stale link must not say "page 99 of 1").
        page = min(page, max(1, -(-int(total) // page_size)))
        # Page the keys first (index-only), then load those rows: deep pages stay cheap.
        keys = _ordered(_filtered(select(Item.sha256), filters, found), sort)
        shas = list(session.scalars(keys.limit(page_size).offset((page - 1) * page_size)))
        loaded = {i.sha256: i for i in session.scalars(select(Item).where(Item.sha256.in_(shas)))}
        items = [loaded[sha] for sha in shas]
        codes = _finding_codes(session, shas)
        reviews = {
            r.item_sha256: r
            for r in session.scalars(select(ItemReview).where(ItemReview.item_sha256.in_(shas)))
        }
    rows = tuple(_row(item, codes.get(item.sha256, ()), reviews.get(item.sha256)) for item in items)
    return Page(rows, page, page_size, int(total))


def _count(session: Session, filters: QueueFilters, found: list[ColumnElement[bool]]) -> int:
    """Matching items. "Undecided" is counted as all minus decided: most items are undecided,
    and probing each of them against the decided ones costs far more than counting those."""
    count = select(func.count()).select_from(Item)
    if filters.review != "undecided":
        return int(session.scalar(_filtered(count, filters, found)) or 0)
    everything = session.scalar(_filtered(count, replace(filters, review=None), found)) or 0
    decided = session.scalar(_filtered(count, replace(filters, review="decided"), found)) or 0
    return int(everything) - int(decided)


def _check_filters(filters: QueueFilters) -> None:
    if filters.review and filters.review not in REVIEW_FILTERS:
        msg = f"review must be one of {', '.join(REVIEW_FILTERS)}"
        raise ReviewError(msg)
    if filters.search and len(filters.search) > MAX_SEARCH:
        msg = f"search is longer than {MAX_SEARCH} characters"
        raise ReviewError(msg)


def _resolved(session: Session, filters: QueueFilters) -> list[ColumnElement[bool]]:
    """Search and submitter filters as conditions, their matching keys looked up once (the
    count and the page would each scan the submissions again), or the subquery itself when
    it matches very many items."""
    conditions = []
    if filters.search:
        conditions.append(search_condition(filters.search))
    if filters.submitter is not None:
        needle = filters.submitter.strip().lower()
        by = func.lower(Submission.submitter).contains(needle, autoescape=True)
        conditions.append(Item.sha256.in_(submitted_where(by)) if needle else false())
    resolved = []
    for condition in conditions:
        query = select(Item.sha256).where(condition).limit(MAX_LISTED_MATCHES + 1)
        keys = list(session.scalars(query))
        resolved.append(Item.sha256.in_(keys) if len(keys) <= MAX_LISTED_MATCHES else condition)
    return resolved


def _filtered(
    query: Select[Any], filters: QueueFilters, resolved: list[ColumnElement[bool]] | None = None
) -> Select[Any]:
    query = query.where(*review_conditions(filters.review, filters.assignee), *(resolved or []))
    if filters.cases is not None:
        query = query.where(in_cases(filters.cases))
    if filters.finding:
        # A join, not IN/EXISTS: (item, code) is the primary key, so it never duplicates rows,
        # and it lets the planner start from whichever side is more selective.
        query = query.join(
            ItemFinding,
            and_(ItemFinding.item_sha256 == Item.sha256, ItemFinding.code == filters.finding),
        )
    if filters.case:
        query = query.where(in_case(filters.case))
    if filters.status:
        query = query.where(Item.status == filters.status)
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


def _row(item: Item, findings: tuple[tuple[str, str], ...], review: ItemReview | None) -> QueueRow:
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
        decision=review.decision if review else None,
        disagree=bool(review and review.disagree),
        assignee=review.assignee if review else None,
        fixity=item.fixity,
    )


def _utc(moment: datetime) -> datetime:
    """UTC wall time: what the pipeline stores, and what SQLite compares as text."""
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


# ---------------------------------------------------------------------------------------------
# Choices for the filter form, case summaries and exports


def cases(engine: Engine, visible: frozenset[str] | None = None) -> list[str]:
    """Every case some item was submitted to (of ``visible`` ones, when given), sorted."""
    with Session(engine) as session:
        query = (
            select(Submission.case_id)
            .where(Submission.item_sha256.is_not(None))
            .where(Submission.case_id.in_(visible) if visible is not None else true())
            .distinct()
            .order_by(Submission.case_id)
        )
        return list(session.scalars(query))


def finding_codes(engine: Engine) -> list[str]:
    """Every finding code present on some item, sorted."""
    with Session(engine) as session:
        query = select(ItemFinding.code).distinct().order_by(ItemFinding.code)
        return list(session.scalars(query))


def case_summary(engine: Engine, case: str) -> CaseSummary:
    """Counts of ``case``'s items (every item submitted to it) per status and finding code,
    how many have a decision in force, and how many were also submitted to other cases;
    raises KeyError if unknown."""
    with Session(engine) as session:
        by_status = dict(
            session.execute(
                select(Item.status, func.count())
                .where(in_case(case))
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
            .where(in_case(case))
            .group_by(ItemFinding.code, ItemFinding.severity)
            .order_by(ItemFinding.code)
        ).all()
        reviewed = session.scalar(
            select(func.count())
            .select_from(ItemReview)
            .join(Item, Item.sha256 == ItemReview.item_sha256)
            .where(in_case(case), ItemReview.decision.is_not(None))
        )
        shared = session.scalar(
            select(func.count(func.distinct(Submission.item_sha256))).where(
                Submission.case_id != case,
                Submission.item_sha256.in_(
                    select(Submission.item_sha256).where(Submission.case_id == case)
                ),
            )
        )
    by_finding: dict[str, int] = {}
    severities: dict[str, str] = {}
    for code, severity, count in rows:
        by_finding[code] = by_finding.get(code, 0) + count
        severities[code] = severity
    return CaseSummary(
        case,
        sum(by_status.values()),
        by_status,
        by_finding,
        severities,
        reviewed=int(reviewed or 0),
        shared=int(shared or 0),
    )


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


def intake_problems(
    engine: Engine,
    case: str | None = None,
    limit: int = 100,
    visible: frozenset[str] | None = None,
) -> Problems:
    """Submissions whose latest attempt failed (or was rejected), newest first (of ``visible``
    cases only, when given).

    A later successful attempt marks the failed one ``retried``, which clears it from here.
    """
    where: ColumnElement[bool] = Submission.state.in_(PROBLEM_STATES)
    if visible is not None:
        where = and_(where, Submission.case_id.in_(visible))
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
