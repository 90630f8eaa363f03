"""Benchmark: one PDQ query (plain and dihedral) against 1,000,000 stored hashes.

Run: ``PYTHONPATH=. python bench/dedup_bench.py [--size N] [--queries Q]``.
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
    args = parser.parse_args(argv)

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


if __name__ == "__main__":
    main()
