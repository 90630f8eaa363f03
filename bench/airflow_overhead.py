"""What Airflow costs on top of the pipeline: ``evidence ingest`` vs the evidence_intake DAG.

Generates N small photos (640x480, with EXIF), submits them to two fresh embedded homes, then
times ``evidence ingest`` on one and ``dag.test()`` of evidence_intake (tasks run one after the
other, as the LocalExecutor would on one slot) on the other, each as a fresh process. Prints the
overhead ratio and the batch size used.

    .venv/bin/python -m bench.airflow_overhead [--count 500] [--batch-size 50] [--size 640x480]
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

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def make_photos(
    directory: Path, count: int, size: tuple[int, int] = (640, 480), first_seed: int = 0
) -> list[Path]:
    """``count`` distinct synthetic JPEGs of ``size`` with EXIF (camera, time, GPS)."""
    from verification.media.samples import exif_bytes, jpeg, scene

    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for seed in range(first_seed, first_seed + count):
        path = directory / f"photo{seed:04d}.jpg"
        exif = exif_bytes(taken="2024:05:01 12:00:00", gps=(48.85 + seed * 1e-4, 2.35, 35.0))
        path.write_bytes(jpeg(scene(seed, size=size), exif))
        paths.append(path)
    return paths


def fresh_home(home: Path, photos: list[Path]) -> dict[str, str]:
    """An initialised embedded home with every photo submitted; returns its environment."""
    env = {**os.environ, "EVIDENCE_HOME": str(home)}
    env = {k: v for k, v in env.items() if not k.startswith("AIRFLOW")}
    subprocess.run([str(BIN / "evidence"), "init"], env=env, check=True, capture_output=True)
    subprocess.run(
        [str(BIN / "evidence"), "submit", "--case", "bench", *map(str, photos)],
        env=env,
        check=True,
        capture_output=True,
    )
    return env


def timed(argv: list[str], env: dict[str, str]) -> float:
    """Wall-clock seconds of one command (which must succeed)."""
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=REPO, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        msg = f"{argv[:3]} failed:\n{(done.stdout + done.stderr)[-3000:]}"
        raise RuntimeError(msg)
    return elapsed


def airflow_env(env: dict[str, str], airflow_home: Path, batch_size: int) -> dict[str, str]:
    """An isolated Airflow home (SQLite metadata DB) for dag.test(), migrated once."""
    airflow_home.mkdir(parents=True)
    env = {
        **env,
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / 'airflow.db'}",
        "EVIDENCE_BATCH_SIZE": str(batch_size),
    }
    subprocess.run(
        [str(BIN / "airflow"), "db", "migrate"], env=env, check=True, capture_output=True
    )
    return env


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500, help="photos to generate")
    parser.add_argument("--batch-size", type=int, default=50, help="submissions per DAG task")
    parser.add_argument(
        "--size", default="640x480", help="photo size WxH (e.g. 4000x3000 for 12 MP)"
    )
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    root = Path(tempfile.mkdtemp(prefix="airflow-overhead-"))
    try:
        photos = make_photos(root / "photos", args.count, (width, height))
        direct_env = fresh_home(root / "direct", photos)
        dag_env = fresh_home(root / "dag", photos)
        dag_env = airflow_env(dag_env, root / "airflow", args.batch_size)
        direct = timed([str(BIN / "evidence"), "ingest", "--no-progress"], direct_env)
        script = (
            "import sys; sys.path.insert(0, 'dags'); import evidence_intake as m; "
            f"r = m.dag.test(run_conf={{'batch_size': {args.batch_size}}}); "
            "sys.exit(0 if str(getattr(r.state, 'value', r.state)) == 'success' else 1)"
        )
        dag = timed([sys.executable, "-c", script], dag_env)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    batches = -(-args.count // args.batch_size)
    print(f"photos            {args.count} ({width}x{height} JPEG with EXIF)")
    print(f"workers per task  {os.cpu_count()}")
    print(f"batch size        {args.batch_size} ({batches} mapped tasks)")
    print(f"evidence ingest   {direct:7.1f} s  ({args.count / direct:5.1f} files/s)")
    print(f"evidence_intake   {dag:7.1f} s  ({args.count / dag:5.1f} files/s, dag.test())")
    print(f"overhead ratio    {dag / direct:7.2f}x  (+{(dag - direct) / batches:.2f} s per batch)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
