"""Preservation reads a submission once: the digests, the vault copy and the analysis's working
copy come from that one read, the vault copy is read back once, and every failure before the
publish leaves nothing behind that fixity or custody verification would see."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

import pytest

from tests.helpers import init_context, make_settings, photo
from verification import pipeline
from verification.core.claims import Claims
from verification.core.hashing import hash_stream
from verification.pipeline import Context, vault_key
from verification.pipeline.fixity import untracked_objects, verify_collection
from verification.pipeline.preservation import PreservationError, fetch_and_preserve
from verification.pipeline.submission import submit_file
from verification.storage import ObjectInfo, StagingStore, StoreUnavailable
from verification.storage.local import LocalStore


class CountingStore(LocalStore):
    """Counts the bytes read through ``open`` per key."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.read: dict[str, int] = {}

    def open(self, key: str, version_id: str | None = None) -> BinaryIO:
        data = super().open(key, version_id).read()
        self.read[key] = self.read.get(key, 0) + len(data)
        return io.BytesIO(data)


class _DyingReader(io.RawIOBase):
    """Delivers one chunk of the real bytes, then the connection drops."""

    def __init__(self, first: bytes) -> None:
        self._first: bytes | None = first

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._first is None:
            raise StoreUnavailable("cannot reach the store: connection dropped")
        size = min(len(buffer), len(self._first))
        buffer[:size], self._first = self._first[:size], None
        return size


class DroppedReadStore(LocalStore):
    """Submissions (``incoming/``) are cut off after their first 4 KiB."""

    def open(self, key: str, version_id: str | None = None) -> BinaryIO:
        handle = super().open(key, version_id)
        if not key.startswith("incoming/"):
            return handle
        with handle:
            return io.BufferedReader(_DyingReader(handle.read(4096)))


class GoneBeforePublishStore(LocalStore):
    """The store stops answering once the submission is read: before anything is published."""

    def exists(self, key: str) -> bool:
        if key.startswith("vault/"):
            raise StoreUnavailable("cannot reach the store: connection refused")
        return super().exists(key)


class RacedStore(LocalStore):
    """Another run publishes the same bytes between our existence check and our publish."""

    def __init__(self, root: Path, data: bytes) -> None:
        super().__init__(root)
        self.data = data

    def exists(self, key: str) -> bool:
        if key.startswith("vault/") and not super().exists(key):
            self.put(key, io.BytesIO(self.data), if_absent=True)
            return False  # what we saw a moment before the other run's link
        return super().exists(key)


class RotStore(LocalStore):
    """The vault copy is damaged on disk before it is read back (a failing disk, a tamperer)."""

    def open(self, key: str, version_id: str | None = None) -> BinaryIO:
        if key.startswith("vault/"):
            path = self.root / "objects" / key
            path.chmod(0o644)
            damaged = bytearray(path.read_bytes())
            damaged[len(damaged) // 2] ^= 0xFF
            path.write_bytes(bytes(damaged))
            path.chmod(0o444)
        return super().open(key, version_id)


class PlainStore:
    """A store without the staging capability (as S3 is), over a local directory."""

    def __init__(self, root: Path) -> None:
        self.inner = LocalStore(root)

    @property
    def url(self) -> str:
        return self.inner.url

    def head(self, key: str, version_id: str | None = None) -> ObjectInfo:
        return self.inner.head(key, version_id)

    def open(self, key: str, version_id: str | None = None) -> BinaryIO:
        return self.inner.open(key, version_id)

    def put(
        self,
        key: str,
        data: BinaryIO,
        *,
        metadata: Mapping[str, str] | None = None,
        sha256: str | None = None,
        if_absent: bool = False,
    ) -> ObjectInfo:
        return self.inner.put(key, data, metadata=metadata, sha256=sha256, if_absent=if_absent)

    def list(
        self, prefix: str = "", *, modified_since: datetime | None = None
    ) -> Iterator[ObjectInfo]:
        return self.inner.list(prefix, modified_since=modified_since)

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)


def context(tmp_path: Path, make_store: type[LocalStore] | None = None, **kw: object) -> Context:
    settings = make_settings(tmp_path / "home")
    store = None if make_store is None else make_store(settings.resolved_store_path, **kw)
    return init_context(settings, store=store)


def submit(ctx: Context, tmp_path: Path, data: bytes, name: str = "a.jpg") -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return submit_file(ctx.store, path, Claims("case-1")).key


def staged_leftovers(ctx: Context) -> list[str]:
    assert isinstance(ctx.store, LocalStore)
    tmp = ctx.store.root / "tmp"
    return sorted(p.name for p in tmp.iterdir()) if tmp.is_dir() else []


def assert_nothing_left(ctx: Context) -> None:
    """No vault object, no staged file, nothing fixity or custody verify would call untracked."""
    assert list(ctx.store.list("vault/")) == []
    assert staged_leftovers(ctx) == []
    assert untracked_objects(ctx) == []
    report = verify_collection(ctx)
    assert not [f for f in report.failures if "vault object" in f.reason]


