"""Populate an evidence home's ledger with N generated items, to measure intake as the collection
grows (``bench.scale_bench``) without ingesting N real files first.

Each generated item gets what a recorded photo leaves in the ledger, in bulk inserts: its
``items`` row, one processed ``submissions`` row under ``incoming/<case>/``, a small record, one
PDQ hash of quality 90 (random bits: unrelated to every real photo, as a large collection mostly
is), its ``perceptual_log`` row and three custody events. With ``--incoming`` each submission also
gets a (one-byte) object under ``incoming/`` in the local store, last modified in 2020 (when it
was received; its directory too, as a case nobody has added to since), so the
listing sees a collection-sized ``incoming/`` as it would after N uploads. Then it leaves what
earlier runs would have left: a listing cursor for ``incoming/`` and the duplicate index
snapshot (``cache/duplicate-index.snapshot``).

The generated custody events are placeholders: their hashes and signatures are not real, so
``evidence custody verify`` reports them. This is a benchmark ledger, never an evidence one.

    .venv/bin/python -m bench.populate HOME --items 100000 [--incoming] [--seed 7]

``HOME`` must be initialised (``evidence init``); the items are added to what it holds.
Cost on the shared 2-core machine (SQLite, ``--incoming``): 10,000 items in about 10 s,
100,000 in about 50 s; a million in roughly ten times that.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

CHUNK = 10_000
CASE = "generated"


def _rows(first: int, count: int, seed: int) -> Iterator[dict[str, list[dict[str, Any]]]]:
    """Rows of the generated items ``first .. first + count - 1``, a chunk at a time."""
    rng = np.random.default_rng(seed + first)
    start = datetime(2020, 1, 1, tzinfo=UTC)
    for base in range(first, first + count, CHUNK):
        n = min(CHUNK, first + count - base)
        pdq = rng.integers(0, 256, size=(n, 32), dtype=np.uint8)
        chunk: dict[str, list[dict[str, Any]]] = {
            "items": [],
            "submissions": [],
            "records": [],
            "perceptual_hashes": [],
            "perceptual_log": [],
            "custody_events": [],
        }
        for i in range(n):
            number = base + i
            sha = hashlib.sha256(f"generated-{seed}-{number}".encode()).hexdigest()
            seen = start + timedelta(seconds=number)
            key = f"incoming/{CASE}/g{number:08d}.jpg"
            chunk["items"].append(_item(sha, number, seen))
            chunk["submissions"].append(_submission(sha, key, number, seen))
            chunk["records"].append(_record(sha, pdq[i].tobytes(), seen))
            chunk["perceptual_hashes"].append(
                {"item_sha256": sha, "frame": 0, "pdq": pdq[i].tobytes(), "quality": 90}
            )
            chunk["perceptual_log"].append({"item_sha256": sha, "created_at": seen})
            chunk["custody_events"].extend(_events(sha, seen))
        yield chunk


def etag_of(number: int) -> str:
    """The ETag the local store gives generated submission ``number``'s one-byte object (a file
    without a metadata file: size and mtime)."""
    return f"1-{_stamp(number):x}"


def _stamp(number: int) -> int:
    """Generated submission ``number``'s time, in ns since the epoch (one second apart)."""
    seen = datetime(2020, 1, 1, tzinfo=UTC) + timedelta(seconds=number)
    return int(seen.timestamp()) * 1_000_000_000


def _content(number: int) -> bytes:
    return bytes([number % 256])


def _item(sha: str, number: int, seen: datetime) -> dict[str, Any]:
    return {
        "sha256": sha,
        "size": 1,
        "sha1": "0" * 40,
        "md5": hashlib.md5(_content(number), usedforsecurity=False).hexdigest(),
        "format": "jpeg",
        "mime": "image/jpeg",
        "kind": "image",
        "vault_key": f"vault/sha256/{sha[:2]}/{sha[2:4]}/{sha}",
        "vault_version": None,
        "first_seen": seen,
        "case_id": CASE,
        "submitter": None,
        "status": "consistent",
        "capture_time": None,
        "place": None,
        "fixity": "success",
        "record_version": None,
    }


def _submission(sha: str, key: str, number: int, seen: datetime) -> dict[str, Any]:
    return {
        "store_key": key,
        "etag": etag_of(number),
        "version_id": None,
        "item_sha256": sha,
        "case_id": CASE,
        "submitter": None,
        "claims": {"case_id": CASE},
        "received_at": seen,
        "processed_at": seen,
        "state": "processed",
        "error": None,
    }


def _record(sha: str, pdq: bytes, seen: datetime) -> dict[str, Any]:
    from verification.pipeline.layout import pipeline_version

    return {
        "item_sha256": sha,
        "pipeline_version": pipeline_version(),
        "created_at": seen,
        "status": "consistent",
        "data": {
            "sha256": sha,
            "status": "consistent",
            "status_reasons": [],
            "perceptual": {"pdq": pdq.hex(), "pdq_quality": 90},
            "findings": [],
            "generated": True,
        },
    }


