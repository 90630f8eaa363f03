"""Near-duplicates across the whole collection: find an item's matches, store its PDQ hashes
and the links (inside the transaction that records the submission).

A batch keeps the collection's PDQ hashes in memory (:class:`CollectionIndex`), loaded once and
brought up to date from ``perceptual_log`` before each item. Whoever stores hashes holds the
dedupe lock (:func:`lock_dedupe`) until its transaction ends, so log ids become visible in
order, and the recording transaction looks once more, under that lock, for items committed
since its matches were found: two runs recording near-duplicates at the same moment still
link them.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import delete, func, select, text
from sqlalchemy.orm import Session

from verification.duplicates.index import MIN_PDQ_QUALITY, PDQ_BYTES, PDQIndex
from verification.duplicates.matching import find_duplicates, mirrored, scan_ahead
from verification.duplicates.snapshot import SNAPSHOT_FORMAT, load_snapshot, save_snapshot
from verification.ledger.models import (
    DuplicateLink,
    Item,
    PerceptualHash,
    PerceptualLog,
    Record,
    insert_if_absent,
    reader,
    utcnow,
)
from verification.pipeline.context import Context
from verification.pipeline.layout import derivative_key
from verification.pipeline.model import Analysis
from verification.storage import ObjectStore, StoreError

log = logging.getLogger(__name__)

# pg_advisory_xact_lock key of the dedupe lock ("evidence dedupe" as a 63-bit number).
DEDUPE_LOCK = 0x65766964_6465_6475
SNAPSHOT_NAME = "duplicate-index.snapshot"


class CollectionIndex:
    """The collection's PDQ hashes in memory for one batch, refreshed incrementally.

    The first :meth:`refresh` reads every stored hash; later ones read only the items whose
    hashes were stored since (``perceptual_log`` rows past the last id seen), so recording
    the n-th item of a batch no longer costs a read of the whole collection.
    """

    def __init__(
        self, engine: Any, min_quality: int = MIN_PDQ_QUALITY, snapshot: Path | None = None
    ) -> None:
        self.engine = engine
        self.min_quality = min_quality
        self.snapshot = snapshot
        self.index = PDQIndex()
        self.watermark: int | None = None
        self.saved_watermark: int | None = None
        self._perceptual: dict[str, Mapping[str, Any] | None] = {}

    def refresh(self, session: Session | None = None) -> set[str]:
        """Catch up with hashes stored since the last call; the items that changed (on the first
        call, every item: use :meth:`update` when the answer is not needed).

        The first call starts from the snapshot when one matches this database (then reads only
        the hashes logged after it), else reads every stored hash.
        """
        if session is None:
            with Session(reader(self.engine)) as own:
                return self.refresh(own)
        if self.watermark is not None:
            return self._catch_up(session)
        if not self._start(session):
            return set(self.index.item_ids)  # every stored hash was just read
        return set(self.index.item_ids) | self._catch_up(session)

    def update(self, session: Session | None = None) -> None:
        """Catch up like :meth:`refresh` without naming what changed (on the first call that
        would be every item of the collection: a million strings for nothing)."""
        if session is None:
            with Session(reader(self.engine)) as own:
                self.update(own)
                return
        if self.watermark is not None or self._start(session):
            self._catch_up(session)

    def _start(self, session: Session) -> bool:
        """Start from the snapshot (True: the hashes logged since are still to read) or from
        every stored hash (False)."""
        loaded = self._load_snapshot(session)
        if loaded is None:
            self.watermark = _last_log_id(session)  # a row logged meanwhile is re-read
            self._add(session, None)
            return False
        self.index, self.watermark = loaded
        self.saved_watermark = self.watermark
        return True

    def _catch_up(self, session: Session) -> set[str]:
        assert self.watermark is not None
        rows = session.execute(
            select(PerceptualLog.id, PerceptualLog.item_sha256)
            .where(PerceptualLog.id > self.watermark)
            .order_by(PerceptualLog.id)
        ).all()
        if not rows:
            return set()
        self.watermark = rows[-1][0]
        changed = {item for _, item in rows}
        for item in changed:
            self.index.discard(item)
            self._perceptual.pop(item, None)
        self._add(session, changed)
        return changed

    def _add(self, session: Session, items: set[str] | None) -> None:
        query = select(PerceptualHash.item_sha256, PerceptualHash.pdq, PerceptualHash.frame).where(
            (PerceptualHash.quality.is_(None)) | (PerceptualHash.quality >= self.min_quality)
        )
        for chunk in _chunks(sorted(items)) if items is not None else [None]:
            selected = (
                query if chunk is None else query.where(PerceptualHash.item_sha256.in_(chunk))
            )
            _add_rows(self.index, session.execute(selected).all())

    def save(self) -> bool:
        """Write the index to its snapshot file when it holds hashes logged since the snapshot
        was read (atomically: a reader sees the old file or the new one); True when written."""
        if self.snapshot is None or self.watermark is None:
            return False
        if self.saved_watermark is not None and self.saved_watermark >= self.watermark:
            return False
        with Session(reader(self.engine)) as session:
            marker = _log_item(session, self.watermark)
        save_snapshot(self.snapshot, self.index, self._identity(marker))
        self.saved_watermark = self.watermark
        return True

    def _identity(self, marker: str | None) -> dict[str, Any]:
        """What ties a snapshot to this database and this index: the database URL (without its
        password), the quality floor, the last log id read and that log row's item."""
        url = self.engine.url.render_as_string(hide_password=True)
        return {
            "format": SNAPSHOT_FORMAT,
            "database": hashlib.sha256(url.encode()).hexdigest(),
            "min_quality": self.min_quality,
            "watermark": self.watermark,
            "marker": marker,
        }

    def _load_snapshot(self, session: Session) -> tuple[PDQIndex, int] | None:
        """The snapshot's index and watermark when it belongs to this database, else None."""
        if self.snapshot is None:
            return None
        loaded = load_snapshot(self.snapshot)
        if loaded is None:
            return None
        index, identity = loaded
        watermark = identity.get("watermark")
        if not isinstance(watermark, int):
            return None
        self.watermark = watermark
        expected = self._identity(_log_item(session, watermark))
        self.watermark = None
        if identity != expected or (expected["marker"] is None and watermark != 0):
            log.info("duplicate index snapshot is stale or from another ledger: reading all hashes")
            return None
        return index, watermark

    def perceptual(self, session: Session, item: str) -> Mapping[str, Any] | None:
        """An item's perceptual hashes as its newest record holds them (cached)."""
        if item not in self._perceptual:
            data = session.scalar(
                select(Record.data)
                .where(Record.item_sha256 == item)
                .order_by(Record.id.desc())
                .limit(1)
            )
            self._perceptual[item] = (data or {}).get("perceptual")
        return self._perceptual[item]

    def subset(self, items: Iterable[str]) -> PDQIndex:
        """A small index of only ``items`` (for the look under the dedupe lock)."""
        wanted = set(items)
        with Session(reader(self.engine)) as session:
            return _subset_index(session, wanted, self.min_quality)


