"""Benchmark: one PDQ query (plain and dihedral) against 1,000,000 stored hashes; unrelated
crop candidates per query and the per-item cost of reading the collection as it grows.

Run: ``python -m bench dedup`` (everything, defaults) or
``python -m bench.dedup_bench [--size N] [--queries Q] [--growth --images I --sizes A,B,C]``.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from verification.duplicates import PDQHash, PDQIndex


def _percentiles(seconds: list[float]) -> tuple[float, float]:
    millis = np.asarray(seconds) * 1000
    return float(np.median(millis)), float(np.percentile(millis, 95))


def _time_queries(run: object, queries: list[object]) -> list[float]:
    timings = []
    for query in queries:
        start = time.perf_counter()
        run(query)  # type: ignore[operator]
        timings.append(time.perf_counter() - start)
    return timings


def main(argv: list[str] | None = None) -> None:
    """Build a random index, time the queries, print median and p95 in milliseconds."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--threshold", type=int, default=31)
    parser.add_argument("--growth-only", action="store_true")
    parser.add_argument("--query-only", action="store_true")
    args, rest = parser.parse_known_args(argv)
    if args.growth_only:
        growth(rest)
        return

    rng = np.random.default_rng(2026)
    packed = rng.integers(0, 256, size=(args.size, 32), dtype=np.uint8)
    ids = [f"item-{i}" for i in range(args.size)]
    start = time.perf_counter()
    index = PDQIndex(capacity=args.size)
    index.add_packed(ids, packed)
    build = time.perf_counter() - start

    # Queries: stored hashes with a few flipped bits, so each has a true match.
    rows = rng.integers(0, args.size, size=args.queries)
    plain = []
    for row in rows:
        query = packed[row].copy()
        query[rng.integers(0, 32, size=3)] ^= 0x01
        plain.append(PDQHash.from_bytes(query.tobytes()))
    dihedral = [[q, *(PDQHash.from_bytes(rng.bytes(32)) for _ in range(7))] for q in plain]

    hits = sum(bool(index.query(q, args.threshold)) for q in plain[:10])
    plain_ms = _percentiles(_time_queries(lambda q: index.query(q, args.threshold), plain))
    dihedral_ms = _percentiles(
        _time_queries(lambda q: index.query_dihedral(q, args.threshold), dihedral)
    )
    print(f"cpus: {os.cpu_count()}, numpy {np.__version__}")
    print(f"index: {len(index):,} hashes, built in {build:.2f} s (packed bulk load)")
    print(f"sanity: {hits}/10 planted matches found")
    print(
        f"plain query    ({args.queries} queries): median {plain_ms[0]:.1f} ms, "
        f"p95 {plain_ms[1]:.1f} ms"
    )
    print(
        f"dihedral query ({args.queries} queries, 8 hashes each): median {dihedral_ms[0]:.1f} ms, "
        f"p95 {dihedral_ms[1]:.1f} ms"
    )
    item = [([q[0]], q) for q in dihedral]
    item_ms = _percentiles(
        _time_queries(lambda pair: index.search(pair[0], 96, pair[1], args.threshold + 16), item)
    )
    print(
        f"one item's search as find_duplicates runs it (plain within 96 for the crop "
        f"candidates, 8 dihedral within {args.threshold + 16}, one pass): median "
        f"{item_ms[0]:.1f} ms, p95 {item_ms[1]:.1f} ms"
    )
    if not args.query_only:
        growth(rest)


# --- crop candidates and recording cost as the collection grows (issue 14) --------------------


