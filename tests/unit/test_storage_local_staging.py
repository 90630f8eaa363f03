"""The local store's staged objects: written and hashed once, published write-once under a key
chosen afterwards, and gone without a trace when they are not published."""

from __future__ import annotations

import hashlib
import io
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from verification.core.hashing import CHUNK_SIZE, hash_stream
from verification.storage import ObjectExists, StagingStore, StoreError
from verification.storage.local import LocalStore

DATA = hashlib.sha512(b"staged").digest() * (CHUNK_SIZE // 64 * 3 + 5)  # a bit over 3 MiB
SHA = hashlib.sha256(DATA).hexdigest()


def staged_leftovers(store: LocalStore) -> list[str]:
    tmp = store.root / "tmp"
    return sorted(p.name for p in tmp.iterdir()) if tmp.is_dir() else []


def test_local_store_offers_staging(tmp_path: Path) -> None:
    """The local store has the optional staging capability the intake looks for."""
    assert isinstance(LocalStore(tmp_path), StagingStore)


def test_published_object_matches_a_put_of_the_same_bytes(tmp_path: Path) -> None:
    """Bytes, size, ETag, metadata and read-only mode equal a write-once put's; the digests equal
    one hashing pass over the bytes."""
    staged_store, put_store = LocalStore(tmp_path / "a"), LocalStore(tmp_path / "b")
    key = f"vault/sha256/{SHA}"
    with staged_store.stage() as staged:
        for start in range(0, len(DATA), 64 * 1024):
            staged.write(DATA[start : start + 64 * 1024])
        digests = staged.digests()
        published = staged.publish(key, sha256=SHA)
    put = put_store.put(key, io.BytesIO(DATA), sha256=SHA, if_absent=True)
    assert digests == hash_stream(io.BytesIO(DATA))
    assert (published.size, published.etag, dict(published.metadata)) == (
        put.size,
        put.etag,
        dict(put.metadata),
    )
    assert staged_store.head(key).etag == put_store.head(key).etag == hashlib.md5(DATA).hexdigest()
    with staged_store.open(key) as handle:
        assert handle.read() == DATA
    assert (staged_store.root / "objects" / key).stat().st_mode & 0o777 == 0o444
    assert staged_leftovers(staged_store) == []


def test_staged_file_is_the_published_object_until_the_staging_ends(tmp_path: Path) -> None:
    """No copy is made: the analysis reads the staged file, which is the vault object itself."""
    store = LocalStore(tmp_path)
    key = f"vault/sha256/{SHA}"
    with store.stage() as staged:
        staged.write(DATA)
        staged.publish(key, sha256=SHA)
        assert staged.path.read_bytes() == DATA
        assert staged.path.stat().st_ino == (store.root / "objects" / key).stat().st_ino
    assert not staged.path.exists()
    assert store.exists(key)


def test_failure_before_publish_leaves_no_object_and_no_staged_file(tmp_path: Path) -> None:
    """An exception mid-write discards the staged bytes: nothing listed, nothing in tmp/."""
    store = LocalStore(tmp_path)

    def read_that_dies() -> None:
        with store.stage() as staged:
            staged.write(DATA[:CHUNK_SIZE])
            raise RuntimeError("source died")

    with pytest.raises(RuntimeError, match="source died"):
        read_that_dies()
    assert list(store.list("")) == []
    assert staged_leftovers(store) == []


def test_staged_file_of_a_killed_process_is_never_listed(tmp_path: Path) -> None:
    """A process killed while staging leaves a file in tmp/ only, which no listing shows."""
    store = LocalStore(tmp_path)
    code = (
        "import os, signal, sys\n"
        "from verification.storage.local import LocalStore\n"
        "with LocalStore(sys.argv[1]).stage() as staged:\n"
        "    staged.write(b'half a photo')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=False)
    assert done.returncode == -signal.SIGKILL
    assert len(staged_leftovers(store)) == 1  # what the crash left: not an object
    assert list(store.list("")) == []
    assert list(store.list("vault/")) == []


def test_files_of_interrupted_writes_are_removed_a_day_later(tmp_path: Path) -> None:
    """Before its first staged object, a store removes the ``tmp/*.part`` files nobody wrote
    for a day (a killed process's staged file, a put's or a sidecar's), and leaves younger ones
    (a write or an analysis may still hold them) and anything that is not a temporary file."""
    store = LocalStore(tmp_path)
    store.put("incoming/c/a.jpg", io.BytesIO(DATA))
    tmp = tmp_path / "tmp"
    day_old = time.time() - 25 * 3600
    for name in ("stage-abc.part", "put-def.part", "meta-ghi.part", "notes.txt"):
        (tmp / name).write_bytes(b"left behind")
        os.utime(tmp / name, (day_old, day_old))
    (tmp / "stage-young.part").write_bytes(b"being written")
    with LocalStore(tmp_path).stage() as staged:
        staged.write(DATA)
        left = sorted(p.name for p in tmp.iterdir() if p != staged.path)
    assert left == ["notes.txt", "stage-young.part"]
    assert [i.key for i in store.list("")] == ["incoming/c/a.jpg"]
    assert store.remove_abandoned() == 0


def test_sha256_mismatch_publishes_nothing(tmp_path: Path) -> None:
    """Publishing under a digest the staged bytes do not have is refused before any link."""
    store = LocalStore(tmp_path)
    wrong = hashlib.sha256(b"other bytes").hexdigest()
    with store.stage() as staged:
        staged.write(DATA)
        with pytest.raises(StoreError, match="sha256 mismatch"):
            staged.publish(f"vault/sha256/{wrong}", sha256=wrong)
    assert list(store.list("")) == []
    assert staged_leftovers(store) == []


def test_publish_never_replaces_an_existing_object(tmp_path: Path) -> None:
    """An object already under the key is kept, bytes and file, and ObjectExists is raised."""
    store = LocalStore(tmp_path)
    store.put("vault/item", io.BytesIO(b"original"), if_absent=True)
    path = store.root / "objects" / "vault" / "item"
    before = path.stat()
    with store.stage() as staged:
        staged.write(b"forgery")
        with pytest.raises(ObjectExists):
            staged.publish("vault/item")
    assert path.read_bytes() == b"original"
    assert path.stat().st_ino == before.st_ino
    assert staged_leftovers(store) == []


def test_publish_racing_past_the_existence_check_still_cannot_replace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When another writer links the key after our check, the atomic link refuses: ObjectExists."""
    store = LocalStore(tmp_path)
    store.put("vault/item", io.BytesIO(b"original"), if_absent=True)
    # The check ran before the other writer's link: it saw nothing.
    monkeypatch.setattr("verification.storage.local._is_file", lambda _path: False)
    with store.stage() as staged:
        staged.write(b"forgery")
        with pytest.raises(ObjectExists):
            staged.publish("vault/item")
    assert (store.root / "objects" / "vault" / "item").read_bytes() == b"original"
    assert staged_leftovers(store) == []


def test_concurrent_publishes_of_one_key_have_one_winner(tmp_path: Path) -> None:
    """Eight threads publishing the same bytes under one key: one wins, seven get ObjectExists."""
    store = LocalStore(tmp_path)
    key = f"vault/sha256/{SHA}"
    barrier = threading.Barrier(8)
    results: list[str] = []

    def publish() -> None:
        with store.stage() as staged:
            staged.write(DATA)
            barrier.wait()
            try:
                staged.publish(key, sha256=SHA)
                results.append("won")
            except ObjectExists:
                results.append("exists")

    threads = [threading.Thread(target=publish) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["exists"] * 7 + ["won"]
    with store.open(key) as handle:
        assert hashlib.sha256(handle.read()).hexdigest() == SHA
    assert staged_leftovers(store) == []


def test_no_write_after_publish_and_no_second_publish(tmp_path: Path) -> None:
    """A published object is sealed: more bytes or a second key are refused."""
    store = LocalStore(tmp_path)
    with store.stage() as staged:
        staged.write(b"sealed")
        staged.publish("vault/one")
        with pytest.raises(StoreError, match="no more bytes"):
            staged.write(b"appended")
        with pytest.raises(StoreError, match="at most once"):
            staged.publish("vault/two")
    assert (store.root / "objects" / "vault" / "one").read_bytes() == b"sealed"
    assert not store.exists("vault/two")


def test_staging_in_a_root_that_is_a_file_is_unavailable(tmp_path: Path) -> None:
    """A store root that is not a directory fails before any byte is staged."""
    root = tmp_path / "root"
    root.write_text("not a directory")
    with pytest.raises(StoreError), LocalStore(root).stage():
        pass
    assert os.path.isfile(root)
