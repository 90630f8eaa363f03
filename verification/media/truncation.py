"""Whether a file that failed to decode was cut short, judged from its own structure.

Decoders say "truncated" in many ways (Pillow's "image file is truncated", libwebp's "could not
create decoder object", libheif's "Unexpected end of file", libavif's "Truncated data"), and some
not at all. The container is more reliable: each format states how long its parts are, so a
part that runs past the end of the file, or a file that ends before its image data, was cut.
Only consulted after a decode failed, so a valid file never pays for it.
"""

from __future__ import annotations

import io
import struct
from typing import BinaryIO

MAX_PARTS = 4096  # segments, chunks or boxes walked before giving up (answering "not known")

_PILLOW_TRUNCATED = "image file is truncated"


def is_truncated(fh: BinaryIO, fmt: str, error: BaseException | None = None) -> bool:
    """True when the file ends before the structure it declares is complete."""
    if isinstance(error, OSError) and _PILLOW_TRUNCATED in str(error):
        return True
    size = fh.seek(0, io.SEEK_END)
    fh.seek(0)
    check = _CHECKS.get(fmt)
    try:
        return check(fh, size) if check else False
    except (OSError, struct.error):
        return False


def _jpeg(fh: BinaryIO, size: int) -> bool:
    """A marker segment runs past the end, or the file ends before the scan data starts."""
    if fh.read(2) != b"\xff\xd8":
        return False
    offset = 2
    for _ in range(MAX_PARTS):
        fh.seek(offset)
        marker = fh.read(4)
        if len(marker) < 4:
            return True
        if marker[0] != 0xFF:
            return False
        if marker[1] == 0xFF:  # fill byte before a marker
            offset += 1
            continue
        length = int.from_bytes(marker[2:], "big")
        if marker[1] == 0xDA:
            return offset + 2 + length >= size
        offset += 2 + length
        if offset > size:
            return True
    return False


def _png(fh: BinaryIO, size: int) -> bool:
    """A chunk runs past the end, or the file ends before the IEND chunk."""
    offset = 8
    for _ in range(MAX_PARTS):
        fh.seek(offset)
        header = fh.read(8)
        if len(header) < 8:
            return True
        length, kind = struct.unpack(">I4s", header)
        if not kind.isalpha():
            return False  # not a chunk: garbage, not a cut
        offset += 12 + length
        if offset > size:
            return True
        if kind == b"IEND":
            return False
    return False


def _riff(fh: BinaryIO, size: int) -> bool:
    """The RIFF header declares more bytes than the file holds (WebP)."""
    header = fh.read(8)
    return len(header) == 8 and 8 + int.from_bytes(header[4:], "little") > size


def _isobmff(fh: BinaryIO, size: int) -> bool:
    """A top-level box runs past the end (HEIF, AVIF: the image data box is usually last)."""
    offset = 0
    for _ in range(MAX_PARTS):
        if offset >= size:
            return False
        fh.seek(offset)
        header = fh.read(16)
        if len(header) < 8:
            return True
        length = struct.unpack(">I", header[:4])[0]
        if not header[4:8].isascii() or not header[4:8].decode("ascii").isprintable():
            return False  # not a box: garbage, not a cut
        if length == 1 and len(header) == 16:
            length = struct.unpack(">Q", header[8:])[0]
        if length == 0:
            return False  # the box runs to the end of the file, whatever its length
        if length < 8:
            return False
        offset += length
        if offset > size:
            return True
    return False


_CHECKS = {"jpeg": _jpeg, "png": _png, "webp": _riff, "heif": _isobmff, "avif": _isobmff}