def _subset_index(session: Session, items: set[str], min_quality: int) -> PDQIndex:
    index = PDQIndex()
    for chunk in _chunks(sorted(items)):
        index.add_many(
            session.execute(
                select(PerceptualHash.item_sha256, PerceptualHash.pdq, PerceptualHash.frame).where(
                    PerceptualHash.item_sha256.in_(chunk),
                    (PerceptualHash.quality.is_(None)) | (PerceptualHash.quality >= min_quality),
                )
            ).all()
        )
    return index


def _chunks(items: Sequence[str], size: int = 500) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def _add_rows(index: PDQIndex, rows: Sequence[Any]) -> None:
    """Add ``(item, pdq, frame)`` rows in one vectorised step (per row when a hash is malformed,
    so the error names it)."""
    if not rows:
        return
    items, hashes, frames = zip(*rows, strict=True)
    if any(len(h) != PDQ_BYTES for h in hashes):
        index.add_many(rows)
        return
    raw = np.frombuffer(b"".join(hashes), dtype=np.uint8).reshape(-1, PDQ_BYTES)
    index.add_packed(items, raw, frames)


def _log_item(session: Session, log_id: int) -> str | None:
    return session.scalar(select(PerceptualLog.item_sha256).where(PerceptualLog.id == log_id))


