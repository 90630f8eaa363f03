"""The real intake against its floor, side by side in one run on the same photos.

* anchors: ``sha256sum`` over every file and ``exiftool -json`` in one batch (what an analyst
  does by hand);
* the minimal reference (:mod:`bench.reference`) in as many processes as ``evidence ingest``
  has workers;
* ``evidence ingest`` on a fresh embedded home (SQLite, local store), and on PostgreSQL when a
  server answers at 127.0.0.1:5432, each a fresh process.

Each command is timed wall-clock with the peak resident memory of its whole process tree
(:mod:`bench.proctree`) and a count of the processes it left running. Goals (issue 16):
ingest <= 2.0x (sha256sum + exiftool) on 2 workers; ingest <= 1.25x the reference per core.

    .venv/bin/python -m bench.intake_speed [--count 100] [--size 4000x3000] [--workers 2] [--rounds 2]

The best of ``--rounds`` is kept for each contender (rounds interleave, so a burst of load on a
shared machine hits them alike).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from bench.airflow_overhead import fresh_home
from bench.intake_e2e import anchors
from bench.proctree import Run, run

BIN = Path(sys.executable).parent
OUT = Path(__file__).resolve().parent / "out"
GOAL_ANCHORS = 2.0
GOAL_REFERENCE = 1.25


def camera_like_photos(directory: Path, count: int, size: tuple[int, int]) -> list[Path]:
    """``count`` distinct JPEGs of ``size`` with EXIF and GPS, with sensor-like noise so they
    weigh what a camera's do (about 3.5 MB at 12 MP, quality 92) rather than a smooth scene's."""
    import numpy as np
    from PIL import Image

    from verification.media.samples import exif_bytes, jpeg, scene

    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(16)
    noise = rng.normal(0, 9, size=(size[1], size[0], 3)).astype(np.int16)
    paths = []
    for seed in range(count):
        small = scene(seed, size=(size[0] // 8, size[1] // 8)).convert("RGB")
        base = np.asarray(small.resize(size, Image.Resampling.BILINEAR), dtype=np.int16)
        shift = np.roll(noise, seed * 7919, axis=1)
        image = Image.fromarray(np.clip(base + shift, 0, 255).astype(np.uint8))
        exif = exif_bytes(taken="2024:05:01 12:00:00", gps=(48.85 + seed * 1e-4, 2.35, 35.0))
        path = directory / f"photo{seed:04d}.jpg"
        path.write_bytes(jpeg(image, exif, quality=92))
        paths.append(path)
    return paths


def cached_photos(count: int, size: tuple[int, int]) -> list[Path]:
    """:func:`camera_like_photos`, generated once into ``bench/out/`` and reused (``make clean``
    removes them)."""
    directory = OUT / f"photos-{count}-{size[0]}x{size[1]}"
    paths = sorted(directory.glob("photo*.jpg"))
    if len(paths) == count:
        return paths
    shutil.rmtree(directory, ignore_errors=True)
    partial = directory.with_name(directory.name + ".part")
    shutil.rmtree(partial, ignore_errors=True)
    camera_like_photos(partial, count, size)
    partial.rename(directory)
    return sorted(directory.glob("photo*.jpg"))


@contextlib.contextmanager
def postgres() -> Iterator[str | None]:
    """URL of a fresh PostgreSQL database (dropped afterwards), or None without a server."""
    try:
        import psycopg2

        admin = psycopg2.connect(
            host="127.0.0.1", port=5432, user="postgres", dbname="postgres", connect_timeout=3
        )
    except Exception:
        yield None
        return
    name = f"evidence_bench_{uuid.uuid4().hex[:10]}"
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def ingest(root: Path, photos: list[Path], workers: int, database: str | None = None) -> Run:
    """``evidence ingest`` of ``photos`` on a fresh home (optionally on ``database``)."""
    home = root / f"home-{uuid.uuid4().hex[:8]}"
    extra = {"EVIDENCE_DATABASE_URL": database} if database else {}
    os.environ.update(extra)
    try:
        env = fresh_home(home, photos)
    finally:
        for name in extra:
            os.environ.pop(name, None)
    env = {**env, **extra, "EVIDENCE_WORKERS": str(workers)}
    try:
        return run([str(BIN / "evidence"), "ingest", "--no-progress"], env)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def reference(root: Path, photos: list[Path], workers: int) -> Run:
    """The minimal reference over ``photos`` in ``workers`` processes."""
    out = root / f"reference-{uuid.uuid4().hex[:8]}"
    argv = [sys.executable, "-m", "bench.reference", str(out), *map(str, photos)]
    try:
        return run([*argv, "--workers", str(workers)], None, cwd=Path(__file__).parents[1])
    finally:
        shutil.rmtree(out, ignore_errors=True)


def _best(runs: list[Run]) -> Run:
    return min(runs, key=lambda r: r.seconds)


def _line(name: str, r: Run, count: int) -> str:
    left = f", {r.leftovers} process(es) left running" if r.leftovers else ""
    return (
        f"{name:<28}{r.seconds:8.2f} s  {count / r.seconds:6.1f} files/s  "
        f"peak {r.peak_mib:6.0f} MiB (process tree){left}"
    )


def _ratio(name: str, value: float, goal: float) -> str:
    verdict = "met" if value <= goal else "NOT met"
    return f"{name:<40}{value:6.2f}x  (goal <= {goal}x: {verdict})"


def main(argv: list[str] | None = None) -> int:
    """Run every contender on the same photos and print figures, ratios and goals."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100, help="photos (default 100)")
    parser.add_argument("--size", default="4000x3000", help="their size, WIDTHxHEIGHT (12 MP)")
    parser.add_argument(
        "--workers", type=int, default=2, help="analysis workers, and reference processes"
    )
    parser.add_argument(
        "--rounds", type=int, default=2, help="interleaved rounds; the best of each is kept"
    )
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    root = Path(tempfile.mkdtemp(prefix="intake-speed-"))
    figures: dict[str, list[Run]] = {}
    sha: list[float] = []
    exif: list[float] = []
    try:
        photos = cached_photos(args.count, (width, height))
        megabytes = sum(p.stat().st_size for p in photos) / 1e6
        print(f"{args.count} photos ready ({megabytes:.0f} MB); running...", flush=True)
        with postgres() as pg:
            for _ in range(args.rounds):
                one_sha, one_exif = anchors(photos)
                sha += [one_sha] if one_sha is not None else []
                exif += [one_exif] if one_exif is not None else []
                figures.setdefault("reference", []).append(reference(root, photos, args.workers))
                figures.setdefault("ingest", []).append(ingest(root, photos, args.workers))
                if pg is not None:
                    figures.setdefault("ingest-pg", []).append(
                        ingest(root, photos, args.workers, pg)
                    )
                    pg_reset(pg)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"photos                      {args.count} x {width}x{height} JPEG ({megabytes:.0f} MB)")
    print(f"workers                     {args.workers}; best of {args.rounds} interleaved rounds")
    anchor = (min(sha) if sha else 0.0) + (min(exif) if exif else 0.0)
    if sha:
        print(f"{'sha256sum':<28}{min(sha):8.2f} s")
    if exif:
        print(f"{'exiftool -json (batch)':<28}{min(exif):8.2f} s")
    ref, ours = _best(figures["reference"]), _best(figures["ingest"])
    print(_line("reference (bench.reference)", ref, args.count))
    print(_line("evidence ingest (SQLite)", ours, args.count))
    if "ingest-pg" in figures:
        print(_line("evidence ingest (PostgreSQL)", _best(figures["ingest-pg"]), args.count))
    else:
        print("evidence ingest (PostgreSQL)  skipped: no server at 127.0.0.1:5432")
    if sha and exif:
        print(_ratio("ingest / (sha256sum + exiftool)", ours.seconds / anchor, GOAL_ANCHORS))
        if "ingest-pg" in figures:
            pg_ratio = _best(figures["ingest-pg"]).seconds / anchor
            print(_ratio("ingest on PostgreSQL / anchors", pg_ratio, GOAL_ANCHORS))
    print(_ratio("ingest / reference (per core)", ours.seconds / ref.seconds, GOAL_REFERENCE))
    print(f"{'memory: ingest / reference (tree peak)':<40}{ours.peak_mib / ref.peak_mib:6.2f}x")
    return 0


def pg_reset(url: str) -> None:
    """Empty the PostgreSQL ledger between rounds (each ingest starts from a fresh ledger)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()


if __name__ == "__main__":
    sys.exit(main())
