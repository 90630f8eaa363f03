"""The recording side: items, submissions, records and custody events in the ledger database.

Runs in the process that owns the batch, in one thread, after the store side
(:mod:`verification.pipeline.preservation`) and the analysis (:mod:`verification.analysis`).

Recording one submission is one database transaction (or part of one shared with the others
ready at the same moment, :func:`record_group`): its item, its submission row, every custody
event, the duplicate links and the record commit together or not at all, so a database that goes
away mid-run leaves nothing half-recorded. The transaction starts by locking the
item's row, so two runs recording the same file serialise; the one that comes second finds the
submission processed and returns what was recorded ("someone else recorded it"), which is not a
failure. Every write is idempotent: a step that already left its custody event is not repeated.
"""

from __future__ import annotations

import functools
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from verification.core.claims import Claims
from verification.core.findings import Finding
from verification.core.text import printable
from verification.ledger.custody import CustodyStep
from verification.ledger.models import (
    Item,
    ItemFinding,
    Submission,
    insert_if_absent,
    reader,
    utcnow,
)
from verification.pipeline.context import Context
from verification.pipeline.custody_events import (
    record_analysis_events,
    record_preservation,
    stage,
    write_staged,
)
from verification.pipeline.dedupe import (
    CollectionIndex,
    find_matches,
    late_matches,
    link_duplicates,
    lock_dedupe,
    lock_items,
)
from verification.pipeline.layout import case_of, vault_key
from verification.pipeline.model import FAILED, REJECTED, Analysis, Outcome
from verification.pipeline.record_data import (
    adopt_earliest_submission,
    item_state,
    reevaluate_linked,
    write_record,
)
from verification.storage import ObjectInfo

log = logging.getLogger(__name__)

T = TypeVar("T")

# A transaction that loses a race (a deadlock PostgreSQL broke, a unique key another run took
# first) or meets a dropped connection is run again from the start: it is one transaction and
# idempotent, so a retry either completes it or finds it done. Past the last attempt the
# submission is reported failed and the next run retries it.
ATTEMPTS = 3
RETRY_DELAY = 0.2
# Placeholder ETag of a submission recorded without one (its HEAD failed, or a rejected key
# that was never listed).
NO_ETAG = "unreadable"
UNLISTED = "unlisted"


def record_analysis(
    ctx: Context, analysis: Analysis, index: CollectionIndex | None = None
) -> Outcome:
    """Record what preservation and analysis learned about one submission, in one transaction.

    A file that defeats the analysis (``analysis.error`` with digests) is quarantined; one that
    could not be read at all is recorded as ``failed``, to be retried. Idempotent. ``index`` is
    the batch's in-memory view of the collection's hashes (one is made when not given).
    """
    if analysis.info is None or analysis.digests is None:
        return record_failure(ctx, analysis.key, analysis.info, analysis.error or "not read")
    existing = processed_outcome(ctx, analysis.info)
    if existing is not None:
        return existing
    index = index or CollectionIndex(ctx.engine)
    matches = [] if analysis.error else find_matches(ctx, analysis, index)
    carried: set[str] = set()  # items committed since the matches, over every attempt

    def work(session: Session) -> Outcome:
        lock_dedupe(session)  # first, before any row lock: recorders that link items take turns
        late = functools.partial(late_matches, ctx, session, analysis, index, carried)
        outcome = _record(ctx, session, analysis, matches, late)
        write_staged(ctx, session)
        return outcome

    return in_transaction(ctx, work)


