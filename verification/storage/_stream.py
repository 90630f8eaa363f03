"""Helpers shared by the backends: bounded-chunk copying with digests, metadata value encoding."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import BinaryIO
from urllib.parse import quote, unquote

CHUNK_SIZE = 1024 * 1024
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
# Printable ASCII except "%": everything else is percent-encoded, so decoding is exact.
_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%")


@dataclass(frozen=True, slots=True)
class Digests:
    """What one streaming pass over an object measured."""

    size: int
    sha256: str
    md5: str


def copy_with_digests(source: BinaryIO, sink: BinaryIO | None = None) -> Digests:
    """Read ``source`` to its end in 1 MiB chunks, writing to ``sink`` if given; return digests."""
    sha256 = hashlib.sha256()
    md5 = hashlib.md5()
    size = 0
    while chunk := source.read(CHUNK_SIZE):
        sha256.update(chunk)
        md5.update(chunk)
        size += len(chunk)
        if sink is not None:
            sink.write(chunk)
    return Digests(size=size, sha256=sha256.hexdigest(), md5=md5.hexdigest())


def expected_sha256(sha256: str | None) -> str | None:
    """The caller's expected digest in lower-case hex; ValueError when it is not SHA-256 hex."""
    if sha256 is None:
        return None
    lowered = sha256.lower().removeprefix("sha256:")
    if not _SHA256_HEX.fullmatch(lowered):
        msg = "sha256 must be 64 hexadecimal characters"
        raise ValueError(msg)
    return lowered


def encode_metadata_value(value: str) -> str:
    """Percent-encode a metadata value so it survives as an ASCII HTTP header, exactly.

    ``%`` itself, non-ASCII and control characters are encoded; so are leading and trailing
    spaces, which HTTP would otherwise strip.
    """
    encoded = quote(value, safe=_SAFE)
    if encoded.startswith(" "):
        encoded = "%20" + encoded[1:]
    if encoded.endswith(" "):
        encoded = encoded[:-1] + "%20"
    return encoded


def decode_metadata_value(value: str) -> str:
    """Inverse of :func:`encode_metadata_value`; a value that is not valid encoding stays as is.

    Values set by other S3 clients are decoded too, so a literal ``%41`` there reads as ``A``.
    """
    try:
        return unquote(value, errors="strict")
    except UnicodeDecodeError:
        return value
