"""Drive a running Airflow stack the way the UI does: JWT login, unpause-on-trigger, REST calls.

The stack itself is ``scripts/airflow_stack.py`` (what ``make airflow`` runs), so the tests start
exactly what an operator starts. :func:`running_stack` also makes sure that nothing it started
survives: it records every descendant process while the stack runs and, after stopping it,
kills and reports any that is left.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from scripts.airflow_stack import REPO, Stack, StackError, free_port
from verification.core.claims import Claims
from verification.core.config import load_settings
from verification.pipeline import Context, open_context
from verification.pipeline.submission import Submitted, submit_file
from verification.storage import ObjectStore

FINAL = {"success", "failed"}


class Driver:
    """REST-level control of a running stack, plus its evidence context."""

    def __init__(self, stack: Stack, ctx: Context, uploads: Path) -> None:
        self.stack = stack
        self.ctx = ctx
        self.uploads = uploads
        self._token: str | None = None
        # Every process seen below the stack while it ran, so that one orphaned later (a task's
        # analysis worker outliving its task, say) is still found at teardown.
        self.seen: set[int] = set()

    def observe(self) -> None:
        """Remember the stack's current process tree."""
        roots = [p.pid for p in self.stack.processes.values()]
        self.seen |= set(roots) | descendants(roots)

    @property
    def token(self) -> str:
        """An admin JWT from ``POST /auth/token`` (the login page's call)."""
        if self._token is None:
            self._token = self.stack.token()
        return self._token

    def api(self, method: str, path: str, body: Any = None) -> Any:
        """One REST call as the admin user."""
        data = json.dumps(body).encode() if body is not None else None
        return self.stack.request(method, path, body=data, token=self.token)

    def page(self, path: str) -> str:
        """A review-plugin page as the admin user sees it."""
        answer = self.stack.request("GET", path, token=self.token)
        assert isinstance(answer, str)
        return answer

    def submit(self, name: str, data: bytes, case: str) -> Submitted:
        """Upload one file to incoming/<case>/ as an investigator would."""
        path = self.uploads / case / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return submit_file(self.ctx.store, path, Claims(case, "tester"))

    def wait_for_dag(self, dag_id: str, timeout: float = 180) -> None:
        """Until the DAG processor has registered ``dag_id``."""
        self._wait(lambda: self._dag_known(dag_id), timeout, f"{dag_id} to be registered")

    def _dag_known(self, dag_id: str) -> bool:
        try:
            self.api("GET", f"/api/v2/dags/{dag_id}")
        except StackError as exc:
            if "HTTP 404" in str(exc):
                return False
            raise
        return True

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        """Unpause (the trigger dialog's default) and trigger a run; returns its run id."""
        self.wait_for_dag(dag_id)
        self.api("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
        run_id = f"manual__test_{uuid.uuid4().hex[:10]}"
        body = {"dag_run_id": run_id, "logical_date": None, "conf": conf or {}}
        answer = self.api("POST", f"/api/v2/dags/{dag_id}/dagRuns", body)
        assert answer["dag_run_id"] == run_id
        return run_id

    def run_state(self, dag_id: str, run_id: str) -> str:
        """The run's state as the API reports it."""
        return str(self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")["state"])

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 300) -> str:
        """Until the run is success or failed; returns that state."""
        found: list[str] = []

        def done() -> bool:
            state = self.run_state(dag_id, run_id)
            found.append(state)
            return state in FINAL

        self._wait(done, timeout, f"run {run_id} of {dag_id} to finish")
        return found[-1]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """Every task instance of the run (mapped ones included)."""
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=1000"
        return list(self.api("GET", path)["task_instances"])

    def asset_events(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """Asset events the run emitted."""
        path = f"/api/v2/assets/events?source_dag_id={dag_id}&source_run_id={run_id}"
        return list(self.api("GET", path)["asset_events"])

    def task_log(self, dag_id: str, run_id: str) -> str:
        """Every task log file of one run, concatenated (for failure messages)."""
        root = self.stack.airflow_home / "logs"
        files = sorted(root.glob(f"dag_id={dag_id}/run_id={run_id}/**/*.log"))
        return "\n".join(f"--- {p.relative_to(root)}\n{p.read_text()[-3000:]}" for p in files)

    def wait_for_log(self, pattern: str, text: str, timeout: float = 90) -> None:
        """Until a log file under the Airflow home matching ``pattern`` contains ``text`` (DAG
        callbacks run in the DAG processor, a little after the run ends)."""
        root = self.stack.airflow_home / "logs"

        def found() -> bool:
            return any(text in p.read_text(errors="replace") for p in root.glob(pattern))

        self._wait(found, timeout, f"{text!r} in {pattern}")

    def _wait(self, predicate: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.stack.check_alive()
            self.observe()
            if predicate():
                return
            time.sleep(1)
        pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n{self.stack.tail()}")


def descendants(pids: Sequence[int]) -> set[int]:
    """Every live process below ``pids`` (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = list(pids)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@contextmanager
def running_stack(
    root: Path,
    components: Sequence[str] | None = None,
    store: ObjectStore | None = None,
    **overrides: str,
) -> Iterator[Driver]:
    """A prepared, started stack under ``root``; stopped and checked for leftovers after.

    The driver's evidence context uses the stack's ledger (``EVIDENCE_DATABASE_URL`` when
    overridden) and ``store`` (default: the local store in the evidence home).
    """
    stack = Stack(root / "evidence", root / "airflow", port=free_port(), overrides=overrides)
    if components:
        stack.components = tuple(components)
    stack.prepare()
    settings = load_settings(
        home=stack.evidence_home, database_url=overrides.get("EVIDENCE_DATABASE_URL")
    )
    ctx = open_context(settings, store=store)
    stack.start()
    driver = Driver(stack, ctx, root / "uploads")
    try:
        yield driver
    finally:
        driver.observe()
        stack.stop()
        ctx.engine.dispose()
        time.sleep(1)  # analysis workers notice their parent's death within half a second
        leftover = [pid for pid in driver.seen if alive(pid)]
        for pid in leftover:
            os.kill(pid, signal.SIGKILL)
        assert not leftover, f"processes left running after the stack stopped: {leftover}"


@contextmanager
def launched_stack(root: Path, **env: str) -> Iterator[Driver]:
    """``make airflow`` itself (``scripts/airflow_stack.py`` in a subprocess), driven over REST.

    Waits for its banner, yields a driver, then stops it as an operator does (Ctrl-C, that is
    SIGINT): it must exit 0, remove its pid file and leave no process behind.
    """
    evidence, airflow, port = root / "evidence", root / "airflow", free_port()
    argv = [
        sys.executable,
        str(REPO / "scripts" / "airflow_stack.py"),
        "--evidence-home",
        str(evidence),
        "--airflow-home",
        str(airflow),
        "--port",
        str(port),
    ]
    root.mkdir(parents=True, exist_ok=True)
    out = (root / "make-airflow.out").open("w+b")
    launcher = subprocess.Popen(
        argv, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT, cwd=REPO
    )
    stack = Stack(evidence, airflow, port=port)
    driver: Driver | None = None
    try:
        _wait_for_banner(launcher, root / "make-airflow.out")
        pids = json.loads(stack.pid_file.read_text())
        stack.processes = {name: _Adopted(pid) for name, pid in pids.items()}  # type: ignore[misc]
        ctx = open_context(load_settings(home=evidence))
        driver = Driver(stack, ctx, root / "uploads")
        yield driver
    finally:
        if driver is not None:
            driver.observe()
            driver.ctx.engine.dispose()
        launcher.send_signal(signal.SIGINT)
        code = launcher.wait(timeout=60)
        out.close()
        time.sleep(1)  # analysis workers notice their parent's death within half a second
        seen = driver.seen if driver is not None else set()
        leftover = [pid for pid in seen if alive(pid)]
        for pid in leftover:
            os.kill(pid, signal.SIGKILL)
        assert code == 0, (root / "make-airflow.out").read_text(errors="replace")[-3000:]
        assert not stack.pid_file.exists(), "make airflow left its pid file behind"
        assert not leftover, f"processes left running after make airflow stopped: {leftover}"


def _wait_for_banner(launcher: subprocess.Popen[bytes], output: Path, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = output.read_text(errors="replace")
        if "Airflow is running" in text:
            return
        if launcher.poll() is not None:
            pytest.fail(f"make airflow exited ({launcher.returncode}):\n{text[-3000:]}")
        time.sleep(0.5)
    pytest.fail(f"make airflow did not start within {timeout:.0f}s:\n{output.read_text()[-3000:]}")


class _Adopted:
    """A process started by the launcher, known to the test by its pid only."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        """None while the process runs (the launcher, not the test, reaps it)."""
        return None if alive(self.pid) else -1