def _events(sha: str, seen: datetime) -> list[dict[str, Any]]:
    stamp = seen.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    events = []
    previous = "0" * 64
    for seq, kind in enumerate(("ingestion", "fixity check", "validation"), start=1):
        digest = hashlib.sha256(f"{sha}{seq}".encode()).hexdigest()
        events.append(
            {
                "uuid": str(uuid.UUID(digest[:32])),
                "item_sha256": sha,
                "seq": seq,
                "event_type": kind,
                "event_time": stamp,
                "outcome": "success",
                "detail": {"generated": True},
                "agents": [],
                "step_key": f"generated:{seq}",
                "prev_hash": previous,
                "hash": digest,
                "key_id": "generated",
                "signature": "0" * 128,
            }
        )
        previous = digest
    return events


def populate(home: Path, items: int, *, incoming: bool = False, seed: int = 7) -> float:
    """Add ``items`` generated items to the ledger of ``home``; returns the seconds taken."""
    from sqlalchemy import func, insert, select

    from verification.core.config import load_settings
    from verification.ledger.models import Base, Item
    from verification.pipeline import open_context

    ctx = open_context(load_settings(home=home))
    began = time.perf_counter()
    tables = Base.metadata.tables
    try:
        with ctx.engine.connect() as conn:
            first = int(
                conn.scalar(select(func.count()).select_from(Item).where(Item.case_id == CASE)) or 0
            )
        for chunk in _rows(first, items, seed):
            with ctx.engine.begin() as conn:
                for name, rows in chunk.items():
                    conn.execute(insert(tables[name]), rows)
        if incoming:
            _incoming(ctx.settings.resolved_store_path, first, items)
        _steady_state(ctx)
    finally:
        ctx.engine.dispose()
    return time.perf_counter() - began


def _steady_state(ctx: Any) -> None:
    """What earlier runs over such a collection leave behind: a listing cursor for
    ``incoming/`` and the duplicate index snapshot, as after the last batch.

    The generated objects arrived just now (their status-change times, which the local store's
    listing reads and nothing can set back, say so), not in 2020: the cursor is dated as a
    listing run a margin after they arrived would leave it (``listed_from`` = now +
    ``LISTING_MARGIN``), so the next listing's window starts now, as it would have an hour
    later in a real collection.
    """
    from verification.pipeline.dedupe import batch_index

    _date_cursor(ctx)
    index = batch_index(ctx)
    index.refresh()
    index.save()


def arrived_before_last_listing(home: Path) -> None:
    """Date ``home``'s listing cursor as :func:`_steady_state` does, now: for a copy of a
    generated home, whose files arrived (status-change times) when they were copied."""
    from verification.core.config import load_settings
    from verification.pipeline import open_context

    ctx = open_context(load_settings(home=home))
    try:
        _date_cursor(ctx)
    finally:
        ctx.engine.dispose()


def _date_cursor(ctx: Any) -> None:
    from sqlalchemy.orm import Session

    from verification.ledger.models import ListingCursor, utcnow
    from verification.pipeline.batch import LISTING_MARGIN

    now = utcnow()
    listed = now + LISTING_MARGIN
    with Session(ctx.engine) as session, session.begin():
        cursor = session.get(ListingCursor, "incoming/")
        if cursor is None:
            session.add(
                ListingCursor(prefix="incoming/", listed_from=listed, full_at=now, updated_at=now)
            )
        else:
            cursor.listed_from, cursor.full_at, cursor.updated_at = listed, now, now


def _incoming(root: Path, first: int, count: int) -> None:
    """One-byte objects for the generated submissions, last modified when they were received
    (no metadata files: the local store then derives the ETag from size and mtime)."""
    objects = root / "objects" / "incoming" / CASE
    objects.mkdir(parents=True, exist_ok=True)
    for number in range(first, first + count):
        path = objects / f"g{number:08d}.jpg"
        path.write_bytes(_content(number))
        os.utime(path, ns=(_stamp(number), _stamp(number)))
    last = _stamp(first + count - 1)
    os.utime(objects, ns=(last, last))  # a case nobody has added to since its last upload


def main(argv: list[str] | None = None) -> int:
    """Populate the home named on the command line."""
    parser = argparse.ArgumentParser(
        description=" ".join(__doc__.split("\n\n")[0].split()),
        epilog="A benchmark ledger only: the generated custody events do not verify.",
    )
    parser.add_argument("home", type=Path, help="an evidence home made by `evidence init`")
    parser.add_argument("--items", type=int, required=True, help="how many items to add")
    parser.add_argument(
        "--incoming", action="store_true", help="also create one incoming object per item"
    )
    parser.add_argument("--seed", type=int, default=7, help="seed of the random PDQ hashes")
    args = parser.parse_args(argv)
    from verification.core.config import load_settings

    if not load_settings(home=args.home).resolved_key_path.is_file():
        home = args.home
        parser.error(f"{home} is not an evidence home: run `EVIDENCE_HOME={home} evidence init`")
    seconds = populate(args.home, args.items, incoming=args.incoming, seed=args.seed)
    print(f"{args.items:,} generated items added to {args.home} in {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