def test_one_read_feeds_digests_vault_copy_and_working_copy(tmp_path: Path) -> None:
    """The submission is read once and the vault copy once; the working copy is the vault file."""
    data = photo(1) * 40  # several chunks
    ctx = context(tmp_path, CountingStore)
    store = ctx.store
    assert isinstance(store, CountingStore)
    key = submit(ctx, tmp_path, data)
    info = store.head(key)
    with fetch_and_preserve(store, info) as kept:
        assert kept.digests == hash_stream(io.BytesIO(data))
        assert kept.intact
        vault_file = store.root / "objects" / vault_key(kept.digests.sha256)
        assert kept.working.read_bytes() == data
        assert kept.working.stat().st_ino == vault_file.stat().st_ino  # no copy made
        working = kept.working
    assert store.read == {key: len(data), vault_key(kept.digests.sha256): len(data)}
    assert vault_file.read_bytes() == data
    assert store.head(vault_key(kept.digests.sha256)).etag == hashlib.md5(data).hexdigest()
    assert not working.exists()
    assert staged_leftovers(ctx) == []


def test_dropped_connection_mid_read_leaves_nothing_and_is_retried(tmp_path: Path) -> None:
    """A read cut off half-way fails the submission; no vault object, no staged file, retried."""
    data = photo(2) * 40
    ctx = context(tmp_path, DroppedReadStore)
    key = submit(ctx, tmp_path, data)
    outcome = pipeline.process_submission(ctx, key)
    assert outcome.status == "failed"
    assert "connection dropped" in (outcome.error or "")
    assert_nothing_left(ctx)
    retried = context(tmp_path)  # the store answers again
    assert [o.item for o in pipeline.ingest(retried)] == [hashlib.sha256(data).hexdigest()]


def test_store_gone_before_publish_leaves_nothing(tmp_path: Path) -> None:
    """A failure after the read but before the publish leaves no vault object, no staged file."""
    data = photo(3)
    ctx = context(tmp_path, GoneBeforePublishStore)
    key = submit(ctx, tmp_path, data)
    outcome = pipeline.process_submission(ctx, key)
    assert outcome.status == "failed"
    assert "connection refused" in (outcome.error or "")
    assert_nothing_left(ctx)


def test_short_read_fails_and_publishes_nothing(tmp_path: Path) -> None:
    """A store that announced more bytes than it delivers fails the read: nothing is preserved."""
    data = photo(4) * 3
    ctx = context(tmp_path)
    assert isinstance(ctx.store, LocalStore)
    key = submit(ctx, tmp_path, data)
    info = ctx.store.head(key)
    (ctx.store.root / "objects" / key).write_bytes(data[: len(data) // 2])
    announced = f"but the store announced {len(data)}"
    with pytest.raises(PreservationError, match=announced), fetch_and_preserve(ctx.store, info):
        pytest.fail("a short read must not be preserved")
    assert_nothing_left(ctx)


def test_concurrent_publish_of_the_same_bytes_is_verified_not_replaced(tmp_path: Path) -> None:
    """When another run publishes first, ours loses the link, keeps its copy and verifies theirs."""
    data = photo(5)
    ctx = context(tmp_path, RacedStore, data=data)
    assert isinstance(ctx.store, LocalStore)
    key = submit(ctx, tmp_path, data)
    with fetch_and_preserve(ctx.store, ctx.store.head(key)) as kept:
        vault_file = ctx.store.root / "objects" / vault_key(kept.digests.sha256)
        assert kept.intact
        assert kept.vault_check["found"] == f"sha256:{hashlib.sha256(data).hexdigest()}"
        assert kept.working.read_bytes() == data
        assert kept.working.stat().st_ino != vault_file.stat().st_ino  # theirs was kept
    assert vault_file.read_bytes() == data
    assert staged_leftovers(ctx) == []


def test_read_back_catches_a_vault_copy_damaged_after_publish(tmp_path: Path) -> None:
    """The read-back finds the damaged copy: the submission is not analysed as intact."""
    data = photo(6)
    ctx = context(tmp_path, RotStore)
    key = submit(ctx, tmp_path, data)
    sha = hashlib.sha256(data).hexdigest()
    assert isinstance(ctx.store, LocalStore)
    with fetch_and_preserve(ctx.store, ctx.store.head(key)) as kept:
        assert not kept.intact
        assert kept.vault_check["outcome"] == "failure"
        assert kept.vault_check["expected"] == f"sha256:{sha}"
        assert kept.vault_check["found"] != f"sha256:{sha}"
    assert staged_leftovers(ctx) == []


def test_store_without_staging_puts_a_working_copy_and_removes_it(tmp_path: Path) -> None:
    """Stores that cannot stage (S3) keep today's path: temporary working file, verified put."""
    data = photo(7) * 5
    store = PlainStore(tmp_path / "store")
    assert not isinstance(store, StagingStore)
    path = tmp_path / "a.jpg"
    path.write_bytes(data)
    key = submit_file(store, path, Claims("case-1")).key
    with fetch_and_preserve(store, store.head(key)) as kept:
        assert kept.intact
        assert kept.digests == hash_stream(io.BytesIO(data))
        assert kept.working.read_bytes() == data
        assert not kept.working.is_relative_to(store.inner.root)
        working = kept.working
    assert not working.exists()
    with store.open(vault_key(kept.digests.sha256)) as handle:
        assert handle.read() == data
    assert os.listdir(store.inner.root / "tmp") == []