def record_group(
    ctx: Context, analyses: Sequence[Analysis], index: CollectionIndex
) -> list[Outcome]:
    """Record several analysed submissions (each read, with digests) in one transaction, in
    the order given; their outcomes in that order.

    What each item gets is what :func:`record_analysis` would give it: the transaction takes
    the dedupe lock once, catches ``index`` up with items committed since the matches were
    found, and matches each submission also against the items recorded before it in the
    group (visible in the transaction, not yet in ``index``: a group that rolls back leaves
    ``index`` as it was). Not retried: whatever the transaction raises propagates, nothing of
    the group is recorded, and the caller records the submissions one at a time (so one that
    cannot be recorded fails alone).
    """
    index.update()  # once: the transaction's catch-up then names every item committed since
    matches = [[] if a.error else find_matches(ctx, a, index, update=False) for a in analyses]
    with Session(ctx.engine, expire_on_commit=False) as session, session.begin():
        lock_dedupe(session)
        fresh = index.refresh(session)  # before this transaction writes: committed items only
        outcomes: list[Outcome] = []
        for analysis, found in zip(analyses, matches, strict=True):
            assert analysis.digests is not None
            sha = analysis.digests.sha256
            since = (fresh | {o.item for o in outcomes if o.item}) - {sha}
            late = functools.partial(_matches_among, ctx, session, analysis, index, since)
            outcomes.append(_record(ctx, session, analysis, found, late))
        write_staged(ctx, session)
        return outcomes  # as each stood when recorded; the batch reads them all again at its end


def _matches_among(
    ctx: Context, session: Session, analysis: Analysis, index: CollectionIndex, items: set[str]
) -> list[dict[str, Any]]:
    """Matches of ``analysis`` among ``items`` only, as ``session`` sees them."""
    if not items:
        return []
    return find_matches(ctx, analysis, index, session=session, only=items)


def record_reanalysis(
    ctx: Context, analysis: Analysis, submission_id: int, index: CollectionIndex | None = None
) -> Outcome:
    """Record a new analysis of an item's preserved original (reprocessing), in one transaction."""
    assert analysis.digests is not None
    sha = analysis.digests.sha256
    index = index or CollectionIndex(ctx.engine)
    matches = find_matches(ctx, analysis, index)
    carried: set[str] = set()  # items committed since the matches, over every attempt

    def work(session: Session) -> Outcome:
        lock_dedupe(session)
        lock_items(session, [sha, *(m["item"] for m in matches)])
        before = item_state(session, sha)
        record_analysis_events(ctx, session, analysis)
        late = functools.partial(late_matches, ctx, session, analysis, index, carried)
        _link_and_write(ctx, session, analysis, submission_id, matches, late, before)
        write_staged(ctx, session)
        return _outcome(session, analysis.key, sha)

    return in_transaction(ctx, work)


def in_transaction(ctx: Context, work: Callable[[Session], T]) -> T:
    """``work`` in one transaction, run again (up to :data:`ATTEMPTS`) after a lost race or a
    dropped connection; the last error propagates."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            with Session(ctx.engine, expire_on_commit=False) as session, session.begin():
                return work(session)
        except (IntegrityError, OperationalError) as exc:
            if attempt == ATTEMPTS:
                raise
            log.debug("recording transaction retried (%s): %s", attempt, type(exc).__name__)
            time.sleep(RETRY_DELAY * attempt * random.uniform(1, 2))  # noqa: S311 (jitter)
    raise AssertionError("unreachable")  # pragma: no cover


def _record(
    ctx: Context,
    session: Session,
    analysis: Analysis,
    matches: list[dict[str, Any]],
    late: Callable[[], list[dict[str, Any]]],
) -> Outcome:
    """One submission in ``session`` (the dedupe lock held); its custody events are staged for
    the caller's :func:`write_staged`. ``late`` finds the matches committed since ``matches``."""
    info, digests = analysis.info, analysis.digests
    assert info is not None and digests is not None
    sha = digests.sha256
    _insert_item(session, analysis)
    _hold(session, session.get(Item, sha))
    lock_items(session, [sha, *(m["item"] for m in matches)])
    done = _processed_submission(session, info)
    if done is not None and done.item_sha256:  # someone else recorded it meanwhile
        return _outcome(session, info.key, done.item_sha256)
    before = item_state(session, sha)
    sub = _claim_submission(session, analysis)
    adopt_earliest_submission(session, sha)
    record_preservation(ctx, session, analysis, sub.id)
    if analysis.error:
        _record_quarantine(ctx, session, analysis, sub.id)
        reevaluate_linked(ctx, session, sha, [], before)
    else:
        record_analysis_events(ctx, session, analysis)
        _link_and_write(ctx, session, analysis, sub.id, matches, late, before)
    sub.item_sha256 = sha
    sub.state, sub.processed_at, sub.error = "processed", utcnow(), analysis.error
    _supersede_failures(session, info.key, sub.id)
    return _outcome(session, info.key, sha)


