"""Batches: list what is new, then preserve, analyse and record each submission.

Three kinds of work overlap in one batch: store I/O (reading, hashing and preserving each
submission) in a few threads, analysis in worker processes (:mod:`verification.analysis`), and
recording in the calling thread, of the submissions ready when it is free: together in one
transaction when there are several (up to :data:`RECORD_GROUP`), in ``keys`` order.

What a batch reports never hides a failure: a submission is either recorded with an evidence
status (``unreadable`` included: quarantined with its reason), ``rejected`` (its key is refused:
recorded once with the reason, never retried) or ``failed`` (the store, the database or the
workers let it down; nothing was decided and the next run tries it again). When the analysis
workers cannot run at all, :class:`WorkersUnavailable` is raised.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from verification.analysis import (
    AnalysisJob,
    AnalysisOptions,
    AnalysisPool,
    FileFailed,
    WorkersUnavailable,
)
from verification.analysis.pool import warm_pool
from verification.core.config import Settings
from verification.core.text import printable
from verification.ledger.models import (
    ListingCursor,
    Submission,
    insert_if_absent,
    reader,
    utcnow,
)
from verification.pipeline.context import Context
from verification.pipeline.dedupe import CollectionIndex, batch_index, scan_collection
from verification.pipeline.layout import INCOMING, SIDECAR_SUFFIX
from verification.pipeline.model import (
    FAILED,
    REJECTED,
    Analysis,
    Outcome,
    reason,
    with_analysis,
)
from verification.pipeline.preservation import fetch_and_preserve, store_derivatives
from verification.pipeline.record import (
    current,
    in_transaction,
    is_processed,
    processed_outcome,
    record_analysis,
    record_failure,
    record_group,
    record_rejection,
    recorded_outcomes,
    rejected_outcome,
    stored_key,
)
from verification.storage import ObjectInfo, ObjectNotFound, StoreError, key_problem

log = logging.getLogger(__name__)

# Test hook, read here (never by the workers). ``abort:<text>`` and ``hang:<text>`` are handed to
# the workers (see verification.analysis.worker); ``workers-crash:<text>`` makes every worker of a
# batch whose keys contain <text> crash at start-up, as when the environment cannot run them.
FAULT_ENV = "EVIDENCE_TEST_FAULT"

# A listing reads objects modified since the last listing began, less this margin: it covers a
# store clock ahead of ours and uploads that started before and finished after that listing
# (S3 stamps a multipart upload with its start). Once a day the whole prefix is listed again,
# for anything the margin missed: an S3 multipart upload that took longer than the margin, a
# file rewritten in place behind a local store's back. (A file copied into a local store with
# its old modification time kept is new to the listing: it goes by the status-change time.)
LISTING_MARGIN = timedelta(hours=1)
FULL_LISTING_EVERY = timedelta(hours=24)
# Submissions analysed by the time the recorder is free are recorded together, up to this many
# per transaction (verification.pipeline.record.record_group).
RECORD_GROUP = 16


def _injected_fault(keys: Sequence[str]) -> str | None:
    spec = os.environ.get(FAULT_ENV) or ""
    action, _, text = spec.partition(":")
    if action == "workers-crash":
        return "abort:*" if text and any(text in key for key in keys) else None
    return spec or None


def list_new(ctx: Context, case: str | None = None, *, full: bool = False) -> list[ObjectInfo]:
    """Objects under ``incoming/`` not yet processed or rejected (by key + ETag), in first-seen
    order (:func:`first_seen_order`); failed ones come back.

    The listing reads only what is new: objects modified before the prefix's listing cursor
    (less :data:`LISTING_MARGIN`) were seen by an earlier listing, and the failed ones among
    them are found in the ledger. The whole prefix is listed when there is no cursor yet, every
    :data:`FULL_LISTING_EVERY`, or with ``full``.

    An object whose key the store refuses (control characters, ``..``, a backslash: possible on
    S3) is recorded as ``rejected`` here, with the reason, because the listing is the only
    place its ETag is known; it is returned this once, so the batch reports it, and never
    again unless a new ETag appears under the key. Its bytes are not touched.
    """
    prefix = f"{INCOMING}{case}/" if case else INCOMING
    started = utcnow()
    cursor = _listing_cursor(ctx, prefix)
    full = full or cursor is None or started - _aware(cursor[1]) >= FULL_LISTING_EVERY
    since = None if full or cursor is None else _aware(cursor[0]) - LISTING_MARGIN
    listed = [
        info
        for info in ctx.store.list(prefix, modified_since=since)
        if not info.key.endswith(SIDECAR_SUFFIX)
    ]
    if since is not None:
        listed += _failed_before(ctx, prefix, {info.key for info in listed})
    done, failed = _recorded(ctx, [info.key for info in listed])
    new = []
    for info in listed:
        if (stored_key(info.key), info.etag) in done:
            continue
        problem = _key_problem(info.key)
        if problem is not None and not record_rejection(ctx, info, problem):
            continue  # another run rejected it at the same moment and reports it
        new.append(info)
    unrecorded = [info for info in new if stored_key(info.key) not in failed]
    _move_cursor(ctx, prefix, started, unrecorded, full)
    return sorted(new, key=first_seen_order)


def _aware(moment: datetime) -> datetime:
    """SQLite returns naive datetimes: they are UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _listing_cursor(ctx: Context, prefix: str) -> tuple[datetime, datetime] | None:
    with Session(reader(ctx.engine)) as session:
        row = session.get(ListingCursor, prefix)
        return None if row is None else (row.listed_from, row.full_at)


