"""Frames between a batch process and its analysis workers: an 8-byte length, then a pickle.

Both ends are this package, started by :mod:`verification.analysis.pool` over private pipes, so
pickle is safe here; the frame size is bounded so a corrupted stream cannot exhaust memory.
"""

from __future__ import annotations

import os
import pickle
import select
import struct
import time
from typing import Any

HEADER = struct.Struct(">Q")
MAX_FRAME = 512 * 1024 * 1024


class ChannelClosed(EOFError):
    """The other end closed its pipe (it exited or was killed)."""


class ChannelTimeout(TimeoutError):
    """No complete frame arrived before the deadline."""


def encode(message: Any) -> bytes:
    """One frame holding ``message``."""
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(body)) + body


def send(fd: int, message: Any) -> None:
    """Write one frame to ``fd`` (blocking until written)."""
    view = memoryview(encode(message))
    while view:
        written = os.write(fd, view)
        view = view[written:]


def receive(fd: int, deadline: float | None = None) -> Any:
    """Read one frame from ``fd``; ``deadline`` is a :func:`time.monotonic` value or None."""
    (size,) = HEADER.unpack(_read_exact(fd, HEADER.size, deadline))
    if size > MAX_FRAME:
        msg = f"frame of {size} bytes is over the {MAX_FRAME}-byte limit"
        raise ChannelClosed(msg)
    return pickle.loads(_read_exact(fd, size, deadline))  # noqa: S301 (our own child, private pipe)


def _read_exact(fd: int, size: int, deadline: float | None) -> bytes:
    chunks: list[bytes] = []
    remaining = size
    while remaining:
        if deadline is not None:
            wait = deadline - time.monotonic()
            if wait <= 0 or not select.select([fd], [], [], wait)[0]:
                raise ChannelTimeout
        chunk = os.read(fd, min(remaining, 1 << 20))
        if not chunk:
            raise ChannelClosed
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)
