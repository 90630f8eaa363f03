"""Benchmark: review-queue pages (filtered, sorted, paged, searched, with the at-a-glance
columns) over 100,000 items in SQLite.

Each item has its submission (5 % were also submitted to a second case), a record carrying
its submissions' claims and distances, and 30 % have review state (decisions, a few of them
disagreeing, assignments, notes).

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

from verification.ledger.models import (
    Item,
    ItemFinding,
    ItemReview,
    Record,
    Submission,
    make_engine,
)
from verification.review import QueueFilters, case_summary, glances, queue

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
    rows: dict[str, list[dict[str, object]]] = {"submissions": [], "records": [], "reviews": []}
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
        _extras(rng, n, items[-1], rows)
        if n % 20_000 == 19_999:
            _flush(engine, items, findings, rows)
            items, findings = [], []
            rows = {"submissions": [], "records": [], "reviews": []}
    _flush(engine, items, findings, rows)


def _extras(
    rng: random.Random, n: int, item: dict[str, object], rows: dict[str, list[dict[str, object]]]
) -> None:
    """The item's submissions (a second case for 5 %), its record, and review state for 30 %."""
    sha, seen = str(item["sha256"]), item["first_seen"]
    cases = [item["case_id"]] + ([f"case-{rng.randrange(40):02d}"] if rng.random() < 0.05 else [])
    subs = []
    for k, case in enumerate(cases):
        submitter = item["submitter"] if k == 0 else f"submitter-{rng.randrange(300):03d}"
        claims = {"submitter": submitter, "lat": 50.45, "lon": 30.52, "note": f"note {n} {k}"}
        rows["submissions"].append(
            {
                "id": 2 * n + k + 1,
                "store_key": f"incoming/{case}/IMG_{n:06d}_{k}.jpg",
                "etag": f"{n:08x}{k}",
                "item_sha256": sha,
                "case_id": case,
                "submitter": submitter,
                "claims": claims,
                "received_at": seen,
                "state": "processed",
            }
        )
        geolocation = {"distance_km": rng.random() * 3000, "capture_time": str(seen)}
        subs.append({"id": 2 * n + k + 1, "claims": claims, "geolocation": geolocation})
    data = {"submissions": subs, "findings": [], "metadata": {"make": "Bench", "model": "X"}}
    rows["records"].append(
        {
            "item_sha256": sha,
            "pipeline_version": "bench",
            "created_at": seen,
            "status": item["status"],
            "data": data,
        }
    )
    if rng.random() < 0.30:
        rows["reviews"].append(
            {
                "item_sha256": sha,
                "decision": rng.choice(["verified", "disputed", "rejected"]),
                "decided_by": f"analyst-{rng.randrange(10)}",
                "decided_at": str(seen),
                "decisions": 1,
                "disagree": rng.random() < 0.05,
                "assignee": f"analyst-{rng.randrange(10)}",
                "comments": 1,
                "notes": f"checked shadows on item {n}",
                "last_seq": 10,
            }
        )


def _flush(
    engine: Engine,
    items: list[dict[str, object]],
    findings: list[dict[str, object]],
    rows: dict[str, list[dict[str, object]]],
) -> None:
    with engine.begin() as conn:
        if items:
            conn.execute(insert(Item), items)
        if findings:
            conn.execute(insert(ItemFinding), findings)
        for model, name in (
            (Submission, "submissions"),
            (Record, "records"),
            (ItemReview, "reviews"),
        ):
            if rows[name]:
                conn.execute(insert(model), rows[name])


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
        "undecided": lambda e: queue(e, QueueFilters(review="undecided")),
        "disputed (disagree)": lambda e: queue(e, QueueFilters(review="disagree")),
        "mine": lambda e: queue(e, QueueFilters(assignee="analyst-3")),
        "case+undecided": lambda e: queue(e, QueueFilters(case="case-07", review="undecided")),
        "search hash prefix (12)": lambda e: queue(e, QueueFilters(search=_prefix(e))),
        "search filename": lambda e: queue(e, QueueFilters(search="img_004242")),
        "search submitter": lambda e: queue(e, QueueFilters(submitter="SUBMITTER-04")),
        "search note text": lambda e: queue(e, QueueFilters(search="shadows on item 4242")),
        "page + glance columns": lambda e: _with_glances(e, QueueFilters()),
        "case page + glance": lambda e: _with_glances(e, QueueFilters(case="case-07"), "case-07"),
        "case summary": lambda e: case_summary(e, "case-07"),
    }


def _prefix(engine: Engine) -> str:
    with engine.connect() as conn:
        return str(conn.exec_driver_sql("SELECT sha256 FROM items LIMIT 1").scalar())[:12]


def _with_glances(engine: Engine, filters: QueueFilters, case: str | None = None) -> object:
    page = queue(engine, filters)
    glances(engine, [r.sha256 for r in page.rows], case)
    return page


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
            result = run(engine)
            total = getattr(result, "total", None) or getattr(result, "items", 0)
            print(f"{name:<28} {median:>10.1f} {p95:>8.1f} {total:>8}")
        engine.dispose()


if __name__ == "__main__":
    main()
