"""Analyst review: the queue of items to look at, decisions, access to originals, case summaries.

Decisions are custody events (type ``review``), never edits of the record: the pipeline's
findings stay as they were, a reversal is one more event, and the whole history verifies like
any other chain. Queue filtering, sorting and paging run in the database so the queue stays fast
on hundreds of thousands of items. No Airflow import: the review UI plugin, the CLI and
notebooks all call these functions.
"""

from __future__ import annotations

import logging
import uuid
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import Engine, Select, and_, func, select
from sqlalchemy.orm import Session

from verification.custody import CustodyEvent
from verification.db import Item, ItemFinding, Submission
from verification.text import printable

if TYPE_CHECKING:
    from verification.pipeline import Context

log = logging.getLogger(__name__)

DECISIONS = ("verified", "disputed", "rejected", "needs-more-work")
STATUSES = ("pending", "consistent", "needs-review", "inconsistent", "unreadable")
MAX_NOTE = 4000
MAX_PURPOSE = 500
MAX_PAGE_SIZE = 200
# The ``destination`` of an export event for a download: the server's temporary path means
# nothing once deleted, and where the browser saves the file is not the server's to know.
DOWNLOAD_DESTINATION = "download from the review UI"
# What a browser is told each export format is (a BagIt package is sent zipped).
EXPORT_MEDIA_TYPES: Mapping[str, str] = {
    "bagit": "application/zip",
    "html": "text/html; charset=utf-8",
    "json": "application/json",
}

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

Decision = Literal["verified", "disputed", "rejected", "needs-more-work"]


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
# Decisions and access


def record_decision(ctx: Context, sha: str, decision: str, note: str, analyst: str) -> CustodyEvent:
    """Record an analyst's decision on an item as a signed ``review`` custody event.

    Every call is a new event (``step_key`` carries a fresh UUID): a reversal never rewrites
    an earlier decision, it follows it in the chain.
    """
    if decision not in DECISIONS:
        msg = f"decision must be one of {', '.join(DECISIONS)}"
        raise ReviewError(msg)
    note = _required_text(note, "note", MAX_NOTE)
    analyst = _required_text(analyst, "analyst", 200)
    _require_item(ctx.engine, sha)
    event = ctx.ledger.append(
        sha,
        "review",
        "success",
        {"decision": decision, "note": note, "analyst": analyst},
        step_key=f"review:{uuid.uuid4()}",
        agents=[_person(analyst)],
    )
    log.info(
        "decision %s on item %s by %s (event #%s)",
        printable(decision),
        sha[:12],
        printable(analyst),
        event.seq,
    )
    return event


def record_access(ctx: Context, sha: str, analyst: str, purpose: str) -> CustodyEvent:
    """Record that ``analyst`` is about to receive the preserved original (type ``access``).

    Call it before the first byte leaves the vault, so no copy exists without its event.
    """
    purpose = _required_text(purpose, "purpose", MAX_PURPOSE)
    analyst = _required_text(analyst, "analyst", 200)
    _require_item(ctx.engine, sha)
    event = ctx.ledger.append(
        sha,
        "access",
        "success",
        {"action": "download original", "purpose": purpose, "analyst": analyst},
        step_key=f"access:{uuid.uuid4()}",
        agents=[_person(analyst)],
    )
    log.info(
        "original of item %s released to %s (event #%s)", sha[:12], printable(analyst), event.seq
    )
    return event


def decisions(events: Sequence[CustodyEvent]) -> list[dict[str, Any]]:
    """The ``review`` events of a chain in order, as plain dicts (time, seq, decision, ...)."""
    return [
        {"time": e.time, "seq": e.seq, "uuid": e.uuid, **dict(e.detail)}
        for e in events
        if e.type == "review"
    ]


def current_decision(events: Sequence[CustodyEvent]) -> dict[str, Any] | None:
    """The latest decision, which is the one in force; None when nobody decided yet."""
    history = decisions(events)
    return history[-1] if history else None


def _required_text(value: str, name: str, limit: int) -> str:
    text = (value or "").strip()
    if not text:
        msg = f"{name} is required"
        raise ReviewError(msg)
    if len(text) > limit:
        msg = f"{name} is longer than {limit} characters"
        raise ReviewError(msg)
    return text


def _person(name: str) -> dict[str, str]:
    return {"type": "person", "name": name}


def _require_item(engine: Engine, sha: str) -> None:
    with Session(engine) as session:
        if session.get(Item, sha) is None:
            msg = f"no item {sha[:64]}"
            raise KeyError(msg)


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


@dataclass(frozen=True, slots=True)
class Download:
    """A case export as one file to send: where it is, its name and its media type."""

    path: Path
    filename: str
    media_type: str


def export_download(
    ctx: Context, case: str, fmt: str, out_dir: Path, analyst: str, *, redact: bool = False
) -> Download:
    """Export ``case`` with :func:`verification.export.export_case` into ``out_dir`` as one file.

    HTML and JSON reports are single files already; a BagIt package is zipped next to it (see
    :func:`zip_bag`). Custody ``export`` events are written by the exporter. Raises
    :class:`ReviewError` for a format or option the caller got wrong and KeyError for an
    unknown case, both before anything is written.
    """
    from verification.export import FORMATS, case_items, export_case
    from verification.intake import SubmitError, check_case_id

    if fmt not in FORMATS:
        msg = f"format must be one of {', '.join(FORMATS)}"
        raise ReviewError(msg)
    if redact and fmt != "bagit":
        msg = "redacted working copies are only part of a BagIt package"
        raise ReviewError(msg)
    analyst = _required_text(analyst, "analyst", 200)
    try:
        check_case_id(case)
    except SubmitError as exc:
        raise KeyError(case[:200]) from exc
    if not case_items(ctx.engine, case):
        raise KeyError(case[:200])
    path = export_case(
        ctx, case, fmt, out_dir, analyst, redact=redact, destination=DOWNLOAD_DESTINATION
    )
    if fmt == "bagit":
        path = zip_bag(path, path.with_name(f"{path.name}.zip"))
    return Download(path, path.name, EXPORT_MEDIA_TYPES[fmt])


def zip_bag(bag: Path, dest: Path) -> Path:
    """Write the directory ``bag`` to the zip file ``dest``; return ``dest``.

    Stored paths are relative to the bag's parent, so unzipping gives the bag directory itself,
    which is what ``evidence verify-export`` checks. Payload files (already compressed media)
    are stored as they are; tag files are deflated.
    """
    with zipfile.ZipFile(dest, "x", zipfile.ZIP_DEFLATED) as archive:
        archive.write(bag, bag.name)
        for path in sorted(bag.rglob("*")):
            name = path.relative_to(bag.parent).as_posix()
            payload = path.is_file() and path.relative_to(bag).parts[0] == "data"
            archive.write(path, name, zipfile.ZIP_STORED if payload else None)
    return dest


__all__ = [
    "DECISIONS",
    "EXPORT_MEDIA_TYPES",
    "CaseSummary",
    "Download",
    "Page",
    "QueueFilters",
    "QueueRow",
    "ReviewError",
    "case_summary",
    "cases",
    "current_decision",
    "decisions",
    "export_download",
    "finding_codes",
    "queue",
    "record_access",
    "record_decision",
    "zip_bag",
]
