"""Every DAG file imports cleanly, without I/O, and follows the house policy (owner, retries, tags)."""

from __future__ import annotations

import fnmatch
import subprocess
from pathlib import Path

import pytest

from tests.integration.airflow_support import DAGS, PYTHON, REPO, inspect_in_subprocess

pytestmark = [pytest.mark.airflow, pytest.mark.integration]


def _dag_files() -> list[Path]:
    ignored = (DAGS / ".airflowignore").read_text().split()
    return sorted(
        p
        for p in DAGS.glob("*.py")
        if not any(fnmatch.fnmatch(p.name, pattern) for pattern in ignored)
    )


DAG_FILES = _dag_files()


@pytest.fixture(scope="module")
def inspected(airflow_base_env: dict[str, str]) -> dict[Path, dict]:
    """Each DAG file inspected once (a subprocess each), shared by the checks below."""
    return {path: inspect_in_subprocess(airflow_base_env, path) for path in DAG_FILES}


def test_every_dag_is_found() -> None:
    """The intake, nightly and export DAG files are discovered; the helper module is not one."""
    names = {p.name for p in DAG_FILES}
    assert {"evidence_intake.py", "evidence_nightly.py", "evidence_export.py"} <= names
    assert "evidence_common.py" not in names


@pytest.mark.parametrize("path", DAG_FILES, ids=[str(p.relative_to(REPO)) for p in DAG_FILES])
def test_dag_file_imports_without_errors_or_io(path: Path, inspected: dict[Path, dict]) -> None:
    """DagBag reports no import error and the import opens no network or database connection."""
    result = inspected[path]
    assert result["import_errors"] == {}
    assert result["io_error"] is None
    assert len(result["dags"]) == 1


@pytest.mark.parametrize("path", DAG_FILES, ids=[str(p.relative_to(REPO)) for p in DAG_FILES])
def test_dag_follows_policy(path: Path, inspected: dict[Path, dict]) -> None:
    """Tags, an owner on every task, retries >= 2 by default, no catchup, docs from the docstring."""
    (facts,) = inspected[path]["dags"].values()
    assert facts["tags"]
    assert facts["owner"] == "evidence" and facts["task_owners"] == ["evidence"]
    assert facts["retries"] >= 2
    assert facts["catchup"] is False
    assert facts["doc_md"]


@pytest.mark.parametrize("path", DAG_FILES, ids=[str(p.relative_to(REPO)) for p in DAG_FILES])
def test_dag_file_passes_ruff_airflow_rules(path: Path) -> None:
    """`ruff check --select AIR` (Airflow 3 migration rules) finds nothing."""
    ruff = Path(PYTHON).parent / "ruff"
    done = subprocess.run(
        [str(ruff), "check", "--select", "AIR", str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_io_guard_refuses_sockets_and_databases() -> None:
    """The guard used while importing DAG files does refuse network and SQLite connections."""
    import socket
    import sqlite3

    from tests.integration.airflow_support import IOAtImport, no_io

    with no_io():
        with pytest.raises(IOAtImport):
            sqlite3.connect(":memory:")
        with socket.socket() as sock, pytest.raises(IOAtImport):
            sock.connect(("127.0.0.1", 9))
    sqlite3.connect(":memory:").close()
