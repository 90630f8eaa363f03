"""An analysis worker: a child process that analyses one file at a time for its parent.

Started by :class:`verification.analysis.pool.AnalysisPool` as ``python -I -c <bootstrap>``: it
never re-runs its parent's entry point, ignores ``PYTHON*`` variables, and reads everything it
needs (analysis options, its parent's pid, a memory limit) from the first frame on stdin. Replies
go out on the original stdout; anything a library prints goes to stderr, which the parent logs.

It exits when its parent does (a watchdog thread compares ``getppid()`` with the pid the parent
announced, and stdin reaching end-of-file means the parent is gone), so a killed ``evidence
ingest`` or task process leaves no worker behind.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import threading
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from verification.analysis import wire

log = logging.getLogger(__name__)

CANARY_KEY = "canary/self-test.jpg"
WATCHDOG_SECONDS = 0.5


def main() -> int:
    """Serve analysis jobs from stdin until told to stop or the parent goes away."""
    replies = os.dup(1)
    os.dup2(2, 1)  # a stray print from a library must not corrupt the reply stream
    sys.stdout = sys.stderr
    logging.basicConfig(
        level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        start = wire.receive(0)
    except wire.ChannelClosed:
        return 0
    config: dict[str, Any] = start[1]
    _watch_parent(int(config["parent_pid"]))
    _limit_memory(config.get("memory_limit"))
    options = config["options"]
    fault = str(config.get("fault") or "")
    out_of_memory = _out_of_memory_reason(config.get("memory_limit"))
    problem = _self_test(options, fault, out_of_memory)
    if problem:
        wire.send(replies, ("broken", problem))
        return 3
    wire.send(replies, ("ready", {"pid": os.getpid()}))
    return _serve(replies, options, fault, out_of_memory)


def _serve(replies: int, options: Any, fault: str, out_of_memory: str) -> int:
    from verification.analysis.core import analyse_file

    while True:
        try:
            message = wire.receive(0)
        except wire.ChannelClosed:
            return 0
        if message[0] != "job":
            return 0
        _, seq, job = message
        _injected_fault(fault, job.key)
        try:
            reply: tuple[Any, ...] = ("result", seq, analyse_file(job, options))
        except MemoryError:  # the file needs more than this worker may take: its reason
            reply = ("error", seq, out_of_memory)
        except Exception as exc:  # a bug met on one file: report it, serve the next
            log.error("analysis raised on one file:\n%s", traceback.format_exc(limit=8))
            reply = ("error", seq, f"internal error: {type(exc).__name__}")
        wire.send(replies, reply)


def _out_of_memory_reason(limit: int | None) -> str:
    """What a file whose analysis ran out of memory is quarantined with."""
    if not limit:
        return "the analysis ran out of memory"
    return (
        f"the analysis needed more than the worker's memory limit of {int(limit) // 2**20} MiB "
        "(EVIDENCE_WORKER_MEMORY_MB)"
    )


def _self_test(options: Any, fault: str, out_of_memory: str) -> str | None:
    """Analyse a small built-in photo; a worker that cannot is broken, whatever the files are."""
    from verification.analysis.core import AnalysisJob, analyse_file
    from verification.core.claims import Claims
    from verification.media.samples import exif_bytes, jpeg, scene

    _injected_fault(fault, CANARY_KEY)
    try:
        with tempfile.TemporaryDirectory(prefix="evidence-canary-") as tmp:
            path = Path(tmp) / "self-test.jpg"
            taken = "2024:03:14 11:20:05"
            path.write_bytes(
                jpeg(scene(1, size=(96, 72)), exif_bytes(taken=taken, gps=(50.45, 30.52, 179.0)))
            )
            claims = Claims("self-test", lat=50.45, lon=30.52)
            result = analyse_file(
                AnalysisJob(str(path), CANARY_KEY, claims, datetime(2024, 3, 15, tzinfo=UTC)),
                options,
            )
    except MemoryError:
        return f"self-test failed: {out_of_memory}"
    except Exception as exc:
        return f"self-test raised {type(exc).__name__}: {exc}"
    unreadable = [f.message for f in result.item_findings if f.code == "unreadable"]
    if unreadable or not result.perceptual.get("pdq"):
        return f"self-test photo was not analysed: {unreadable or 'no perceptual hash'}"
    return None


def _watch_parent(parent: int) -> None:
    """Exit as soon as the parent is gone (re-parented to init or a subreaper)."""

    def watch() -> None:
        while True:
            if os.getppid() != parent:
                os._exit(70)
            time.sleep(WATCHDOG_SECONDS)

    if os.getppid() != parent:
        os._exit(70)
    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def _limit_memory(limit: int | None) -> None:
    """A hard address-space limit: an allocation past it fails in this worker, not the machine."""
    if not limit:
        return
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (int(limit), int(limit)))


# Test hook: ``abort:<text>`` makes a worker die (SIGABRT) while analysing a key containing
# <text>, ``hang:<text>`` makes it stop answering; ``*`` matches every file, the start-up
# self-test included. The parent reads it from EVIDENCE_TEST_FAULT and passes it in the start
# frame; only the test suite sets it.
def _injected_fault(fault: str, key: str) -> None:
    action, _, text = fault.partition(":")
    if not text or (text != "*" and text not in key):
        return
    if action == "abort":
        os.abort()
    if action == "hang":
        while True:
            time.sleep(60)
