"""Streaming digests agree with hashlib and sha256sum, with bounded reads."""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
from pathlib import Path

import pytest

from verification.core.hashing import CHUNK_SIZE, Hasher, hash_stream, sha256_stream


class CountingReader(io.BytesIO):
    """A stream that remembers the largest single read."""

    largest = 0

    def read(self, size: int | None = -1) -> bytes:  # type: ignore[override]
        data = super().read(size)
        self.largest = max(self.largest, len(data))
        return data


def test_digests_match_hashlib_on_data_larger_than_the_buffer() -> None:
    """SHA-256, SHA-1, MD5 and size equal hashlib's over several chunks."""
    data = bytes(range(256)) * (3 * CHUNK_SIZE // 256 + 17)
    digests = hash_stream(io.BytesIO(data))
    assert digests.sha256 == hashlib.sha256(data).hexdigest()
    assert digests.sha1 == hashlib.sha1(data).hexdigest()
    assert digests.md5 == hashlib.md5(data).hexdigest()
    assert digests.size == len(data)


def test_reads_are_bounded_by_the_chunk_size() -> None:
    """No read asks for more than one chunk, whatever the stream's size."""
    reader = CountingReader(b"x" * (5 * CHUNK_SIZE + 3))
    hash_stream(reader)
    assert reader.largest == CHUNK_SIZE


@pytest.mark.skipif(
    shutil.which("sha256sum") is None, reason="sha256sum (coreutils) is not installed"
)
def test_sha256_matches_sha256sum(tmp_path: Path) -> None:
    """Our SHA-256 of a 5 MiB file equals coreutils' sha256sum."""
    path = tmp_path / "big.bin"
    path.write_bytes(hashlib.sha512(b"seed").digest() * (5 * 1024 * 1024 // 64))
    expected = subprocess.run(
        ["sha256sum", str(path)], check=True, capture_output=True, text=True
    ).stdout.split()[0]
    with path.open("rb") as handle:
        assert hash_stream(handle).sha256 == expected
    with path.open("rb") as handle:
        assert sha256_stream(handle) == (expected, path.stat().st_size)


def test_copy_to_sink_is_byte_identical() -> None:
    """The copy written while hashing is exactly the input."""
    data = b"evidence" * 300_000
    sink = io.BytesIO()
    hash_stream(io.BytesIO(data), sink)
    assert sink.getvalue() == data


def test_empty_stream_has_the_known_empty_digests() -> None:
    """A zero-byte file hashes to the well-known empty digests."""
    digests = hash_stream(io.BytesIO(b""))
    assert digests.sha256 == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert digests.size == 0
    assert digests.labelled()["sha256"].startswith("sha256:")


def test_hasher_fed_in_uneven_pieces_equals_one_pass() -> None:
    """Digests of bytes fed piecemeal (as a staged write receives them) equal hash_stream's."""
    data = hashlib.sha512(b"pieces").digest() * 50_000
    hasher = Hasher()
    start = 0
    for size in [1, 0, 7, CHUNK_SIZE, 3, 65_536] * 5:
        hasher.update(data[start : start + size])
        start += size
    hasher.update(data[start:])
    assert hasher.digests() == hash_stream(io.BytesIO(data))
    assert hasher.digests().md5 == hashlib.md5(data).hexdigest()