def _hold(session: Session, row: object) -> None:
    """Keep ``row`` loaded until the transaction ends: the session's identity map holds clean
    rows weakly, so each later ``session.get`` of an item would read it again (six times per
    recorded item)."""
    session.info.setdefault("evidence.held", []).append(row)


def _link_and_write(
    ctx: Context,
    session: Session,
    analysis: Analysis,
    submission_id: int,
    matches: list[dict[str, Any]],
    late_found: Callable[[], list[dict[str, Any]]],
    before: tuple[Any, ...] | None,
) -> None:
    """Links (with those only visible under the dedupe lock), the record, and the re-evaluation
    of every item the links or this item's new first-seen time affect."""
    assert analysis.digests is not None
    sha = analysis.digests.sha256
    late = late_found()
    if late:
        lock_items(session, [m["item"] for m in late])
    new = link_duplicates(session, sha, analysis.perceptual, [*matches, *late])
    write_record(ctx, session, analysis, submission_id)
    reevaluate_linked(ctx, session, sha, new, before)


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
    with Session(reader(ctx.engine)) as session:
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
    attempt could not be processed, ``rejected`` with the reason when the key was refused.
    """
    latest: dict[str, Submission] = {}
    with Session(reader(ctx.engine)) as session:
        for start in range(0, len(keys), 500):
            chunk = [stored_key(k) for k in keys[start : start + 500]]
            for sub in session.scalars(
                select(Submission).where(Submission.store_key.in_(chunk)).order_by(Submission.id)
            ):
                latest[sub.store_key] = sub
        found = {k: (s.state, s.item_sha256, s.error) for k, s in latest.items()}
    outcomes = []
    for key in keys:
        state, sha, error = found.get(stored_key(key), ("pending", None, None))
        if state == "processed" and sha:
            outcomes.append(Outcome(key, sha, "pending"))  # as the ledger has it: just below
        elif state in (FAILED, REJECTED):
            outcomes.append(Outcome(key, None, state, error=error))
        else:
            outcomes.append(Outcome(key, None, "pending", error=error))
    return current(ctx, outcomes)


def current(ctx: Context, outcomes: Sequence[Outcome]) -> list[Outcome]:
    """``outcomes`` with their items' status and findings as the ledger has them now (read
    together, a few hundred items per query).

    A later submission can change an earlier one's item (a resubmission, a near-duplicate), so
    a batch reports every outcome as it stands at the end, whatever the order of recording.
    """
    shas = sorted({o.item for o in outcomes if o.item is not None and not o.failed})
    items: dict[str, tuple[str, str, int]] = {}
    codes: dict[str, set[str]] = {sha: set() for sha in shas}
    with Session(reader(ctx.engine)) as session:
        for start in range(0, len(shas), 500):
            chunk = shas[start : start + 500]
            rows = session.execute(
                select(Item.sha256, Item.status, Item.format, Item.size).where(
                    Item.sha256.in_(chunk)
                )
            )
            items.update({sha: (status, fmt, size) for sha, status, fmt, size in rows})
            found = session.execute(
                select(ItemFinding.item_sha256, ItemFinding.code).where(
                    ItemFinding.item_sha256.in_(chunk), ItemFinding.severity != "info"
                )
            )
            for sha, code in found:
                codes[sha].add(code)
    now = []
    for outcome in outcomes:
        if outcome.item is None or outcome.failed:
            now.append(outcome)
            continue
        if outcome.item not in items:  # recorded, then its item row went away: never "done"
            error = f"recorded, but item {outcome.item[:12]} is missing from the ledger"
            now.append(Outcome(outcome.key, None, FAILED, error=error))
            continue
        status, fmt, size = items[outcome.item]
        findings = tuple(sorted(codes[outcome.item]))
        now.append(Outcome(outcome.key, outcome.item, status, findings, format=fmt, size=size))
    return now


def processed_outcome(ctx: Context, info: ObjectInfo) -> Outcome | None:
    """The recorded outcome of this submission (key + ETag), or None when not processed."""
    with Session(reader(ctx.engine)) as session:
        sub = _processed_submission(session, info)
        if sub is None or sub.item_sha256 is None:
            return None
        return _outcome(session, info.key, sub.item_sha256)


def _outcome(session: Session, key: str, sha: str) -> Outcome:
    """The outcome of ``key`` as ``session`` sees its item (inside a transaction: before commit)."""
    session.flush()
    item = session.get(Item, sha)
    assert item is not None
    codes = session.scalars(
        select(ItemFinding.code).where(
            ItemFinding.item_sha256 == sha, ItemFinding.severity != "info"
        )
    )
    return Outcome(key, sha, item.status, tuple(sorted(codes)), format=item.format, size=item.size)


def _processed_submission(session: Session, info: ObjectInfo) -> Submission | None:
    return session.scalar(
        select(Submission).where(
            Submission.store_key == info.key,
            Submission.etag == info.etag,
            Submission.state == "processed",
        )
    )


def record_failure(ctx: Context, key: str, info: ObjectInfo | None, error: str) -> Outcome:
    """A submission the pipeline could not process: kept as ``failed`` so the next run retries.

    Never overwrites a processed submission: when another run recorded it meanwhile, its
    recorded outcome is returned instead.
    """

    def work(session: Session) -> Outcome | None:
        etag = info.etag if info else NO_ETAG
        values: dict[str, Any] = {
            "store_key": stored_key(key),
            "etag": etag,
            "version_id": info.version_id if info else None,
            "case_id": case_of(key)[:200],
            "claims": {},
            "received_at": info.last_modified if info else utcnow(),
            "state": FAILED,
        }
        insert_if_absent(session, Submission, values, ("store_key", "etag"))
        sub = session.scalar(
            select(Submission)
            .where(Submission.store_key == stored_key(key), Submission.etag == etag)
            .with_for_update()
        )
        assert sub is not None
        if sub.state == "processed" and sub.item_sha256:
            return _outcome(session, key, sub.item_sha256)
        sub.state, sub.error = FAILED, error
        return None

    recorded = in_transaction(ctx, work)
    if recorded is not None:
        return recorded
    log.warning("could not process %s: %s", printable(key), printable(error))
    return Outcome(key, None, FAILED, error=error)


def record_rejection(ctx: Context, info: ObjectInfo, error: str) -> bool:
    """Record that this object (key + ETag) is refused, with why; True when this call did.

    The bytes are left as they are under ``incoming/``; the listing skips a rejected object
    from then on (until a new ETag appears under its key).
    """

    def work(session: Session) -> bool:
        values: dict[str, Any] = {
            "store_key": stored_key(info.key),
            "etag": info.etag,
            "version_id": info.version_id,
            "case_id": case_of(stored_key(info.key))[:200],
            "claims": {},
            "received_at": info.last_modified,
            "processed_at": utcnow(),
            "state": REJECTED,
            "error": error,
        }
        inserted = insert_if_absent(session, Submission, values, ("store_key", "etag"))
        sub = session.scalar(
            select(Submission)
            .where(Submission.store_key == stored_key(info.key), Submission.etag == info.etag)
            .with_for_update()
        )
        assert sub is not None
        if not inserted and sub.state == REJECTED:
            return False  # another run recorded it
        sub.state, sub.error, sub.processed_at = REJECTED, error, utcnow()
        _supersede_failures(session, sub.store_key, sub.id)
        return True

    recorded = in_transaction(ctx, work)
    if recorded:
        log.warning("rejected %s: %s", printable(info.key), printable(error))
    return recorded


def rejected_outcome(ctx: Context, key: str, error: str) -> Outcome:
    """The outcome of a refused key: its recorded rejection, recorded now if the listing did not.

    A key given directly (not found by :func:`~verification.pipeline.batch.list_new`) has no
    known ETag; it is recorded under ``unlisted``.
    """
    with Session(reader(ctx.engine)) as session:
        recorded = session.scalar(
            select(Submission.error)
            .where(Submission.store_key == stored_key(key), Submission.state == REJECTED)
            .order_by(Submission.id.desc())
            .limit(1)
        )
    if recorded is None:
        now = utcnow()
        record_rejection(ctx, ObjectInfo(key=key, size=0, etag=UNLISTED, last_modified=now), error)
    return Outcome(key, None, REJECTED, error=recorded or error)


def stored_key(key: str) -> str:
    """``key`` as the submissions table can hold it: PostgreSQL text refuses NUL, and a
    refused key may be longer than the column."""
    return key.replace("\x00", "\\x00")[:1024]


def _insert_item(session: Session, analysis: Analysis) -> None:
    """The item's row, unless it exists; first seen with this submission."""
    info, digests = analysis.info, analysis.digests
    assert info is not None and digests is not None
    claims = analysis.claims or Claims(case_of(analysis.key))
    fmt = analysis.format or {
        "format": "unknown",
        "mime": "application/octet-stream",
        "kind": "unknown",
    }
    values = {
        "sha256": digests.sha256,
        "size": digests.size,
        "sha1": digests.sha1,
        "md5": digests.md5,
        "format": fmt["format"],
        "mime": fmt["mime"],
        "kind": fmt["kind"],
        "vault_key": vault_key(digests.sha256),
        "vault_version": analysis.vault_version,
        "first_seen": info.last_modified,
        "case_id": claims.case_id,
        "submitter": claims.submitter,
        "status": "pending",
        "fixity": "success",
    }
    insert_if_absent(session, Item, values, ("sha256",))