def _last_log_id(session: Session) -> int:
    return int(session.scalar(select(func.max(PerceptualLog.id))) or 0)


def lock_dedupe(session: Session) -> None:
    """Take the dedupe lock until ``session``'s transaction ends (PostgreSQL advisory lock;
    SQLite's write lock already serialises every transaction)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": DEDUPE_LOCK})


def find_matches(
    ctx: Context,
    analysis: Analysis,
    index: CollectionIndex | None = None,
    *,
    session: Session | None = None,
    only: set[str] | None = None,
    update: bool = True,
) -> list[dict[str, Any]]:
    """Every near or exact duplicate of the analysed item in the collection (reads only).

    Runs before the recording transaction (so candidates' thumbnails are read from the store
    without holding any lock), on ``index`` brought up to date (``update=False``: as it is,
    when the caller just did); with ``only``, against just those items (the look under the
    dedupe lock, in ``session``). The part of the search read ahead (``analysis.ahead``) is
    used when it still applies to ``index``.
    """
    assert analysis.digests is not None
    sha = analysis.digests.sha256
    index = index or CollectionIndex(ctx.engine)
    ahead = None
    if only is None:
        if update:
            index.update()
        pdq: PDQIndex = index.index
        ahead = analysis.ahead
    else:
        assert session is not None
        pdq = _subset_index(session, only - {sha}, index.min_quality)

    def load_perceptual(other: str) -> Mapping[str, Any] | None:
        if session is not None:
            return index.perceptual(session, other)
        with Session(reader(ctx.engine)) as own:
            return index.perceptual(own, other)

    return find_duplicates(
        analysis.perceptual,
        pdq,
        threshold=ctx.settings.pdq_threshold,
        exclude=sha,
        image=lambda: _thumbnail(ctx.store, sha),
        load_image=lambda other: _thumbnail(ctx.store, other),
        load_perceptual=load_perceptual,
        min_quality=index.min_quality,
        ahead=ahead,
    )


def scan_collection(ctx: Context, index: CollectionIndex, analysis: Analysis) -> Analysis:
    """``analysis`` with its duplicate search over ``index``'s base done now (see
    :func:`~verification.duplicates.matching.scan_ahead`); thread-safe while ``index`` is
    updated. Only a cache: when it cannot be done, recording searches the whole collection."""
    if analysis.error or analysis.digests is None or not analysis.perceptual:
        return analysis
    ahead = scan_ahead(
        analysis.perceptual,
        index.index,
        threshold=ctx.settings.pdq_threshold,
        min_quality=index.min_quality,
    )
    return replace(analysis, ahead=ahead) if ahead is not None else analysis


def late_matches(
    ctx: Context,
    session: Session,
    analysis: Analysis,
    index: CollectionIndex,
    carried: set[str] | None = None,
) -> list[dict[str, Any]]:
    """Under the dedupe lock: matches among items committed since ``index`` was refreshed.

    ``carried`` collects those items across the attempts of one recording: a transaction that
    is rolled back and tried again has moved ``index`` past them, and must still match them.
    """
    assert analysis.digests is not None
    carried = set() if carried is None else carried
    carried |= index.refresh(session)
    fresh = carried - {analysis.digests.sha256}
    if not fresh:
        return []
    log.debug("%d item(s) stored since the matches were found: matching them too", len(fresh))
    return find_matches(ctx, analysis, index, session=session, only=fresh)


def link_duplicates(
    session: Session, sha: str, perceptual: Mapping[str, Any], matches: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Store the item's PDQ hashes and link it to each match, both ways, in ``session``.

    Each direction carries its own evidence (:func:`~verification.duplicates.matching.mirrored`).
    Links are written in one order (sorted), whoever writes them, and an existing link is
    kept: two runs linking the same pair at once neither deadlock nor fail. Returns the
    matches whose links are new (their items' records must be re-evaluated).
    """
    _store_pdq(session, sha, perceptual)
    now = utcnow()
    directions = [
        row
        for match in matches
        for row in ((sha, match["item"], match), (match["item"], sha, mirrored(match, sha)))
    ]
    rows = sorted(directions, key=lambda row: (row[0], row[1], row[2]["kind"]))
    new: list[dict[str, Any]] = []
    for a, b, entry in rows:
        values = {
            "item_sha256": a,
            "other_sha256": b,
            "kind": entry["kind"],
            "distance": entry["distance"] if entry["distance"] is not None else -1,
            "created_at": now,
            "evidence": _evidence(entry),
        }
        keys = ("item_sha256", "other_sha256", "kind")
        if insert_if_absent(session, DuplicateLink, values, keys) and a == sha:
            new.append(entry)
    return new


