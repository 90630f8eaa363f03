"""A pool of analysis worker processes, the same under the CLI, ``dag.test()`` and any executor.

Each worker is a fresh interpreter started with ``python -I -c <bootstrap>`` (see
:mod:`verification.analysis.worker`): it never re-executes the parent's entry point (the
``airflow`` or ``celery`` command) and gets a minimal, explicit environment, so what Airflow
does to a task process's environment cannot break it. A worker analyses one file at a time,
which makes crash attribution exact:

* a worker that dies or hangs on a file is replaced and the file tried once more in the new
  one; a second crash means the file kills the analysis: it comes back as :class:`FileFailed`
  (quarantined by the caller, with the reason), and the rest of the batch goes on;
* every new worker proves it can analyse a built-in photo before it takes work; one that
  cannot start or fails that self-test raises :class:`WorkersUnavailable`: no file is to blame,
  the batch must fail and be retried.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import itertools
import logging
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import verification
from verification.analysis import wire
from verification.analysis.core import AnalysisJob, FileAnalysis
from verification.analysis.options import AnalysisOptions
from verification.core.text import printable

log = logging.getLogger(__name__)

BOOTSTRAP = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from verification.analysis.worker import main; sys.exit(main())"
)
START_TIMEOUT = 180.0
STOP_GRACE = 2.0


class WorkersUnavailable(RuntimeError):
    """Analysis workers cannot run here; no file is at fault, so nothing may be recorded as such."""


@dataclass(frozen=True, slots=True)
class FileFailed:
    """The analysis of one file could not finish (crash, hang or internal error), with why."""

    reason: str


class _WorkerLost(Exception):
    """The worker died or overran its time on the current request."""

    def __init__(self, how: str, *, timed_out: bool = False) -> None:
        super().__init__(how)
        self.how = how
        self.timed_out = timed_out


class _Worker:
    """One child process and its pipes."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process
        self.tail: collections.deque[str] = collections.deque(maxlen=12)
        assert process.stdin is not None and process.stdout is not None
        self.requests = process.stdin.fileno()
        self.replies = process.stdout.fileno()
        self._stderr = threading.Thread(
            target=self._relay, args=(process.stderr,), name=f"worker-{process.pid}-stderr"
        )
        self._stderr.daemon = True
        self._stderr.start()

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self.process.pid

    def _relay(self, stream: IO[bytes] | None) -> None:
        """Log what the child writes to stderr, escaped, and keep the last lines for errors."""
        if stream is None:
            return
        for raw in stream:
            line = printable(raw.decode("utf-8", "replace").rstrip("\n"))
            self.tail.append(line)
            log.warning("analysis worker %s: %s", self.pid, line)

    def request(self, message: Any, timeout: float) -> Any:
        """Send one frame and wait for the answer; raises :class:`_WorkerLost`."""
        try:
            wire.send(self.requests, message)
            return wire.receive(self.replies, time.monotonic() + timeout)
        except wire.ChannelTimeout:
            self.kill()
            msg = f"no answer within {timeout:.0f} s"
            raise _WorkerLost(msg, timed_out=True) from None
        except (wire.ChannelClosed, BrokenPipeError, OSError):
            raise _WorkerLost(self.exit_description()) from None

    def exit_description(self) -> str:
        """How the child ended: exit code or signal name."""
        try:
            code = self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
            code = self.process.wait(timeout=5)
        if code < 0:
            try:
                return f"killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"killed by signal {-code}"
        return f"exited with code {code}"

    def stop(self) -> None:
        """Ask the child to exit, then make sure it did."""
        if self.process.poll() is None:
            try:
                wire.send(self.requests, ("stop",))
                self.process.wait(timeout=STOP_GRACE)
            except (OSError, subprocess.TimeoutExpired):
                self.kill()
        self._close()

    def kill(self) -> None:
        """SIGKILL the child (it holds no state worth saving)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def _close(self) -> None:
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()
        self._stderr.join(timeout=2)


class AnalysisPool:
    """``workers`` analysis processes; :meth:`analyse` is safe to call from many threads."""

    def __init__(
        self,
        options: AnalysisOptions,
        workers: int,
        *,
        timeout: float = 600.0,
        memory_limit: int | None = None,
        fault: str | None = None,
        start_timeout: float = START_TIMEOUT,
    ) -> None:
        self.options = options
        self.size = max(1, workers)
        self.timeout = timeout
        self.memory_limit = memory_limit
        self.fault = fault
        self.start_timeout = start_timeout
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._all: set[_Worker] = set()
        self._lock = threading.Lock()
        self._broken: str | None = None
        self._seq = itertools.count(1)
        self._scratch = tempfile.TemporaryDirectory(prefix="evidence-workers-")

    def __enter__(self) -> AnalysisPool:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def start(self) -> None:
        """Start every worker (concurrently) and wait until each passed its self-test."""
        spawned = [self._spawn() for _ in range(self.size)]
        try:
            for worker in spawned:
                self._handshake(worker)
                self._idle.put(worker)
        except WorkersUnavailable:
            self.close()
            raise

    def analyse(self, job: AnalysisJob) -> FileAnalysis | FileFailed:
        """Analyse one file in a worker; :class:`FileFailed` when the file defeats the analysis.

        Raises :class:`WorkersUnavailable` when workers cannot be (re)started.
        """
        worker = self._take()
        try:
            for attempt in (1, 2):
                try:
                    return self._run(worker, job)
                except _WorkerLost as lost:
                    log.warning(
                        "analysis worker %s %s on %s (attempt %s)",
                        worker.pid,
                        lost.how,
                        printable(job.key),
                        attempt,
                    )
                    self._forget(worker)
                    worker = self._replacement()
                    if lost.timed_out:
                        return FileFailed(f"analysis did not finish ({lost.how})")
                    how = lost.how
            return FileFailed(f"the analysis worker crashed twice on this file ({how})")
        finally:
            if worker.process.poll() is None:
                self._idle.put(worker)

    def healthy(self) -> bool:
        """True when every worker is alive and none failed to start."""
        with self._lock:
            alive = all(w.process.poll() is None for w in self._all)
            return alive and len(self._all) == self.size and self._broken is None

    @property
    def broken(self) -> bool:
        """True once a worker could not be replaced: the pool takes no more work."""
        return self._broken is not None

    def close(self) -> None:
        """Stop every worker; safe to call twice."""
        with self._lock:
            workers, self._all = list(self._all), set()
        for worker in workers:
            worker.stop()
        self._scratch.cleanup()

    # -----------------------------------------------------------------------------------------

    def _run(self, worker: _Worker, job: AnalysisJob) -> FileAnalysis | FileFailed:
        seq = next(self._seq)
        reply = worker.request(("job", seq, job), self.timeout)
        if reply[0] == "result" and reply[1] == seq:
            result: FileAnalysis = reply[2]
            return result
        if reply[0] == "error":
            return FileFailed(str(reply[2]))
        worker.kill()
        msg = f"answered out of turn ({reply[0]!r})"
        raise _WorkerLost(msg)

    def _take(self) -> _Worker:
        while True:
            if self._broken:
                raise WorkersUnavailable(self._broken)
            try:
                return self._idle.get(timeout=0.2)
            except queue.Empty:
                continue

    def _forget(self, worker: _Worker) -> None:
        worker.kill()
        with self._lock:
            self._all.discard(worker)

    def _replacement(self) -> _Worker:
        worker = self._spawn()
        try:
            self._handshake(worker)
        except WorkersUnavailable as exc:
            self._broken = str(exc)
            raise
        return worker

    def _spawn(self) -> _Worker:
        root = Path(verification.__file__).resolve().parents[1]
        if not sys.executable:
            msg = "cannot start analysis workers: the Python interpreter's path is unknown"
            raise WorkersUnavailable(msg)
        process = subprocess.Popen(
            [sys.executable, "-I", "-c", BOOTSTRAP, str(root)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=worker_environment(Path(self._scratch.name)),
            cwd=self._scratch.name,
            close_fds=True,
        )
        worker = _Worker(process)
        with self._lock:
            self._all.add(worker)
        config = {
            "parent_pid": os.getpid(),
            "options": self.options,
            "fault": self.fault,
            "memory_limit": self.memory_limit,
        }
        with contextlib.suppress(OSError):  # it died at once; the handshake says how
            wire.send(worker.requests, ("start", config))
        return worker

    def _handshake(self, worker: _Worker) -> None:
        try:
            reply = wire.receive(worker.replies, time.monotonic() + self.start_timeout)
        except wire.ChannelTimeout:
            worker.kill()
            reply = ("broken", f"no answer within {self.start_timeout:.0f} s of starting")
        except (wire.ChannelClosed, OSError):
            reply = ("broken", worker.exit_description())
        if reply[0] == "ready":
            return
        self._forget(worker)
        detail = " | ".join(worker.tail) or "no output"
        msg = f"analysis worker could not start: {reply[1]} (its last output: {detail})"
        raise WorkersUnavailable(msg)


def worker_environment(scratch: Path) -> dict[str, str]:
    """The whole environment of a worker: nothing inherited, so nothing the caller's process
    manager changed (Airflow's task supervisor, Celery, a pod spec) reaches the analysis."""
    return {
        "PATH": os.defpath,
        "HOME": str(scratch),
        "TMPDIR": tempfile.gettempdir(),
        "LC_ALL": "C.UTF-8",
        "LANG": "C.UTF-8",
        # One file per process: keep numeric libraries from starting a thread per core each.
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "OPENCV_FOR_THREADS_NUM": "1",
        # glibc reserves 64 MiB of address space per malloc arena, up to eight per core, as
        # decoder threads appear (libheif, libavif, FFmpeg in the video child); under the
        # worker's address-space limit (RLIMIT_AS) that reservation alone could exhaust it.
        "MALLOC_ARENA_MAX": "2",
    }


# Warm pools: a process that runs several batches in a row (dag.test(), the nightly reprocessing,
# a notebook, the test suite) starts its workers once. Keyed by everything that configures them;
# a pool that broke is never kept; a forked child never inherits its parent's pools.
_WARM: dict[tuple[Any, ...], AnalysisPool] = {}
_WARM_LOCK = threading.Lock()
MAX_WARM = 2


@contextmanager
def warm_pool(
    options: AnalysisOptions,
    workers: int,
    *,
    timeout: float = 600.0,
    memory_limit: int | None = None,
    fault: str | None = None,
) -> Iterator[AnalysisPool]:
    """An :class:`AnalysisPool` with this configuration, started now or kept from an earlier call."""
    key = (options, max(1, workers), timeout, memory_limit, fault)
    with _WARM_LOCK:
        pool = _WARM.pop(key, None)
    if pool is not None and not pool.healthy():
        pool.close()
        pool = None
    if pool is None:
        pool = AnalysisPool(
            options, workers, timeout=timeout, memory_limit=memory_limit, fault=fault
        )
        pool.start()
    try:
        yield pool
    except BaseException:
        pool.close()
        raise
    if pool.broken:
        pool.close()
        return
    with _WARM_LOCK:
        _WARM[key] = pool
        extra = list(_WARM)[:-MAX_WARM]
        retired = [_WARM.pop(k) for k in extra]
    for old in retired:
        old.close()


def close_warm_pools() -> None:
    """Stop every kept pool (at interpreter exit, or when a test wants a clean slate)."""
    with _WARM_LOCK:
        pools = list(_WARM.values())
        _WARM.clear()
    for pool in pools:
        pool.close()


def _forget_warm_pools() -> None:
    global _WARM_LOCK  # a lock held by another thread at fork time would stay held here
    _WARM_LOCK = threading.Lock()
    _WARM.clear()  # the workers belong to the parent; this child must start its own


atexit.register(close_warm_pools)
os.register_at_fork(after_in_child=_forget_warm_pools)


def iter_workers(pool: AnalysisPool) -> Iterator[int]:
    """Pids of the pool's live workers (for tests and diagnostics)."""
    with pool._lock:
        yield from (w.pid for w in pool._all if w.process.poll() is None)