def _claim_submission(session: Session, analysis: Analysis) -> Submission:
    """This submission's row (key + ETag), created or taken over from a failed attempt."""
    info, digests, claims = analysis.info, analysis.digests, analysis.claims
    assert info is not None and digests is not None
    claims = claims or Claims(case_of(analysis.key))
    values = {
        "store_key": info.key,
        "etag": info.etag,
        "case_id": claims.case_id,
        "claims": claims.to_dict(),
        "received_at": info.last_modified,
        "state": "recording",
    }
    insert_if_absent(session, Submission, values, ("store_key", "etag"))
    sub = session.scalar(
        select(Submission)
        .where(Submission.store_key == info.key, Submission.etag == info.etag)
        .with_for_update()
    )
    assert sub is not None
    sub.version_id = info.version_id
    sub.item_sha256 = digests.sha256
    sub.case_id = claims.case_id
    sub.submitter = claims.submitter
    sub.claims = claims.to_dict()
    sub.received_at = info.last_modified
    sub.state, sub.error = "recording", None
    session.flush()
    return sub


def _record_quarantine(
    ctx: Context, session: Session, analysis: Analysis, submission_id: int
) -> None:
    assert analysis.digests is not None and analysis.info is not None
    sha = analysis.digests.sha256
    reason = analysis.error or "unreadable"
    detail = {"reason": reason, "stage": analysis.error_stage, "submission": submission_id}
    key = f"quarantine:{analysis.info.key}:{analysis.info.etag}"
    stage(session, sha, [CustodyStep("quarantine", "warning", detail, key, ctx.agents)])
    finding = Finding("unreadable", "warning", reason, {"stage": analysis.error_stage})
    failed = replace(analysis, item_findings=(finding,), claim_findings=())
    write_record(ctx, session, failed, submission_id)