def crop_candidates(images: int, queries: int, threshold: int = 31, band: int = 96) -> None:
    """Unrelated items inside the crop pre-filter's PDQ band, per query, as the collection grows.

    The collection is hashes of distinct generated photos (``verification.media.samples``:
    gradients and shapes, a pessimistic stand-in for real photos, whose PDQ hashes sit farther
    apart); queries are other generated photos, so every candidate is a false one. Counts are
    measured up to ``images`` and projected to 1,000,000 from the measured rate.
    """
    import pdqhash

    from verification.duplicates.matching import MAX_CROP_CHECKS
    from verification.media.samples import scene

    def hashed(seed: int) -> bytes:
        bits, _ = pdqhash.compute(np.asarray(scene(seed, size=(320, 240))))
        return PDQHash.from_bits(bits).value

    start = time.perf_counter()
    stored = [hashed(10_000 + n) for n in range(images)]
    probes = [hashed(90_000 + n) for n in range(queries)]
    made = time.perf_counter() - start
    print(f"crop pre-filter: {images} generated photos hashed in {made:.1f} s, {queries} queries")
    for size in sorted({images // 10, images // 3, images}):
        index = PDQIndex(capacity=size)
        index.add_many((f"i{n}", h) for n, h in enumerate(stored[:size]))
        counts = [sum(1 for m in index.query(q, band) if m.distance > threshold) for q in probes]
        mean = float(np.mean(counts))
        print(
            f"  N={size:>7,}: unrelated candidates in ({threshold}, {band}] per query: "
            f"mean {mean:.2f}, max {max(counts)}; rate {mean / size:.2e}"
            f" -> {mean / size * 1_000_000:,.0f} per query at 1,000,000 items"
            f" (ORB checks capped at {MAX_CROP_CHECKS})"
        )


def recording_cost(sizes: list[int]) -> None:
    """Per recorded item, reading the collection's hashes: the whole index reloaded (before) vs
    the batch's index refreshed from perceptual_log (now), on SQLite."""
    import tempfile
    from datetime import UTC, datetime
    from pathlib import Path

    from sqlalchemy import create_engine, insert

    from verification.ledger.models import PerceptualHash, PerceptualLog, make_engine, migrate
    from verification.pipeline.dedupe import CollectionIndex

    rng = np.random.default_rng(7)
    for size in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{Path(tmp) / 'ledger.db'}"
            migrate(make_engine(url))
            engine = create_engine(url)  # no foreign keys: hash rows without their items
            rows = [
                {"item_sha256": f"{n:064x}", "frame": 0, "pdq": rng.bytes(32), "quality": 90}
                for n in range(size)
            ]
            with engine.begin() as conn:
                conn.execute(insert(PerceptualHash), rows)
            cache = CollectionIndex(engine)
            start = time.perf_counter()
            cache.refresh()
            full = time.perf_counter() - start
            now = datetime.now(UTC)
            timings = []
            for n in range(20):
                item = f"{size + n:064x}"
                with engine.begin() as conn:
                    conn.execute(
                        insert(PerceptualHash),
                        [{"item_sha256": item, "frame": 0, "pdq": rng.bytes(32), "quality": 90}],
                    )
                    conn.execute(insert(PerceptualLog), [{"item_sha256": item, "created_at": now}])
                start = time.perf_counter()
                cache.refresh()
                timings.append(time.perf_counter() - start)
            engine.dispose()
        print(
            f"  N={size:>9,}: reload the whole index {full * 1000:8.1f} ms per item (before); "
            f"refresh {np.median(timings) * 1000:.2f} ms per item (now)"
        )


def growth(argv: list[str] | None = None) -> None:
    """The issue-14 figures: crop candidates and recording cost as the collection grows."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=3000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    args = parser.parse_args(argv)
    crop_candidates(args.images, args.queries)
    print("recording cost: reading the collection's PDQ hashes per recorded item")
    recording_cost([int(s) for s in args.sizes.split(",")])
    print("snapshot: per batch, loading the index, its first query, saving it with 50 new items")
    snapshot_cost([int(s) for s in args.sizes.split(",")])


def snapshot_cost(sizes: list[int], repeat: int = 3) -> None:
    """Per batch: load the snapshot of N hashes (SHA-256 item ids) and run a first query (the
    mapped pages are read then), and save it again with 50 items more; best of ``repeat``."""
    import hashlib
    import tempfile
    from pathlib import Path

    from verification.duplicates.snapshot import load_snapshot, save_snapshot

    rng = np.random.default_rng(11)
    for size in sizes:
        index = PDQIndex(capacity=size)
        ids = [hashlib.sha256(str(n).encode()).hexdigest() for n in range(size)]
        index.add_packed(ids, rng.integers(0, 256, size=(size, 32), dtype=np.uint8))
        query = PDQHash.from_bytes(rng.bytes(32))
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "index.snapshot"
            save_snapshot(path, index, {"watermark": size})
            loads, firsts, saves = [], [], []
            for n in range(repeat):
                start = time.perf_counter()
                loaded = load_snapshot(path)
                loads.append(time.perf_counter() - start)
                assert loaded is not None
                start = time.perf_counter()
                loaded[0].query(query, 31)
                firsts.append(time.perf_counter() - start)
                for extra in range(50):
                    loaded[0].add(f"{size + n * 50 + extra:064x}", rng.bytes(32))
                start = time.perf_counter()
                save_snapshot(path, loaded[0], {"watermark": size + n})
                saves.append(time.perf_counter() - start)
                del loaded
            megabytes = path.stat().st_size / 1e6
        print(
            f"  N={size:>9,}: load {min(loads) * 1000:7.1f} ms, first query "
            f"{min(firsts) * 1000:6.1f} ms, save {min(saves) * 1000:7.1f} ms per batch "
            f"({megabytes:.0f} MB file)"
        )


if __name__ == "__main__":
    main()
