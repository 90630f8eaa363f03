"""``make airflow``: the evidence DAGs and the review UI on a real, embedded Airflow.

Starts what a deployment runs (``airflow api-server``, ``scheduler``, ``dag-processor`` and
``triggerer``, LocalExecutor, Airflow's own defaults) against an Airflow home next to the evidence
home (default ``var/demo``, where ``make demo`` put its data), with this checkout's ``dags/`` and
``plugins/``. Prints the URL and how to log in, then keeps everything running until Ctrl-C (or
until one of the processes dies, which stops the rest and exits non-zero).

The test suite starts the same stack through :class:`Stack`, so what the tests exercise is what
an operator runs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
PASSWORDS = "simple_auth_manager_passwords.json.generated"


class StackError(RuntimeError):
    """The stack could not be prepared or started; the message says which step and why."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (at the time of asking)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_or_free(preferred: int) -> int:
    """``preferred`` when nothing listens on it, else a free port (another Airflow may run here)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("", preferred))
        except OSError:
            return free_port()
    return preferred


@dataclass
class Stack:
    """One embedded Airflow with the evidence DAGs and plugin; every process in its own group."""

    evidence_home: Path
    airflow_home: Path
    port: int = 8080
    host: str = "127.0.0.1"
    components: tuple[str, ...] = COMPONENTS
    overrides: Mapping[str, str] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _logs: list[IO[bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.evidence_home = self.evidence_home.resolve()
        self.airflow_home = self.airflow_home.resolve()
        # The scheduler and the triggerer serve their task logs on fixed ports by default.
        self.log_ports = {
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(port_or_free(8793)),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(port_or_free(8794)),
        }

    @property
    def url(self) -> str:
        """Where the UI and the REST API answer."""
        return f"http://{self.host}:{self.port}"

    @property
    def log_dir(self) -> Path:
        """One log file per process."""
        return self.airflow_home / "logs" / "stack"

    @property
    def pid_file(self) -> Path:
        """The pids of the running processes, for whoever has to clean up after a crash."""
        return self.airflow_home / "stack.pids"

    def environment(self) -> dict[str, str]:
        """The caller's environment without its AIRFLOW_* settings, plus this stack's."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        env.update(
            {
                "AIRFLOW_HOME": str(self.airflow_home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
                "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
                "AIRFLOW__API__BASE_URL": self.url,
                **self.log_ports,
                "EVIDENCE_HOME": str(self.evidence_home),
                "PATH": os.pathsep.join([str(BIN), env.get("PATH", os.defpath)]),
            }
        )
        env.update(self.overrides)
        return env

    # -----------------------------------------------------------------------------------------

    def prepare(self) -> None:
        """Create the homes, migrate Airflow's metadata database, initialise the evidence ledger."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.evidence_home.mkdir(parents=True, exist_ok=True)
        self._run_once("migrate", [str(BIN / "airflow"), "db", "migrate"], timeout=600)
        self._run_once("evidence-init", [str(BIN / "evidence"), "init"], timeout=120)

    def _run_once(self, name: str, argv: list[str], timeout: float) -> None:
        log = self.log_dir / f"{name}.log"
        with log.open("wb") as out:
            done = subprocess.run(
                argv,
                env=self.environment(),
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
            )
        if done.returncode != 0:
            tail = log.read_text(errors="replace")[-3000:]
            msg = f"{' '.join(argv[1:])} failed (exit {done.returncode}); {log}:\n{tail}"
            raise StackError(msg)

    def start(self, ready_timeout: float = 180) -> None:
        """Start every component and wait until the API answers; stops everything on failure."""
        try:
            for name in self.components:
                self._start(name)
            self._write_pids()
            self.wait_ready(ready_timeout)
        except BaseException:
            self.stop()
            raise

    def _start(self, name: str) -> None:
        argv = [str(BIN / "airflow"), *self._arguments(name)]
        log = (self.log_dir / f"{name}.log").open("ab")
        self._logs.append(log)
        self.processes[name] = subprocess.Popen(
            argv,
            env=self.environment(),
            cwd=self.airflow_home,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def _arguments(self, name: str) -> list[str]:
        if name == "api-server":
            return ["api-server", "--host", self.host, "--port", str(self.port)]
        if name.startswith("celery-worker"):
            return ["celery", "worker", "--celery-hostname", f"{name}@%h"]
        return [name]

    def _write_pids(self) -> None:
        pids = {name: process.pid for name, process in self.processes.items()}
        self.pid_file.write_text(json.dumps(pids, indent=1) + "\n")

    def wait_ready(self, timeout: float) -> None:
        """Until ``/api/v2/monitor/health`` answers; raises when a process died or time ran out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                with urllib.request.urlopen(f"{self.url}/api/v2/monitor/health", timeout=3):  # noqa: S310 (our own loopback URL)
                    return
            except (urllib.error.URLError, OSError):
                time.sleep(0.5)
        msg = f"the api-server did not answer within {timeout:.0f} s\n{self.tail()}"
        raise StackError(msg)

    def dead(self) -> list[str]:
        """Components that have exited."""
        return [name for name, process in self.processes.items() if process.poll() is not None]

    def check_alive(self) -> None:
        """Raise :class:`StackError` naming any component that exited."""
        dead = self.dead()
        if dead:
            codes = ", ".join(f"{n} (exit {self.processes[n].returncode})" for n in dead)
            msg = f"stopped unexpectedly: {codes}\n{self.tail()}"
            raise StackError(msg)

    def stop(self, grace: float = 20) -> None:
        """SIGTERM every process group, SIGKILL what is left after ``grace`` seconds."""
        for process in self.processes.values():
            if process.poll() is None:
                _signal_group(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
            # Children that left the group (executor workers, analysis workers) go with it.
            _signal_group(process.pid, signal.SIGKILL)
        for log in self._logs:
            log.close()
        self._logs.clear()
        self.pid_file.unlink(missing_ok=True)

    # -----------------------------------------------------------------------------------------

    def password(self, user: str = "admin") -> str | None:
        """The generated password of a SimpleAuthManager user (written by the api-server)."""
        path = self.airflow_home / PASSWORDS
        if not path.exists():
            return None
        value = json.loads(path.read_text()).get(user)
        return str(value) if value is not None else None

    def token(self, user: str = "admin", password: str | None = None) -> str:
        """A JWT for the REST API, from ``POST /auth/token`` as the login page gets one."""
        body = json.dumps({"username": user, "password": password or self.password(user)})
        answer = self.request("POST", "/auth/token", body=body.encode(), token=None)
        return str(answer["access_token"])

    def request(
        self, method: str, path: str, *, body: bytes | None = None, token: str | None = None
    ) -> Any:
        """One JSON request to the api-server; raises on an HTTP error with its body."""
        request = urllib.request.Request(f"{self.url}{path}", data=body, method=method)  # noqa: S310 (loopback)
        request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (loopback)
                data = response.read()
                kind = response.headers.get("Content-Type", "")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:2000]
            msg = f"{method} {path}: HTTP {exc.code}: {detail}"
            raise StackError(msg) from None
        return json.loads(data) if "json" in kind else data.decode(errors="replace")

    def tail(self, chars: int = 2500) -> str:
        """The end of every component's log, for error messages."""
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-chars:]}"
            for path in sorted(self.log_dir.glob("*.log"))
        )


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def banner(stack: Stack) -> str:
    """What the operator needs: URL, login, where things are, how to feed it."""
    evidence = os.path.relpath(stack.evidence_home)
    password = stack.password() or f"(see {stack.airflow_home / PASSWORDS})"
    return "\n".join(
        [
            "",
            "Airflow is running with the evidence DAGs and the review UI:",
            f"  UI        {stack.url}   (the Evidence entry in the navigation)",
            f"  login     admin / {password}",
            f"  evidence  {evidence}   (ledger, store and signing key)",
            f"  logs      {os.path.relpath(stack.log_dir)}/",
            "",
            "Submit files, then trigger evidence_intake in the UI (Dags, evidence_intake, Trigger;",
            "leave 'unpause' ticked so its */5 schedule runs too):",
            f"  EVIDENCE_HOME={evidence} .venv/bin/evidence submit PHOTO.jpg --case case-1 --submitter me",
            "",
            "Ctrl-C stops everything.",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    """Start the stack in the foreground."""
    parser = argparse.ArgumentParser(prog="make airflow", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--evidence-home",
        type=Path,
        default=Path(os.environ.get("EVIDENCE_HOME", "var/demo")),
        help="evidence ledger, store and key (default: var/demo, or EVIDENCE_HOME)",
    )
    parser.add_argument(
        "--airflow-home", type=Path, help="Airflow home (default: EVIDENCE_HOME/airflow)"
    )
    parser.add_argument("--port", type=int, default=8080, help="UI and API port (default 8080)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    args = parser.parse_args(argv)
    stack = Stack(
        args.evidence_home,
        args.airflow_home or args.evidence_home / "airflow",
        port=args.port,
        host=args.host,
    )
    stopping = False

    def stop(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        print("Preparing Airflow (metadata database, evidence ledger)...", flush=True)
        stack.prepare()
        print(f"Starting {', '.join(stack.components)}...", flush=True)
        stack.start()
        print(banner(stack), flush=True)
        while not stopping:
            stack.check_alive()
            time.sleep(1)
    except StackError as exc:
        print(f"make airflow: {exc}", file=sys.stderr)
        stack.stop()
        return 1
    print("\nStopping...", flush=True)
    stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
