"""What this machine (or container) gives a batch: usable cores and available memory.

Read once, when the settings are loaded, to size the default number of analysis workers. Both
respect the limits a container or a CPU set imposes, which ``os.cpu_count()`` and the host's
``/proc/meminfo`` alone do not.
"""

from __future__ import annotations

import os
from pathlib import Path

MIB = 1024 * 1024

_MEMINFO = Path("/proc/meminfo")
# cgroup v2, then v1: the memory limit of the container this process runs in, and its usage.
_CGROUP_LIMITS = (
    (Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory.current")),
    (
        Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"),
        Path("/sys/fs/cgroup/memory/memory.usage_in_bytes"),
    ),
)


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, else every core), at least 1."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def available_memory() -> int | None:
    """Bytes that can be allocated without swapping now, or None when this cannot be told.

    The smaller of the kernel's ``MemAvailable`` and what is left under the container's
    memory limit (cgroup v2 or v1), so a pod with a 4 GiB limit on a 256 GiB host says 4 GiB.
    """
    figures = [f for f in (_mem_available(), _cgroup_headroom()) if f is not None]
    return min(figures) if figures else None


def _mem_available() -> int | None:
    try:
        for line in _MEMINFO.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_headroom() -> int | None:
    for limit_path, usage_path in _CGROUP_LIMITS:
        try:
            limit = limit_path.read_text().strip()
            usage = int(usage_path.read_text().strip())
        except (OSError, ValueError):
            continue
        if not limit.isdigit() or int(limit) >= 1 << 60:  # "max", or v1's "no limit"
            return None
        return max(0, int(limit) - usage)
    return None


def default_workers(memory_limit_mb: int | None) -> int:
    """As many analysis workers as there are cores and memory for, at least one.

    Each worker may grow to ``memory_limit_mb`` (its address-space limit), so the count is
    ``min(cores, available memory / limit)``; with no limit, or when the available memory
    cannot be read, every core.
    """
    cores = usable_cores()
    available = available_memory()
    if not memory_limit_mb or available is None:
        return cores
    return max(1, min(cores, available // (memory_limit_mb * MIB)))
