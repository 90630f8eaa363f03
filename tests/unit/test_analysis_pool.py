"""Analysis workers: independent of the parent's entry point and environment, exact crash
attribution, bounded time, and no worker outliving its parent."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.helpers import MIB, photo, zero_png
from verification.analysis import (
    AnalysisJob,
    AnalysisOptions,
    AnalysisPool,
    FileAnalysis,
    FileFailed,
    WorkersUnavailable,
)
from verification.analysis.pool import iter_workers, warm_pool, worker_environment
from verification.core.claims import Claims

REPO = Path(__file__).resolve().parents[2]
WHEN = datetime(2024, 3, 15, tzinfo=UTC)


def _job(tmp_path: Path, name: str, data: bytes) -> AnalysisJob:
    path = tmp_path / name
    path.write_bytes(data)
    return AnalysisJob(str(path), f"incoming/case-1/{name}", Claims("case-1"), WHEN)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/stat")
    return not (status.exists() and status.read_text().split()[2] == "Z")


def test_workers_ignore_the_parent_entry_point_and_environment(tmp_path: Path) -> None:
    """A batch started from an entry point that must not be re-run, with Airflow's task-time
    database placeholder and a broken PYTHONPATH in the environment, still analyses every file."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for n in range(3):
        (photos / f"p{n}.jpg").write_bytes(photo(50 + n, taken="2024:03:14 11:20:05"))
    entry = tmp_path / "entry.py"
    entry.write_text(
        textwrap.dedent(
            f"""
            import json, os, sys
            if __name__ != "__main__":
                raise SystemExit("the parent's entry point was executed again")
            os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = "airflow-db-not-allowed:///"
            os.environ["PYTHONPATH"] = "/nonexistent"
            os.environ["PYTHONSTARTUP"] = "/nonexistent/boom.py"
            sys.path.insert(0, {str(REPO)!r})
            from tests.helpers import init_context, make_settings
            from verification import pipeline
            from verification.core.claims import Claims
            from verification.pipeline.submission import submit_file
            ctx = init_context(make_settings({str(tmp_path / "home")!r}, workers=2))
            for name in sorted(os.listdir({str(photos)!r})):
                submit_file(ctx.store, __import__("pathlib").Path({str(photos)!r}) / name, Claims("c"))
            print(json.dumps([o.to_dict() for o in pipeline.ingest(ctx)]))
            """
        )
    )
    done = subprocess.run(
        [sys.executable, str(entry)], capture_output=True, text=True, timeout=240, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    outcomes = json.loads(done.stdout.splitlines()[-1])
    assert [o["status"] for o in outcomes] == ["consistent"] * 3


def test_worker_environment_is_built_not_inherited(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing from the caller's environment (secrets, Airflow settings) reaches a worker."""
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "do-not-leak")
    env = worker_environment(tmp_path)
    assert "AWS_SECRET_ACCESS_KEY" not in env
    assert not any(name.startswith(("AIRFLOW", "EVIDENCE", "PYTHON")) for name in env)


def test_crash_is_attributed_to_the_file_after_a_second_try(tmp_path: Path) -> None:
    """A file that kills a fresh worker twice fails alone; the pool keeps serving."""
    with AnalysisPool(AnalysisOptions(), 1, fault="abort:poison") as pool:
        failed = pool.analyse(_job(tmp_path, "poison.jpg", photo(60)))
        ok = pool.analyse(_job(tmp_path, "fine.jpg", photo(61)))
    assert isinstance(failed, FileFailed)
    assert failed.reason == "the analysis worker crashed twice on this file (killed by SIGABRT)"
    assert isinstance(ok, FileAnalysis)


def test_hanging_analysis_is_abandoned_after_the_timeout(tmp_path: Path) -> None:
    """A file whose analysis never returns costs one timeout, then its worker is replaced."""
    with AnalysisPool(AnalysisOptions(), 1, timeout=3, fault="hang:stuck") as pool:
        started = time.monotonic()
        failed = pool.analyse(_job(tmp_path, "stuck.jpg", photo(62)))
        elapsed = time.monotonic() - started
        ok = pool.analyse(_job(tmp_path, "fine.jpg", photo(63)))
    assert isinstance(failed, FileFailed)
    assert failed.reason == "analysis did not finish (no answer within 3 s)"
    assert elapsed < 60
    assert isinstance(ok, FileAnalysis)


def test_pool_that_cannot_start_says_why() -> None:
    """Workers dying in their self-test raise WorkersUnavailable naming the signal."""
    with pytest.raises(WorkersUnavailable, match="could not start: killed by SIGABRT"):
        AnalysisPool(AnalysisOptions(), 2, fault="abort:*").start()


def test_unreadable_file_is_a_result_not_a_crash(tmp_path: Path) -> None:
    """Garbage bytes come back as an analysis with an unreadable finding."""
    with AnalysisPool(AnalysisOptions(), 1) as pool:
        result = pool.analyse(_job(tmp_path, "junk.jpg", b"\xff\xd8\xff\xe0" + b"\x00" * 40))
    assert isinstance(result, FileAnalysis)
    assert "unreadable" in [f.code for f in result.item_findings]


def test_warm_pool_is_reused_for_the_same_configuration() -> None:
    """Two batches in one process with the same settings share their workers."""
    options = AnalysisOptions(keyframes=3)
    with warm_pool(options, 1) as first:
        pids = list(iter_workers(first))
    with warm_pool(options, 1) as second:
        assert second is first
        assert list(iter_workers(second)) == pids
    with warm_pool(AnalysisOptions(keyframes=4), 1) as other:
        assert other is not first


def test_workers_die_with_their_parent(tmp_path: Path) -> None:
    """SIGKILL of the process that owns the pool leaves no worker running."""
    script = tmp_path / "owner.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys, time
            sys.path.insert(0, {str(REPO)!r})
            from verification.analysis import AnalysisOptions, AnalysisPool
            from verification.analysis.pool import iter_workers
            pool = AnalysisPool(AnalysisOptions(), 2)
            pool.start()
            print(" ".join(str(p) for p in iter_workers(pool)), flush=True)
            time.sleep(600)
            """
        )
    )
    owner = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        assert owner.stdout is not None
        pids = [int(p) for p in owner.stdout.readline().split()]
        assert len(pids) == 2 and all(_alive(p) for p in pids)
        owner.send_signal(signal.SIGKILL)
        owner.wait(timeout=10)
        deadline = time.monotonic() + 10
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(p) for p in pids)
    finally:
        if owner.poll() is None:
            owner.kill()


def test_analysis_over_the_memory_limit_fails_alone_with_the_reason(tmp_path: Path) -> None:
    """A file that needs more address space than the worker may take comes back as FileFailed
    naming the limit (the worker's MemoryError), and the same worker serves the next file."""
    options = AnalysisOptions(decode_budget_bytes=4096 * MIB)  # let the decode be attempted
    with AnalysisPool(options, 1, memory_limit=1024 * MIB) as pool:
        before = list(iter_workers(pool))
        huge = _job(tmp_path, "huge.png", zero_png(14_000, 14_000, colour_type=2))  # 784 MB
        failed = pool.analyse(huge)
        ok = pool.analyse(_job(tmp_path, "fine.jpg", photo(64)))
        after = list(iter_workers(pool))
    assert isinstance(failed, FileFailed)
    assert failed.reason == (
        "the analysis needed more than the worker's memory limit of 1024 MiB "
        "(EVIDENCE_WORKER_MEMORY_MB)"
    )
    assert isinstance(ok, FileAnalysis)
    assert after == before  # an answer, not a crash: the worker was not replaced