def _move_cursor(
    ctx: Context, prefix: str, started: datetime, new: Sequence[ObjectInfo], full: bool
) -> None:
    """Remember that everything modified before ``started`` was seen, except ``new`` objects
    not recorded at all: the cursor stays at the oldest of them until each is recorded
    (processed, rejected or failed: failed ones are found in the ledger), so a run that dies
    before recording them lists them again."""
    oldest = min((_aware(info.last_modified) for info in new), default=started)
    listed_from = min(started, oldest)

    def work(session: Session) -> None:
        row = session.get(ListingCursor, prefix, with_for_update=True)
        if row is None:
            values = {
                "prefix": prefix,
                "listed_from": listed_from,
                "full_at": started,
                "updated_at": utcnow(),
            }
            insert_if_absent(session, ListingCursor, values, ("prefix",))
            return
        row.listed_from, row.updated_at = listed_from, utcnow()
        if full:
            row.full_at = started

    in_transaction(ctx, work)


def _failed_before(ctx: Context, prefix: str, listed: set[str]) -> list[ObjectInfo]:
    """Failed submissions under ``prefix`` the time-bounded listing left out, as the store
    describes them now (gone from the store: nothing to retry)."""
    with Session(reader(ctx.engine)) as session:
        keys = session.scalars(
            select(Submission.store_key)
            .where(Submission.state == FAILED, Submission.store_key.startswith(prefix))
            .distinct()
        ).all()
    found = []
    for key in sorted(set(keys) - listed):
        if _key_problem(key) is not None:
            continue  # rejected when it was first listed; a failed row under it is older
        try:
            found.append(ctx.store.head(key))
        except ObjectNotFound:
            continue
    return found


def _recorded(ctx: Context, keys: Sequence[str]) -> tuple[set[tuple[str, str]], set[str]]:
    """(key, ETag) of the submissions among ``keys`` that are done (processed or rejected), and
    the keys with a failed submission (retried from the ledger whatever their ETag)."""
    done: set[tuple[str, str]] = set()
    failed: set[str] = set()
    stored = sorted({stored_key(key) for key in keys})
    with Session(reader(ctx.engine)) as session:
        for start in range(0, len(stored), 500):
            # By key alone, so the (store_key, etag) index answers: with a condition on state
            # as well, SQLite may pick the state index and read every processed submission.
            rows = session.execute(
                select(Submission.store_key, Submission.etag, Submission.state).where(
                    Submission.store_key.in_(stored[start : start + 500])
                )
            )
            for key, etag, state in rows:
                if state == FAILED:
                    failed.add(key)
                elif state in ("processed", REJECTED):
                    done.add((key, etag))
    return done, failed


