"""Cryptographic digests in one streaming pass.

SHA-256 is the item's identity; SHA-1 and MD5 are kept for interoperability with forensic tools
and published hash sets (they are not used for any security decision).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import BinaryIO

CHUNK_SIZE = 1 << 20  # 1 MiB: large enough for OpenSSL's throughput, small enough to bound memory


@dataclass(frozen=True, slots=True)
class Digests:
    """Digests and size of one byte sequence. Values are lower-case hex."""

    sha256: str
    sha1: str
    md5: str
    size: int

    def labelled(self) -> dict[str, str]:
        """Digests labelled with their algorithm (``sha256:<hex>``), as recorded in events."""
        return {
            "sha256": f"sha256:{self.sha256}",
            "sha1": f"sha1:{self.sha1}",
            "md5": f"md5:{self.md5}",
        }

    def to_dict(self) -> dict[str, str | int]:
        """JSON-ready form."""
        return {"sha256": self.sha256, "sha1": self.sha1, "md5": self.md5, "size": self.size}


class Hasher:
    """SHA-256, SHA-1 and MD5 of bytes fed in pieces: one pass over data that is also going
    somewhere else (a file being written, an upload), so nothing is read twice to be hashed."""

    __slots__ = ("_md5", "_sha1", "_sha256", "_size")

    def __init__(self) -> None:
        self._sha256, self._sha1, self._md5 = hashlib.sha256(), hashlib.sha1(), hashlib.md5()
        self._size = 0

    def update(self, data: bytes) -> None:
        """Add the next bytes."""
        self._sha256.update(data)
        self._sha1.update(data)
        self._md5.update(data)
        self._size += len(data)

    def digests(self) -> Digests:
        """The digests of everything added so far."""
        return Digests(
            self._sha256.hexdigest(), self._sha1.hexdigest(), self._md5.hexdigest(), self._size
        )


def hash_stream(
    stream: BinaryIO, sink: BinaryIO | None = None, chunk_size: int = CHUNK_SIZE
) -> Digests:
    """Read ``stream`` to its end once, returning its digests; copy the bytes to ``sink`` if given.

    Memory use is one chunk, whatever the size of the stream.
    """
    hasher = Hasher()
    while chunk := stream.read(chunk_size):
        hasher.update(chunk)
        if sink is not None:
            sink.write(chunk)
    return hasher.digests()


def sha256_stream(stream: BinaryIO, chunk_size: int = CHUNK_SIZE) -> tuple[str, int]:
    """SHA-256 hex digest and size only: the fixity check needs nothing more."""
    digest = hashlib.sha256()
    size = 0
    while chunk := stream.read(chunk_size):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size
