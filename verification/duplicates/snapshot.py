"""A PDQ index saved to one file, so a new batch starts from it instead of re-reading every
stored hash from the database (the read that grew with the collection).

The file is a cache, never evidence: a header (JSON: the identity, which database up to which
``perceptual_log`` id, that the caller checks before use, and where each array lies) followed by
the index's arrays as raw little-endian bytes, each with its CRC-32. Loading checks every CRC
and then uses the arrays where they lie (memory-mapped): no Python object per item, no copy.
An unreadable, damaged, foreign or stale file is ignored and the index is read from the
database again. Writers replace the file atomically, never in place, so a mapped file is never
changed under its reader.
"""

from __future__ import annotations

import json
import logging
import mmap
import os
import struct
import tempfile
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from verification.duplicates.index import ID_ENCODINGS, IndexColumns, PDQIndex

log = logging.getLogger(__name__)

SNAPSHOT_FORMAT = 2
MAGIC = b"PDQSNAP\x00"
_PREFIX = struct.Struct("<8sQI")  # magic, header length, header CRC-32
_ALIGN = 64
_INTEGERS = ("<i4", "<i8")
# Each array's name and the dtypes it may have ("ids" is checked apart: bytes of any width).
_ARRAYS: dict[str, tuple[str, ...]] = {
    "order": _INTEGERS,
    "numbers": _INTEGERS,
    "words0": ("<u8",),
    "words1": ("<u8",),
    "words2": ("<u8",),
    "words3": ("<u8",),
    "frames": ("<i4",),
}


class SnapshotError(ValueError):
    """The file is not a whole snapshot written by this code (its reason, never its content)."""


def save_snapshot(path: Path, index: PDQIndex, identity: Mapping[str, Any]) -> None:
    """Write ``index`` with ``identity`` to ``path``, replacing it atomically."""
    columns = index.columns()
    arrays = {
        "ids": columns.ids,
        "order": columns.order,
        "numbers": columns.numbers,
        **{f"words{w}": column for w, column in enumerate(columns.words)},
        "frames": columns.frames,
    }
    layout: dict[str, dict[str, Any]] = {}
    offset = 0
    for name, array in arrays.items():
        layout[name] = {
            "dtype": array.dtype.newbyteorder("<").str,
            "count": len(array),
            "offset": offset,
            "crc32": zlib.crc32(_bytes_of(array)),
        }
        offset = _aligned(offset + array.nbytes)
    header = json.dumps(
        {"identity": dict(identity), "encoding": columns.encoding, "arrays": layout}
    ).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=".index-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as sink:
            _write(sink, header, arrays)
        Path(name).replace(path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise


def _write(sink: BinaryIO, header: bytes, arrays: Mapping[str, np.ndarray]) -> None:
    start = _aligned(_PREFIX.size + len(header))
    sink.write(_PREFIX.pack(MAGIC, len(header), zlib.crc32(header)))
    sink.write(header)
    sink.write(b"\0" * (start - _PREFIX.size - len(header)))
    written = 0
    for array in arrays.values():
        data = _bytes_of(array)
        sink.write(data)
        written += len(data)
        sink.write(b"\0" * (_aligned(written) - written))
        written = _aligned(written)


def load_snapshot(path: Path) -> tuple[PDQIndex, dict[str, Any]] | None:
    """The index and identity saved in ``path``, or None when there is none or it is unreadable
    (damaged, truncated, another format)."""
    try:
        with path.open("rb") as source:
            header, start = _read_header(source)
            mapped = mmap.mmap(source.fileno(), 0, access=mmap.ACCESS_READ)
        columns = _columns(mapped, header, start)
        identity = header.get("identity")
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        log.warning("ignoring the duplicate index snapshot %s: %s", path, exc)
        return None
    if not isinstance(identity, dict):
        return None
    return PDQIndex.from_columns(columns), identity


def _read_header(source: BinaryIO) -> tuple[dict[str, Any], int]:
    prefix = source.read(_PREFIX.size)
    if len(prefix) != _PREFIX.size:
        msg = "too short for a snapshot"
        raise SnapshotError(msg)
    magic, length, crc = _PREFIX.unpack(prefix)
    if magic != MAGIC:
        msg = "not a snapshot of this format"
        raise SnapshotError(msg)
    raw = source.read(min(length, 1 << 20))
    if len(raw) != length or zlib.crc32(raw) != crc:
        msg = "damaged header"
        raise SnapshotError(msg)
    header = json.loads(raw)
    if not isinstance(header, dict):
        msg = "damaged header"
        raise SnapshotError(msg)
    return header, _aligned(_PREFIX.size + length)


def _columns(mapped: mmap.mmap, header: Mapping[str, Any], start: int) -> IndexColumns:
    """The arrays where they lie in ``mapped``, each checked against its CRC-32."""
    layout = header["arrays"]
    encoding = header["encoding"]
    if encoding not in ID_ENCODINGS or set(layout) != {"ids", *_ARRAYS}:
        msg = "unexpected arrays"
        raise SnapshotError(msg)
    arrays = {name: _array(mapped, name, layout[name], start) for name in layout}
    words = tuple(arrays[f"words{w}"] for w in range(4))
    return IndexColumns(
        arrays["ids"], encoding, arrays["order"], arrays["numbers"], words, arrays["frames"]
    )


def _array(mapped: mmap.mmap, name: str, spec: Mapping[str, Any], start: int) -> np.ndarray:
    dtype = np.dtype(spec["dtype"])
    allowed = _ARRAYS.get(name)
    is_ids = name == "ids" and dtype.kind == "S" and dtype.itemsize > 0
    if not is_ids and (allowed is None or dtype.str not in allowed):
        msg = f"unexpected type for {name}"
        raise SnapshotError(msg)
    count, offset = int(spec["count"]), int(spec["offset"])
    begin = start + offset
    if count < 0 or offset < 0 or offset % _ALIGN or begin + count * dtype.itemsize > len(mapped):
        msg = f"{name} lies outside the file (truncated?)"
        raise SnapshotError(msg)
    array = np.frombuffer(mapped, dtype=dtype, count=count, offset=begin)
    if zlib.crc32(_bytes_of(array)) != spec["crc32"]:
        msg = f"{name} does not match its CRC-32 (damaged)"
        raise SnapshotError(msg)
    return array


def _bytes_of(array: np.ndarray) -> memoryview:
    """The array's bytes as stored (little-endian, as the dtypes in the header say)."""
    contiguous = np.ascontiguousarray(array)
    if contiguous.dtype.byteorder == ">":
        contiguous = contiguous.astype(contiguous.dtype.newbyteorder("<"))
    return memoryview(contiguous.view(np.uint8).data)


def _aligned(offset: int) -> int:
    return -(-offset // _ALIGN) * _ALIGN
