"""End-to-end intake on what users run, against the tools an investigator would otherwise use.

On the same generated photos (JPEG with EXIF and GPS), in one run:

* anchors: ``sha256sum`` over every file, and ``exiftool -json`` reading them in one batch;
* ``evidence ingest`` on a fresh embedded home (a fresh process, default workers);
* the real stack of ``make airflow`` (api-server, scheduler, dag-processor, triggerer,
  LocalExecutor, defaults): the files are submitted, evidence_intake is triggered through the
  REST API as the UI does, and the clock stops when the last submission is recorded in the
  ledger (and again when the run is marked finished);
* growth: ``evidence ingest`` of the same number of new photos into a collection that already
  holds 1x, 2x ... that many, to show how the per-file cost grows with the collection.

    .venv/bin/python -m bench.intake_e2e [--count 200] [--size 2000x1500] [--rounds 3]

Stack start-up (migrations, process start) is reported apart: it is paid once per deployment.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.airflow_overhead import fresh_home, make_photos, timed

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def anchors(photos: list[Path]) -> tuple[float | None, float | None]:
    """Seconds for ``sha256sum`` and for one ``exiftool -json`` batch over ``photos``."""
    results: list[float | None] = []
    for tool, argv, stdin in (
        ("sha256sum", ["sha256sum", *map(str, photos)], None),
        ("exiftool", ["exiftool", "-json", "-n", "-@", "-"], "\n".join(map(str, photos))),
    ):
        if shutil.which(tool) is None:
            print(f"({tool} is not installed: its anchor is left out; make system-deps)")
            results.append(None)
            continue
        start = time.perf_counter()
        subprocess.run(argv, input=stdin, capture_output=True, text=True, check=True)
        results.append(time.perf_counter() - start)
    return results[0], results[1]


def through_the_stack(root: Path, photos: list[Path]) -> tuple[float, float, float]:
    """(start-up s, trigger to last item recorded s, trigger to run finished s)."""
    sys.path.insert(0, str(REPO))
    from sqlalchemy import func, select
    from sqlalchemy.orm import Session

    from scripts.airflow_stack import Stack, free_port
    from tests.integration.stack_support import Driver
    from verification.core.config import load_settings
    from verification.ledger.models import Submission
    from verification.pipeline import open_context

    stack = Stack(
        root / "evidence",
        root / "airflow",
        port=free_port(),
    )
    started = time.perf_counter()
    stack.prepare()
    stack.start()
    startup = time.perf_counter() - started
    ctx = open_context(load_settings(home=stack.evidence_home))
    try:
        env = {**os.environ, "EVIDENCE_HOME": str(stack.evidence_home)}
        subprocess.run(
            [str(BIN / "evidence"), "submit", "--case", "bench", *map(str, photos)],
            env=env,
            check=True,
            capture_output=True,
        )
        driver = Driver(stack, ctx, root / "uploads")
        driver.wait_for_dag("evidence_intake")
        begin = time.perf_counter()
        run_id = driver.trigger("evidence_intake", {"case": "bench"})
        recorded = None
        while True:
            stack.check_alive()
            with Session(ctx.engine) as session:
                done = session.scalar(
                    select(func.count())
                    .select_from(Submission)
                    .where(Submission.state == "processed")
                )
            if recorded is None and done == len(photos):
                recorded = time.perf_counter() - begin
            if recorded is not None and driver.run_state("evidence_intake", run_id) in {
                "success",
                "failed",
            }:
                break
            time.sleep(0.25)
        finished = time.perf_counter() - begin
        state = driver.run_state("evidence_intake", run_id)
        if state != "success":
            msg = f"the benchmark run ended {state}:\n{driver.task_log('evidence_intake', run_id)}"
            raise RuntimeError(msg)
    finally:
        stack.stop()
        ctx.engine.dispose()
    return startup, recorded, finished


def growth(root: Path, count: int, rounds: int, size: tuple[int, int]) -> list[tuple[int, float]]:
    """Seconds per file of ingesting ``count`` new photos into collections of growing size."""
    home = root / "growth"
    figures = []
    env = None
    for number in range(rounds):
        batch = make_photos(
            root / f"growth-{number}", count, size, first_seed=10_000 * (number + 1)
        )
        if env is None:
            env = fresh_home(home, batch)
        else:
            subprocess.run(
                [str(BIN / "evidence"), "submit", "--case", "bench", *map(str, batch)],
                env=env,
                check=True,
                capture_output=True,
            )
        seconds = timed([str(BIN / "evidence"), "ingest", "--no-progress"], env)
        figures.append((number * count, seconds / count))
    return figures


def main(argv: list[str] | None = None) -> int:
    """Run every contender on the same photos and print the figures and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200, help="photos to generate")
    parser.add_argument("--size", default="2000x1500", help="photo size WxH")
    parser.add_argument("--rounds", type=int, default=3, help="growth rounds of --count photos")
    args = parser.parse_args(argv)
    size = tuple(int(v) for v in args.size.lower().split("x"))
    assert len(size) == 2
    root = Path(tempfile.mkdtemp(prefix="intake-e2e-"))
    try:
        photos = make_photos(root / "photos", args.count, (size[0], size[1]))
        megabytes = sum(p.stat().st_size for p in photos) / 1e6
        sha, exif = anchors(photos)
        ingest = timed(
            [str(BIN / "evidence"), "ingest", "--no-progress"], fresh_home(root / "ingest", photos)
        )
        startup, recorded, finished = through_the_stack(root / "stack", photos)
        grown = growth(root, args.count, args.rounds, (size[0], size[1]))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    anchor = (sha or 0) + (exif or 0)
    print(f"photos                   {args.count} x {size[0]}x{size[1]} JPEG ({megabytes:.1f} MB)")
    print(f"workers                  {os.cpu_count()} (default: every core)")
    if sha is not None:
        print(f"sha256sum                {sha:8.2f} s")
    if exif is not None:
        print(f"exiftool -json (batch)   {exif:8.2f} s")
    print(f"evidence ingest          {ingest:8.2f} s   {args.count / ingest:6.1f} files/s")
    print(f"stack start-up           {startup:8.2f} s   (once per deployment)")
    print(f"trigger -> last recorded {recorded:8.2f} s   {args.count / recorded:6.1f} files/s")
    print(f"trigger -> run finished  {finished:8.2f} s")
    if anchor:
        print(f"ratio ingest / anchors   {ingest / anchor:8.2f}x  (sha256sum + exiftool)")
        print(f"ratio stack / anchors    {recorded / anchor:8.2f}x")
    print(f"ratio stack / ingest     {recorded / ingest:8.2f}x")
    print("growth (evidence ingest of new photos into an existing collection):")
    for existing, per_file in grown:
        print(f"  collection {existing:6d} -> {per_file * 1000:7.1f} ms per new file")
    return 0


if __name__ == "__main__":
    sys.exit(main())
