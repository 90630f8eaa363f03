"""Run a command and measure it as a user pays for it: wall time and the peak resident memory of
the whole process tree (the command and every child it starts, pool workers included).

``/usr/bin/time`` or ``getrusage`` see one process; a pipeline that analyses in worker processes
keeps most of its memory in them, so the tree is sampled (every 20 ms, with psutil) instead.
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Run:
    """One finished command: wall seconds, peak tree RSS (MiB), and whether children outlived it."""

    seconds: float
    peak_mib: float
    leftovers: int


def _tree_rss(root: psutil.Process) -> int:
    total = 0
    try:
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.Error:
            continue
    return total


def run(
    argv: Sequence[str],
    env: Mapping[str, str] | None = None,
    *,
    cwd: Path | None = None,
    stdin: str | None = None,
    interval: float = 0.02,
) -> Run:
    """Run ``argv`` to completion (it must succeed) and return its :class:`Run`."""
    start = time.perf_counter()
    process = subprocess.Popen(
        list(argv),
        env=dict(env) if env is not None else None,
        cwd=cwd,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    watched = psutil.Process(process.pid)
    peak = 0
    children: set[int] = set()
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_rss(watched))
            with contextlib.suppress(psutil.Error):
                children.update(c.pid for c in watched.children(recursive=True))
            time.sleep(interval)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = process.communicate(stdin)
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    if process.returncode != 0:
        msg = f"{list(argv)[:3]} failed ({process.returncode}):\n{(out + err)[-3000:]}"
        raise RuntimeError(msg)
    time.sleep(0.2)
    leftovers = sum(1 for pid in children if psutil.pid_exists(pid) and _alive(pid))
    return Run(seconds, peak / MIB, leftovers)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
