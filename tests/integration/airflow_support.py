"""Run the evidence DAGs for real (``dag.test()``) in their own Airflow home, one subprocess per run.

Airflow reads its configuration once per process, so every run gets a fresh interpreter with the
environment a test builds (its AIRFLOW_HOME, SQLite metadata DB, EVIDENCE_* settings and the
``evidence_s3`` Connection as AIRFLOW_CONN_EVIDENCE_S3).

Run as ``python -m tests.integration.airflow_support run DAG_ID [options]`` (or ``inspect FILE``
for the integrity test: import with network and database connections refused, then a DagBag);
``run`` options inject faults
for the tests, all in this test process and never in the library:

* ``--crash-after-preserve MARKER``: the first preservation writes the vault object, then the task
  dies (a ``BaseException`` the batch cannot catch) before anything reaches the ledger, as if the
  task process were killed; MARKER (a file) makes it happen once. Preservation runs in the task's
  own process (the analysis workers never touch the store), whatever ``EVIDENCE_WORKERS`` is.
* ``--fail-get-object KEY``: every S3 GetObject of KEY on the Connection's client fails as a
  dropped connection (a botocore event hook).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"
PYTHON = sys.executable
DAG_FILES = {
    "evidence_intake": DAGS / "evidence_intake.py",
    "evidence_nightly": DAGS / "evidence_nightly.py",
    "evidence_export": DAGS / "evidence_export.py",
}
RESULT_PREFIX = "DAG-TEST-RESULT "


def airflow_env(home: Path, *, db_url: str | None = None, **extra: str) -> dict[str, str]:
    """Environment for an isolated Airflow: own home, SQLite metadata DB, no examples, low parallelism."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_", "AIRFLOW__"))}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db_url or f"sqlite:///{home / 'airflow.db'}",
            "PYTHONPATH": os.pathsep.join([str(REPO), str(DAGS)]),
            "EVIDENCE_RETRY_DELAY_SECONDS": "1",
        }
    )
    env.update(extra)
    return env