def _evidence(entry: Mapping[str, Any]) -> dict[str, Any]:
    fields = ("keyframe", "other_keyframe", "transform", "crop")
    return {name: entry.get(name) for name in fields}


def linked_items(session: Session, sha: str) -> list[str]:
    """Items linked to ``sha`` (any kind), sorted."""
    rows = session.scalars(
        select(DuplicateLink.other_sha256).where(DuplicateLink.item_sha256 == sha).distinct()
    )
    return sorted(rows)


def _thumbnail(store: ObjectStore, sha: str) -> bytes | None:
    """An item's thumbnail derivative (for the crop check), or None."""
    try:
        with store.open(derivative_key(sha, "thumbnail.jpg")) as handle:
            return bytes(handle.read(4 * 1024 * 1024))
    except (StoreError, OSError):
        return None


def _store_pdq(session: Session, sha: str, perceptual: Mapping[str, Any]) -> None:
    rows: list[tuple[int, str, int | None]] = []
    if perceptual.get("pdq"):
        rows.append((0, perceptual["pdq"], perceptual.get("pdq_quality")))
    for i, frame in enumerate(perceptual.get("keyframes") or []):
        if frame.get("pdq"):
            rows.append((i + 1, frame["pdq"], frame.get("quality")))
    session.execute(delete(PerceptualHash).where(PerceptualHash.item_sha256 == sha))
    for frame, pdq, quality in rows:
        session.add(
            PerceptualHash(item_sha256=sha, frame=frame, pdq=bytes.fromhex(pdq), quality=quality)
        )
    session.add(PerceptualLog(item_sha256=sha, created_at=utcnow()))
    session.flush()


def batch_index(ctx: Context) -> CollectionIndex:
    """The collection's index for one batch, started from the snapshot kept in the evidence
    home (``cache/duplicate-index.snapshot``) and saved back by :meth:`CollectionIndex.save`."""
    return CollectionIndex(ctx.engine, snapshot=ctx.settings.home / "cache" / SNAPSHOT_NAME)


def load_index(ctx: Context, exclude: str | None = None) -> Any:
    """Every stored PDQ hash of the collection, as a vectorised index."""
    cache = CollectionIndex(ctx.engine)
    cache.update()
    if exclude:
        cache.index.discard(exclude)
    return cache.index


def lock_items(session: Session, shas: Sequence[str]) -> None:
    """Hold the items' rows until the transaction ends, taken in SHA-256 order so two
    transactions never wait for each other: recorders of one item take turns (PostgreSQL;
    SQLite's write lock already serialises every transaction)."""
    if session.get_bind().dialect.name == "sqlite":
        return  # no row locks: the transaction holds the database's write lock already
    for sha in sorted(set(shas)):
        session.execute(select(Item.sha256).where(Item.sha256 == sha).with_for_update())