def first_seen_order(info: ObjectInfo) -> tuple[datetime, str]:
    """Sort key of the listing: when the store first saw the object (S3 LastModified, a local
    file's mtime), then the key. Results do not depend on it (links and statuses are the same in
    any order); recording the earliest uploads first only spares re-evaluations."""
    stamp = info.last_modified
    return (stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)), info.key


def _key_problem(key: str) -> str | None:
    """Why the store refuses ``key`` (without repeating the key), or None when it is valid."""
    problem = key_problem(key)
    return None if problem is None else f"object key {problem}"


@contextmanager
def analysis_pool(
    settings: Settings, workers: int, keys: Sequence[str] = ()
) -> Iterator[AnalysisPool]:
    """The analysis workers for a batch of ``keys``, configured from ``settings``: each bounded
    in time (``analysis_timeout`` per file) and address space (``worker_memory_mb``)."""
    with warm_pool(
        AnalysisOptions.from_settings(settings),
        workers,
        timeout=settings.analysis_timeout,
        memory_limit=settings.worker_memory_limit,
        fault=_injected_fault(keys),
    ) as pool:
        yield pool


def process_batch(
    ctx: Context,
    keys: Sequence[str],
    *,
    workers: int | None = None,
    progress: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Process many submissions; one bad file never stops the batch. Outcomes in ``keys`` order.

    A key already processed returns its recorded outcome. Raises
    :class:`~verification.analysis.WorkersUnavailable` when no analysis can run; what was
    recorded before that stays recorded, the rest stays new.
    """
    if not keys:
        return []
    workers = max(1, min(workers or ctx.settings.workers, len(keys)))
    order = {key: i for i, key in enumerate(keys)}
    outcomes: list[Outcome] = []
    index = _Loading(batch_index(ctx))  # the collection's hashes, read once for the batch
    try:
        with (
            analysis_pool(ctx.settings, workers, keys) as pool,
            ThreadPoolExecutor(workers + 1, thread_name_prefix="evidence-io") as io,
        ):
            futures = [io.submit(_prepare, ctx, pool, index, key) for key in keys]
            try:
                index.join()  # recording updates the index: never while it is being loaded
                for ready in _as_ready(futures, RECORD_GROUP):
                    for outcome in _record_ready(ctx, ready, index.index, order):
                        outcomes.append(outcome)
                        if progress:
                            progress(outcome)
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
    except WorkersUnavailable as exc:
        done = {o.key for o in outcomes}
        _record_unanalysed(ctx, [k for k in keys if k not in done], exc)
        raise
    finally:
        index.join()
    _save_index(index.index)
    final = _as_recorded_now(ctx, outcomes)
    return sorted(final, key=lambda o: order.get(o.key, len(order)))


class _Loading:
    """The batch's index, loaded in a thread of its own while the workers start and the first
    files are read (at a million items without a snapshot that is seconds). The I/O threads
    search it ahead only once it is loaded; the recorder waits for the load before it records.
    When the database cannot be read now, each submission meets that when it is recorded (and
    is reported failed)."""

    def __init__(self, index: CollectionIndex) -> None:
        self.index = index
        self.loaded = threading.Event()
        self._thread = threading.Thread(target=self._load, name="evidence-index", daemon=True)
        self._thread.start()

    def _load(self) -> None:
        try:
            self.index.update()
            self.loaded.set()
        except SQLAlchemyError as exc:
            log.warning("could not read the duplicate index yet: %s", reason(exc))
        except Exception:  # our bug: recording meets it again, per submission, and says so
            log.exception("loading the duplicate index failed")

    def ready(self) -> CollectionIndex | None:
        """The index once loaded (None before, or when it could not be)."""
        return self.index if self.loaded.is_set() else None

    def join(self) -> None:
        self._thread.join()


def _save_index(index: CollectionIndex) -> None:
    """Keep the batch's index for the next batch; a cache that cannot be written costs only
    the next batch a full read, so it is logged, not raised."""
    try:
        index.save()
    except (OSError, SQLAlchemyError) as exc:
        log.warning("could not save the duplicate index snapshot: %s", reason(exc))


def _record_unanalysed(ctx: Context, keys: Sequence[str], exc: WorkersUnavailable) -> None:
    """Mark submissions left unanalysed as failed, with why, so analysts see them (the next run
    retries them); submissions recorded earlier are left as they are."""
    why = f"analysis workers unavailable: {exc}"[:500]
    for outcome in recorded_outcomes(ctx, keys):
        if outcome.item is not None:
            continue
        try:
            record_failure(ctx, outcome.key, None, why)
        except Exception as error:  # the database may be what is down; the raise says enough
            log.error("could not record %s as failed: %s", printable(outcome.key), reason(error))


def process_submission(ctx: Context, key: str) -> Outcome:
    """Run every step for one incoming object and return its outcome (idempotent)."""
    return process_batch(ctx, [key], workers=1)[0]


def ingest(
    ctx: Context,
    case: str | None = None,
    *,
    workers: int | None = None,
    progress: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Process everything new under ``incoming/`` (optionally one case)."""
    keys = [info.key for info in list_new(ctx, case)]
    return process_batch(ctx, keys, workers=workers, progress=progress)


def _as_recorded_now(ctx: Context, outcomes: Sequence[Outcome]) -> list[Outcome]:
    """:func:`current`, or ``outcomes`` as they were when the database cannot say (it went
    away)."""
    try:
        return current(ctx, outcomes)
    except SQLAlchemyError:
        return list(outcomes)


class _Done:
    """A submission (key + ETag) that was already processed."""

    def __init__(self, info: ObjectInfo) -> None:
        self.info = info


class _Refused:
    """A key the store refuses: never read, reported as ``rejected`` with why."""

    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        self.problem = problem


def _prepare(
    ctx: Context, pool: AnalysisPool, index: _Loading, key: str
) -> Analysis | _Done | _Refused:
    """Store side, analysis and duplicate search over the loaded collection of one submission
    (runs in an I/O thread)."""
    problem = _key_problem(key)
    if problem is not None:
        return _Refused(key, problem)
    info: ObjectInfo | None = None
    try:
        info = ctx.store.head(key)
        if is_processed(ctx, info):
            return _Done(info)
        return _search_ahead(ctx, index, _preserve_and_analyse(ctx, pool, info))
    except WorkersUnavailable:
        raise
    except (StoreError, OSError, SQLAlchemyError) as exc:
        return Analysis(key, info, error=reason(exc), error_stage="read")
    except Exception as exc:  # our bug, met on this submission: it fails, the batch goes on
        log.exception("preparing %s failed", printable(key))
        return Analysis(key, info, error=f"internal error: {reason(exc)}", error_stage="read")


def _preserve_and_analyse(ctx: Context, pool: AnalysisPool, info: ObjectInfo) -> Analysis:
    key = info.key
    with fetch_and_preserve(ctx.store, info) as kept:
        base = Analysis(key, info, kept.claims, kept.digests, kept.vault_version, kept.vault_check)
        if not kept.intact:
            error = "vault copy does not match the submission"
            return replace(base, error=error, error_stage="preserve")
        result = pool.analyse(AnalysisJob(str(kept.working), key, kept.claims, info.last_modified))
    if isinstance(result, FileFailed):
        return replace(base, error=result.reason, error_stage="analyse")
    derivatives = store_derivatives(ctx.store, kept.digests.sha256, result.derivatives)
    return with_analysis(base, result, derivatives, kept.claim_problems)


def _search_ahead(ctx: Context, loading: _Loading, analysis: Analysis) -> Analysis:
    """The submission's duplicate search over the collection as the batch loaded it, here in
    the I/O thread rather than in the recorder: at a million items that search is the longest
    step of recording. Only a cache: when the index is not loaded yet, or the search fails,
    recording searches everything itself."""
    index = loading.ready()
    if index is None:
        return analysis
    try:
        return scan_collection(ctx, index, analysis)
    except Exception as exc:
        log.warning("searching duplicates ahead failed (%s): searching when recording", reason(exc))
        return analysis


Prepared = Analysis | _Done | _Refused


def _as_ready(futures: Sequence[Future[Prepared]], most: int) -> Iterator[list[Future[Prepared]]]:
    """The futures in groups of those done by the time the previous group was handled (at
    least one, at most ``most``), until every one was given out."""
    pending = set(futures)
    while pending:
        done, pending = wait(pending, return_when=FIRST_COMPLETED)
        ready = list(done)
        for start in range(0, len(ready), most):
            yield ready[start : start + most]


def _record_ready(
    ctx: Context,
    ready: Sequence[Future[Prepared]],
    index: CollectionIndex,
    order: Mapping[str, int],
) -> list[Outcome]:
    """Record prepared submissions, in ``keys`` order: the analysed ones together in one
    transaction when there are several (one at a time when that transaction fails), the rest
    one by one. When the workers became unavailable, what was analysed is recorded first and
    :class:`~verification.analysis.WorkersUnavailable` then propagates."""
    prepared: list[Prepared] = []
    unavailable: WorkersUnavailable | None = None
    for future in ready:
        try:
            prepared.append(future.result())
        except WorkersUnavailable as exc:
            unavailable = exc
    prepared.sort(key=lambda p: order.get(_key_of(p), len(order)))
    group: list[Analysis] = []
    alone: list[Prepared] = []
    for p in prepared:
        if isinstance(p, Analysis) and p.digests and p.info:
            group.append(p)
        else:
            alone.append(p)
    if len(group) < 2:
        alone, group = prepared, []
    outcomes = [_record(ctx, p, index) for p in alone]
    if group:
        outcomes += _record_group(ctx, group, index)
    if unavailable is not None:
        raise unavailable
    return outcomes


def _record_group(ctx: Context, group: list[Analysis], index: CollectionIndex) -> list[Outcome]:
    try:
        return record_group(ctx, group, index)
    except Exception as exc:  # the database, or our bug on one of them: one at a time
        log.warning(
            "recording %d submissions together failed (%s); recording them one at a time",
            len(group),
            printable(reason(exc)),
        )
        log.debug("recording a group failed", exc_info=True)
        return [_record(ctx, analysis, index) for analysis in group]


def _key_of(prepared: Prepared) -> str:
    return prepared.key if isinstance(prepared, Analysis | _Refused) else prepared.info.key


def _record(ctx: Context, prepared: Prepared, index: CollectionIndex) -> Outcome:
    """Record one prepared submission; a database failure is that submission's ``failed``,
    reported in one line (the next run retries it)."""
    key = _key_of(prepared)
    try:
        if isinstance(prepared, _Refused):
            return rejected_outcome(ctx, prepared.key, prepared.problem)
        if isinstance(prepared, _Done):
            done = processed_outcome(ctx, prepared.info)
            if done is not None:
                return done
            prepared = Analysis(key, prepared.info, error="processed record vanished")
        return record_analysis(ctx, prepared, index)
    except SQLAlchemyError as exc:
        log.error("could not record %s: %s", printable(key), printable(reason(exc)))
        log.debug("recording %s failed", printable(key), exc_info=True)
        return Outcome(key, None, FAILED, error=reason(exc))
    except Exception as exc:  # our bug: the traceback is worth having
        log.exception("recording %s failed", printable(key))
        return Outcome(key, None, FAILED, error=f"internal error: {reason(exc)}")
