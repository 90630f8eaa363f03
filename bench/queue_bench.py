"""Benchmark: review-queue pages (filtered, sorted, paged) over 100,000 items in SQLite.

Run: ``PYTHONPATH=. python bench/queue_bench.py [--items N] [--revision 0001]``. ``--revision``
migrates only that far, to compare with the schema before the review indexes.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, insert

from verification.ledger.models import Item, ItemFinding, make_engine
from verification.review import QueueFilters, queue

STATUSES = ["consistent", "needs-review", "inconsistent", "unreadable"]
STATUS_WEIGHTS = [50, 30, 15, 5]
# (code, severity, share of items carrying it): a few common codes and some rare ones.
CODES = [
    ("metadata-stripped", "info", 0.40),
    ("no-location-in-file", "info", 0.35),
    ("no-capture-time", "info", 0.25),
    ("editing-software", "warning", 0.10),
    ("near-duplicate", "warning", 0.08),
    ("location-contradicts-claim", "critical", 0.05),
    ("time-contradicts-claim", "critical", 0.03),
    ("exact-duplicate", "warning", 0.02),
    ("unreadable", "critical", 0.01),
    ("c2pa-invalid", "critical", 0.001),
]
START = datetime(2025, 1, 1, tzinfo=UTC)


def _migrate(engine: Engine, revision: str) -> None:
    from alembic import command
    from alembic.config import Config

    from verification.ledger.models import MIGRATIONS

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.connect() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def populate(engine: Engine, count: int, seed: int = 2026) -> None:
    """Insert ``count`` items in 40 cases with 300 submitters and skewed finding codes."""
    rng = random.Random(seed)
    items, findings = [], []
    for n in range(count):
        sha = f"{rng.getrandbits(256):064x}"
        seen = START + timedelta(seconds=rng.randrange(0, 700 * 86400))
        items.append(
            {
                "sha256": sha,
                "size": rng.randrange(10_000, 5_000_000),
                "sha1": "0" * 40,
                "md5": "0" * 32,
                "format": "jpeg",
                "mime": "image/jpeg",
                "kind": "image",
                "vault_key": f"vault/sha256/{sha[:2]}/{sha[2:4]}/{sha}",
                "first_seen": seen,
                "case_id": f"case-{rng.randrange(40):02d}",
                "submitter": f"submitter-{rng.randrange(300):03d}",
                "status": rng.choices(STATUSES, STATUS_WEIGHTS)[0],
                "capture_time": (seen - timedelta(hours=rng.randrange(1, 5000))).isoformat(),
                "fixity": "success",
            }
        )
        findings += [
            {"item_sha256": sha, "code": code, "severity": severity}
            for code, severity, share in CODES
            if rng.random() < share
        ]
        if n % 20_000 == 19_999:
            _flush(engine, items, findings)
            items, findings = [], []
    _flush(engine, items, findings)


def _flush(
    engine: Engine, items: list[dict[str, object]], findings: list[dict[str, object]]
) -> None:
    with engine.begin() as conn:
        if items:
            conn.execute(insert(Item), items)
        if findings:
            conn.execute(insert(ItemFinding), findings)


def scenarios() -> dict[str, Callable[[Engine], object]]:
    """Named page queries an analyst makes."""
    since = START + timedelta(days=300)
    until = since + timedelta(days=30)
    return {
        "newest, no filter": lambda e: queue(e),
        "case": lambda e: queue(e, QueueFilters(case="case-07")),
        "status": lambda e: queue(e, QueueFilters(status="inconsistent")),
        "common finding": lambda e: queue(e, QueueFilters(finding="editing-software")),
        "rare finding": lambda e: queue(e, QueueFilters(finding="c2pa-invalid")),
        "case+status+finding": lambda e: queue(
            e, QueueFilters(case="case-07", status="needs-review", finding="near-duplicate")
        ),
        "submitter": lambda e: queue(e, QueueFilters(submitter="submitter-042")),
        "date range": lambda e: queue(e, QueueFilters(since=since, until=until)),
        "case, by capture time": lambda e: queue(e, QueueFilters(case="case-07"), "capture_time"),
        "status, page 40": lambda e: queue(e, QueueFilters(status="consistent"), page=40),
        "no filter, page 1000": lambda e: queue(e, page=1000),
    }


def _time(run: Callable[[Engine], object], engine: Engine, repeat: int) -> tuple[float, float]:
    run(engine)  # warm the page cache
    timings = []
    for _ in range(repeat):
        start = time.perf_counter()
        run(engine)
        timings.append((time.perf_counter() - start) * 1000)
    timings.sort()
    return statistics.median(timings), timings[int(0.95 * (len(timings) - 1))]


def main(argv: list[str] | None = None) -> None:
    """Build the database, time each scenario, print median and p95 in milliseconds."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--revision", default="head", help="Alembic revision to migrate to.")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'queue.db'}")
        _migrate(engine, args.revision)
        start = time.perf_counter()
        populate(engine, args.items)
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
        print(
            f"{args.items:,} items (schema {args.revision}) built in {time.perf_counter() - start:.1f} s"
        )
        print(f"{'query (50 per page)':<28} {'median ms':>10} {'p95 ms':>8} {'matches':>8}")
        for name, run in scenarios().items():
            median, p95 = _time(run, engine, args.repeat)
            total = getattr(run(engine), "total", 0)
            print(f"{name:<28} {median:>10.1f} {p95:>8.1f} {total:>8}")
        engine.dispose()


if __name__ == "__main__":
    main()