def migrate(env: Mapping[str, str]) -> None:
    """``airflow db migrate`` once for a home; the output is shown when it fails."""
    done = subprocess.run(
        [str(Path(PYTHON).parent / "airflow"), "db", "migrate"],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    if done.returncode != 0:
        msg = f"airflow db migrate failed:\n{(done.stdout + done.stderr)[-4000:]}"
        raise RuntimeError(msg)


def s3_connection(endpoint: str, bucket: str) -> str:
    """AIRFLOW_CONN_EVIDENCE_S3 value: an aws Connection to ``endpoint`` naming ``bucket``."""
    return json.dumps(
        {
            "conn_type": "aws",
            "login": "testing",
            "password": "testing",
            "extra": {
                "endpoint_url": endpoint,
                "region_name": "us-east-1",
                "config_kwargs": {"s3": {"addressing_style": "path"}},
                "service_config": {"s3": {"bucket_name": bucket}},
            },
        }
    )


@dataclass(frozen=True)
class DagRunResult:
    """State of a finished ``dag.test()`` run and the subprocess output."""

    state: str
    run_id: str | None
    output: str
    exit_code: int


def run_dag(
    env: Mapping[str, str],
    dag_id: str,
    *,
    conf: Mapping[str, Any] | None = None,
    crash_after_preserve: Path | None = None,
    fail_get_object: str | None = None,
    timeout: float = 120,
) -> DagRunResult:
    """Run one DAG with ``dag.test()`` in a subprocess; returns its final state."""
    argv = [PYTHON, "-m", "tests.integration.airflow_support", "run", dag_id]
    if conf:
        argv += ["--conf", json.dumps(conf)]
    if crash_after_preserve:
        argv += ["--crash-after-preserve", str(crash_after_preserve)]
    if fail_get_object:
        argv += ["--fail-get-object", fail_get_object]
    done = subprocess.run(
        argv, env=dict(env), cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False
    )
    output = done.stdout + done.stderr
    for line in done.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            data = json.loads(line.removeprefix(RESULT_PREFIX))
            return DagRunResult(data["state"], data["run_id"], output, done.returncode)
    msg = (
        f"dag.test() of {dag_id} ended without a result (exit {done.returncode}):\n{output[-4000:]}"
    )
    raise AssertionError(msg)


def inspect_in_subprocess(env: Mapping[str, str], path: Path) -> dict[str, Any]:
    """:func:`inspect_dag_file` in a fresh interpreter with ``env``."""
    done = subprocess.run(
        [PYTHON, "-m", "tests.integration.airflow_support", "inspect", str(path)],
        env=dict(env),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    for line in done.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            result: dict[str, Any] = json.loads(line.removeprefix(RESULT_PREFIX))
            return result
    msg = (
        f"inspecting {path} failed (exit {done.returncode}):\n{(done.stdout + done.stderr)[-4000:]}"
    )
    raise AssertionError(msg)


# ---------------------------------------------------------------------------------------------
# The subprocess side


class SimulatedWorkerKill(BaseException):
    """Raised once after the vault write: nothing below ``except Exception`` can swallow it."""


def install_crash_after_preserve(marker: Path) -> None:
    """Make the first preservation die after writing the vault object (once, via ``marker``)."""
    from verification.pipeline import preservation as module

    original = module.preserve

    def preserve_then_die(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        if not marker.exists():
            marker.write_text("crashed once\n")
            raise SimulatedWorkerKill("worker killed between vault write and ledger commit")
        return result

    module.preserve = preserve_then_die  # type: ignore[assignment]


def install_get_object_failure(key: str) -> None:
    """Every GetObject of ``key`` on the S3Hook's clients fails like a dropped connection."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook
    from botocore.exceptions import ConnectionClosedError

    def refuse(params: Mapping[str, Any], **_: Any) -> None:
        if params.get("Key") == key:
            raise ConnectionClosedError(endpoint_url=f"injected failure for {key}")

    original = S3Hook.get_conn

    def get_conn(self: Any) -> Any:
        client = original(self)
        client.meta.events.register(
            "before-parameter-build.s3.GetObject", refuse, unique_id="test-fail-get-object"
        )
        return client

    S3Hook.get_conn = get_conn  # type: ignore[method-assign]


def load_dag(dag_id: str) -> Any:
    """Import a DAG file the way the DAG processor would (the dags folder on sys.path)."""
    sys.path.insert(0, str(DAGS))
    spec = importlib.util.spec_from_file_location(dag_id, DAG_FILES[dag_id])
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag


class IOAtImport(RuntimeError):
    """A DAG file touched the network or a database while being imported."""


@contextmanager
def no_io() -> Iterator[None]:
    """Refuse socket connections and database connections (sqlite3, psycopg2) inside the block."""
    import socket
    import sqlite3
    from unittest import mock

    def refuse(*args: Any, **_kw: Any) -> None:
        msg = f"I/O at DAG import: connect{args[1:]!r}"
        raise IOAtImport(msg)

    patches = [
        mock.patch.object(socket.socket, "connect", refuse),
        mock.patch.object(socket.socket, "connect_ex", refuse),
        mock.patch.object(sqlite3, "connect", refuse),
    ]
    if importlib.util.find_spec("psycopg2") is not None:
        patches.append(mock.patch("psycopg2.connect", refuse))
    with ExitStack() as stack:
        for patch in patches:
            stack.enter_context(patch)
        yield


def inspect_dag_file(path: Path) -> dict[str, Any]:
    """What the integrity test checks: I/O at import, DagBag import errors, per-DAG policy facts."""
    import airflow  # noqa: F401 (configure Airflow before the I/O guard goes up)

    io_error = None
    sys.path.insert(0, str(DAGS))
    try:
        with no_io():
            spec = importlib.util.spec_from_file_location(f"_probe_{path.stem}", path)
            assert spec is not None and spec.loader is not None
            spec.loader.exec_module(importlib.util.module_from_spec(spec))
    except IOAtImport as exc:
        io_error = str(exc)
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(path), bundle_path=DAGS)
    dags = {
        dag_id: {
            "tags": sorted(dag.tags),
            "owner": dag.default_args.get("owner"),
            "retries": dag.default_args.get("retries"),
            "catchup": dag.catchup,
            "doc_md": bool(dag.doc_md),
            "task_owners": sorted({t.owner for t in dag.tasks}),
        }
        for dag_id, dag in bag.dags.items()
    }
    return {"io_error": io_error, "import_errors": dict(bag.import_errors), "dags": dags}


def main(argv: list[str] | None = None) -> int:
    """``run DAG_ID [options]`` (dag.test()) or ``inspect FILE``; prints one JSON result line."""
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run")
    run.add_argument("dag_id", choices=sorted(DAG_FILES))
    run.add_argument("--conf", type=json.loads, default=None)
    run.add_argument("--crash-after-preserve", type=Path)
    run.add_argument("--fail-get-object")
    inspect = sub.add_parser("inspect")
    inspect.add_argument("path", type=Path)
    args = parser.parse_args(argv)
    if args.command == "inspect":
        print(RESULT_PREFIX + json.dumps(inspect_dag_file(args.path)), flush=True)
        return 0
    if args.crash_after_preserve:
        install_crash_after_preserve(args.crash_after_preserve)
    if args.fail_get_object:
        install_get_object_failure(args.fail_get_object)
    # The DAG file's own `if __name__ == "__main__"` path: dag.test(), exit 1 unless success.
    sys.path.insert(0, str(DAGS))
    from evidence_common import run_locally

    runs: list[Any] = []
    dag = load_dag(args.dag_id)
    original = dag.test

    def test_and_keep(*a: Any, **kw: Any) -> Any:
        run = original(*a, **{"run_conf": args.conf, **kw})
        runs.append(run)
        return run

    dag.test = test_and_keep
    code = run_locally(dag)
    state = str(getattr(runs[0].state, "value", runs[0].state))
    print(RESULT_PREFIX + json.dumps({"state": state, "run_id": runs[0].run_id}), flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
