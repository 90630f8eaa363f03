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


def hash_stream(
    stream: BinaryIO, sink: BinaryIO | None = None, chunk_size: int = CHUNK_SIZE
) -> Digests:
    """Read ``stream`` to its end once, returning its digests; copy the bytes to ``sink`` if given.

    Memory use is one chunk, whatever the size of the stream.
    """
    sha256, sha1, md5 = hashlib.sha256(), hashlib.sha1(), hashlib.md5()
    size = 0
    while chunk := stream.read(chunk_size):
        sha256.update(chunk)
        sha1.update(chunk)
        md5.update(chunk)
        size += len(chunk)
        if sink is not None:
            sink.write(chunk)
    return Digests(sha256.hexdigest(), sha1.hexdigest(), md5.hexdigest(), size)


def sha256_stream(stream: BinaryIO, chunk_size: int = CHUNK_SIZE) -> tuple[str, int]:
    """SHA-256 hex digest and size only: the fixity check needs nothing more."""
    digest = hashlib.sha256()
    size = 0
    while chunk := stream.read(chunk_size):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size
