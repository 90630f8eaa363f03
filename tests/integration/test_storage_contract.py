"""The ObjectStore contract, run against the local directory and S3 (moto over real HTTP)."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import random
import socket
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from verification.storage import (
    InvalidKey,
    ObjectExists,
    ObjectNotFound,
    ObjectStore,
    StoreError,
    StoreUnavailable,
)
from verification.storage.local import LocalStore
from verification.storage.s3 import MiB, S3Store, make_client

METADATA = {
    "Case-ID": "case-7",
    "submitter": "Олена Коваль",
    "note": " 50% «quoted», tab\there, %41 stays literal ",
    "claimed-time": "2024-05-01 12:00:00+03:00",
}


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _random_bytes(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def _read_in_chunks(stream: Any, chunk_size: int = 64 * 1024) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    while chunk := stream.read(chunk_size):
        assert len(chunk) <= chunk_size
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()


def _keys(store: ObjectStore, prefix: str = "") -> list[str]:
    return [info.key for info in store.list(prefix)]


class _OneWayStream(io.RawIOBase):
    """A readable stream that cannot seek, like a pipe or an HTTP response."""

    def __init__(self, data: bytes) -> None:
        self._source = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        chunk = self._source.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


def test_put_head_open_round_trip(store: ObjectStore) -> None:
    """Content, size, MD5 etag and non-ASCII metadata come back exactly as put."""
    data = b"evidence bytes\x00\xff"
    put_info = store.put("incoming/case-7/photo.jpg", io.BytesIO(data), metadata=METADATA)
    info = store.head("incoming/case-7/photo.jpg")
    expected_metadata = {name.lower(): value for name, value in METADATA.items()}
    assert info.metadata == expected_metadata
    assert put_info.metadata == expected_metadata
    assert (info.key, info.size, info.etag) == (
        put_info.key,
        len(data),
        hashlib.md5(data).hexdigest(),
    )
    assert info.last_modified.tzinfo is not None
    with store.open("incoming/case-7/photo.jpg") as stream:
        assert stream.read() == data


def test_large_object_streams_in_chunks(store: ObjectStore, tmp_path: Path) -> None:
    """A file larger than the 1 MiB chunk size goes in from disk and comes back chunk by chunk."""
    data = _random_bytes(3 * MiB + 17)
    source = tmp_path / "large.bin"
    source.write_bytes(data)
    sha256 = hashlib.sha256(data).hexdigest()
    with source.open("rb") as handle:
        info = store.put("vault/large", handle, sha256=sha256, if_absent=True)
    assert info.size == len(data)
    with store.open("vault/large") as stream:
        assert _read_in_chunks(stream) == (len(data), sha256)


def test_non_seekable_stream_is_stored(store: ObjectStore) -> None:
    """A stream that cannot seek (pipe, HTTP body) is stored intact."""
    data = _random_bytes(2 * MiB + 3, seed=1)
    info = store.put("incoming/piped", io.BufferedReader(_OneWayStream(data)))
    assert info.etag == hashlib.md5(data).hexdigest()
    with store.open("incoming/piped") as stream:
        assert stream.read() == data


def test_list_yields_keys_in_byte_order_and_filters_by_prefix(store: ObjectStore) -> None:
    """Listing is in UTF-8 key order (so 'case-1-x' < 'case-1/a' < 'case-10/'), prefix-filtered."""
    keys = [
        "incoming/case-1/b.jpg",
        "incoming/case-10/x.jpg",
        "incoming/case-1/a.jpg",
        "incoming/case-1-extra",
        "incoming/case-1/sub/z.jpg",
        "incoming/case-1/Ж.jpg",
        "vault/one",
    ]
    for index, key in enumerate(keys):
        store.put(key, io.BytesIO(b"x" * index))
    assert _keys(store) == sorted(keys, key=lambda k: k.encode())
    assert _keys(store, "incoming/case-1") == [
        "incoming/case-1-extra",
        "incoming/case-1/a.jpg",
        "incoming/case-1/b.jpg",
        "incoming/case-1/sub/z.jpg",
        "incoming/case-1/Ж.jpg",
        "incoming/case-10/x.jpg",
    ]
    assert _keys(store, "incoming/case-1/") == [
        "incoming/case-1/a.jpg",
        "incoming/case-1/b.jpg",
        "incoming/case-1/sub/z.jpg",
        "incoming/case-1/Ж.jpg",
    ]
    assert _keys(store, "nothing/") == []


def test_list_reports_size_and_same_etag_as_head(store: ObjectStore) -> None:
    """A listed object carries the size and etag head reports, and no metadata."""
    store.put("derivatives/a", io.BytesIO(b"abc"), metadata={"note": "n"})
    [listed] = store.list("derivatives/")
    head = store.head("derivatives/a")
    assert (listed.key, listed.size, listed.etag) == ("derivatives/a", 3, head.etag)
    assert listed.metadata == {}


def test_list_modified_since_leaves_out_older_objects(store: ObjectStore) -> None:
    """With ``modified_since``, objects last modified before that time are not listed."""
    store.put("incoming/c/a.jpg", io.BytesIO(b"a"))
    [listed] = store.list("incoming/")
    before = listed.last_modified - timedelta(seconds=5)
    after = listed.last_modified + timedelta(seconds=5)
    assert _keys_since(store, before) == ["incoming/c/a.jpg"]
    assert _keys_since(store, after) == []
    assert _keys_since(store, after.replace(tzinfo=None)) == []  # naive times are UTC


def _keys_since(store: ObjectStore, moment: datetime) -> list[str]:
    return [info.key for info in store.list("incoming/", modified_since=moment)]


def test_list_on_empty_store_is_empty(store: ObjectStore) -> None:
    """A store with nothing in it lists nothing (and does not fail)."""
    assert _keys(store) == []


@pytest.mark.integration
def test_s3_list_fetches_page_by_page(s3_store: S3Store) -> None:
    """With page_size=2, five objects come back in order over three ListObjectsV2 calls."""
    store = S3Store(s3_store.bucket, client=s3_store.client, page_size=2)
    keys = [f"incoming/{index}" for index in range(5)]
    for key in keys:
        store.put(key, io.BytesIO(key.encode()))
    calls: list[str] = []
    store.client.meta.events.register(
        "after-call.s3.ListObjectsV2", lambda **_: calls.append("list")
    )
    assert _keys(store, "incoming/") == keys
    assert len(calls) == 3


def test_write_once_refuses_second_put(store: ObjectStore) -> None:
    """A second if_absent put raises ObjectExists and leaves the first content and metadata."""
    store.put("vault/item", io.BytesIO(b"original"), metadata={"note": "first"}, if_absent=True)
    with pytest.raises(ObjectExists):
        store.put("vault/item", io.BytesIO(b"forgery"), metadata={"note": "x"}, if_absent=True)
    with store.open("vault/item") as stream:
        assert stream.read() == b"original"
    assert store.head("vault/item").metadata == {"note": "first"}


def test_sha256_mismatch_is_rejected_and_nothing_stored(store: ObjectStore) -> None:
    """A put whose content does not match the given sha256 raises and stores nothing."""
    wrong = hashlib.sha256(b"something else").hexdigest()
    with pytest.raises(StoreError, match="sha256 mismatch") as caught:
        store.put("vault/bad", io.BytesIO(b"payload"), sha256=wrong, if_absent=True)
    assert wrong in str(caught.value)
    assert not store.exists("vault/bad")
    assert _keys(store) == []


def test_missing_key_raises_object_not_found(store: ObjectStore) -> None:
    """head and open of an absent key raise ObjectNotFound; exists says False."""
    store.put("incoming/present", io.BytesIO(b"x"))
    with pytest.raises(ObjectNotFound):
        store.head("incoming/absent")
    with pytest.raises(ObjectNotFound):
        store.open("incoming/absent")
    assert not store.exists("incoming/absent")
    assert store.exists("incoming/present")


def test_metadata_name_that_is_not_a_token_is_refused(store: ObjectStore) -> None:
    """A metadata name S3 could not carry is refused by both backends alike."""
    with pytest.raises(InvalidKey):
        store.put("incoming/x", io.BytesIO(b"x"), metadata={"bad name": "v"})
    assert not store.exists("incoming/x")


def test_metadata_over_two_kib_is_refused(store: ObjectStore) -> None:
    """Both backends refuse user metadata larger than S3's 2 KiB limit."""
    with pytest.raises(InvalidKey, match="limit"):
        store.put("incoming/x", io.BytesIO(b"x"), metadata={"note": "é" * 400})
    assert not store.exists("incoming/x")


def test_empty_object_round_trip(store: ObjectStore) -> None:
    """A zero-byte object is stored, described and read back."""
    info = store.put("incoming/empty", io.BytesIO(b""), if_absent=True)
    assert (info.size, info.etag) == (0, hashlib.md5(b"").hexdigest())
    with store.open("incoming/empty") as stream:
        assert stream.read() == b""


def test_hostile_key_is_refused(store: ObjectStore) -> None:
    """Both backends refuse a traversal key on put."""
    with pytest.raises(InvalidKey):
        store.put("../escape", io.BytesIO(b"x"))


@pytest.mark.integration
def test_url_names_the_store(local_store: LocalStore, s3_store: S3Store) -> None:
    """url is file:///<root> for the directory and s3://<bucket> for S3."""
    assert local_store.url == local_store.root.as_uri()
    assert local_store.url.startswith("file:///")
    assert s3_store.url == f"s3://{s3_store.bucket}"


# Local-store specifics.


def test_local_write_once_object_is_read_only(local_store: LocalStore) -> None:
    """A write-once object file is mode 0444 and a plain put cannot replace it either."""
    local_store.put("vault/item", io.BytesIO(b"original"), if_absent=True)
    path = local_store.root / "objects" / "vault" / "item"
    assert path.stat().st_mode & 0o777 == 0o444
    with pytest.raises(ObjectExists):
        local_store.put("vault/item", io.BytesIO(b"forgery"))
    assert path.read_bytes() == b"original"


def test_local_plain_put_replaces_object(local_store: LocalStore) -> None:
    """Without if_absent a put replaces the content and the metadata."""
    local_store.put("derivatives/thumb", io.BytesIO(b"v1"), metadata={"note": "1"})
    info = local_store.put("derivatives/thumb", io.BytesIO(b"v2"), metadata={"note": "2"})
    assert (info.etag, dict(info.metadata)) == (hashlib.md5(b"v2").hexdigest(), {"note": "2"})
    with local_store.open("derivatives/thumb") as stream:
        assert stream.read() == b"v2"


def test_local_failed_put_leaves_no_temporary_files(local_store: LocalStore) -> None:
    """A rejected put cleans up its temporary file."""
    with pytest.raises(StoreError):
        local_store.put("vault/bad", io.BytesIO(b"x"), sha256="0" * 64)
    assert list((local_store.root / "tmp").iterdir()) == []
    assert list((local_store.root / "objects").rglob("*")) == [
        local_store.root / "objects" / "vault"
    ]


def test_local_file_placed_by_hand_has_size_mtime_etag(local_store: LocalStore) -> None:
    """A file copied into objects/ without a sidecar is served with a size-mtime etag."""
    path = local_store.root / "objects" / "incoming" / "dropped.jpg"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"dropped")
    status = path.stat()
    info = local_store.head("incoming/dropped.jpg")
    assert info.etag == f"{status.st_size:x}-{status.st_mtime_ns:x}"
    assert info.metadata == {}
    assert _keys(local_store) == ["incoming/dropped.jpg"]


def test_local_sidecar_of_replaced_file_is_ignored(local_store: LocalStore) -> None:
    """When a file is replaced by hand, its old sidecar no longer speaks for it."""
    local_store.put("incoming/a", io.BytesIO(b"first"), metadata={"note": "old"})
    path = local_store.root / "objects" / "incoming" / "a"
    path.write_bytes(b"second, longer")
    info = local_store.head("incoming/a")
    assert info.metadata == {}
    assert info.etag != hashlib.md5(b"first").hexdigest()


def test_local_key_under_an_object_is_a_store_error(local_store: LocalStore) -> None:
    """A key that needs an existing object as its directory fails with a clear error."""
    local_store.put("incoming/a", io.BytesIO(b"x"))
    with pytest.raises(StoreError, match="directory"):
        local_store.put("incoming/a/b", io.BytesIO(b"y"))
    with pytest.raises(ObjectNotFound):
        local_store.head("incoming/a/b")


def test_local_version_id_is_not_found(local_store: LocalStore) -> None:
    """The local store keeps no versions: asking for one is ObjectNotFound."""
    local_store.put("incoming/a", io.BytesIO(b"x"))
    assert local_store.head("incoming/a").version_id is None
    with pytest.raises(ObjectNotFound):
        local_store.head("incoming/a", version_id="v1")


def test_local_root_that_is_a_file_is_unavailable(tmp_path: Path) -> None:
    """A store root that is a regular file makes every operation raise StoreUnavailable."""
    root = tmp_path / "not-a-dir"
    root.write_bytes(b"")
    store = LocalStore(root)
    with pytest.raises(StoreUnavailable, match="not a directory"):
        store.put("incoming/a", io.BytesIO(b"x"))
    with pytest.raises(StoreUnavailable):
        store.head("incoming/a")
    with pytest.raises(StoreUnavailable):
        store.open("incoming/a")
    with pytest.raises(StoreUnavailable):
        list(store.list())


@pytest.mark.skipif(os.geteuid() == 0, reason="root bypasses file permissions")
def test_local_permission_denied_is_unavailable(tmp_path: Path) -> None:
    """A store directory the process may not write raises StoreUnavailable, naming the root."""
    store = LocalStore(tmp_path / "store")
    store.put("incoming/a", io.BytesIO(b"x"))
    (store.root / "tmp").chmod(0o500)
    try:
        with pytest.raises(StoreUnavailable, match="refused access"):
            store.put("incoming/b", io.BytesIO(b"y"))
    finally:
        (store.root / "tmp").chmod(0o700)


# S3 specifics.


@pytest.mark.integration
def test_s3_open_streams_through_botocore_body(s3_store: S3Store) -> None:
    """open reads lazily through botocore's body (with its checks), also inside a with block."""
    s3_store.put("incoming/a", io.BytesIO(b"abc"))
    with s3_store.open("incoming/a") as stream:
        assert isinstance(stream, io.BufferedReader)
        assert isinstance(stream.raw._body, StreamingBody)
        assert stream.read(2) == b"ab"
        assert stream.read() == b"c"
    assert stream.closed


@pytest.mark.integration
def test_s3_read_verifies_the_stored_checksum(s3_store: S3Store) -> None:
    """Reading an object whose bytes do not match its stored SHA-256 raises StoreError."""
    # moto stores the checksum it is sent without checking it: the corruption a read must catch.
    wrong = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    s3_store.client.put_object(
        Bucket=s3_store.bucket,
        Key="vault/corrupt",
        Body=b"data",
        ChecksumAlgorithm="SHA256",
        ChecksumSHA256=wrong,
    )
    with (
        pytest.raises(StoreError, match="FlexibleChecksumError"),
        s3_store.open("vault/corrupt") as stream,
    ):
        stream.read()


@pytest.mark.integration
def test_s3_truncated_body_is_a_store_error(s3_store: S3Store) -> None:
    """A body shorter than its Content-Length raises StoreError instead of passing as complete."""
    s3_store.put("incoming/a", io.BytesIO(b"abcdef"))
    stream = s3_store.open("incoming/a")
    stream.raw._body._content_length = 10  # as if the connection dropped after 6 of 10 bytes
    with pytest.raises(StoreError), stream:
        stream.read()


@pytest.mark.integration
def test_s3_versions_keep_the_old_content(s3_store: S3Store) -> None:
    """On a versioned bucket each put has a version id and older versions stay readable."""
    first = s3_store.put("derivatives/r", io.BytesIO(b"v1"))
    second = s3_store.put("derivatives/r", io.BytesIO(b"v2"))
    assert first.version_id and second.version_id and first.version_id != second.version_id
    with s3_store.open("derivatives/r", version_id=first.version_id) as stream:
        assert stream.read() == b"v1"
    assert s3_store.head("derivatives/r").etag == hashlib.md5(b"v2").hexdigest()


@pytest.mark.integration
def test_s3_sends_sha256_checksum(s3_store: S3Store) -> None:
    """Every put carries x-amz-checksum-sha256, so the server can verify the transfer."""
    sent: list[str] = []
    s3_store.client.meta.events.register(
        "before-send.s3.PutObject",
        lambda request, **_: sent.append(request.headers.get("x-amz-checksum-sha256", b"")),
    )
    s3_store.put("incoming/a", io.BytesIO(b"abc"))
    expected = hashlib.sha256(b"abc").digest()
    assert [base64.b64decode(value) for value in sent] == [expected]


@pytest.mark.integration
def test_s3_conditional_write_wins_a_race(
    s3_store: S3Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even when the pre-check misses the object, If-None-Match makes the server refuse."""
    s3_store.put("vault/item", io.BytesIO(b"original"), if_absent=True)
    monkeypatch.setattr(S3Store, "_exists", lambda self, key: False)
    with pytest.raises(ObjectExists):
        s3_store.put("vault/item", io.BytesIO(b"forgery"), if_absent=True)
    with s3_store.open("vault/item") as stream:
        assert stream.read() == b"original"


@pytest.mark.integration
def test_s3_multipart_upload_round_trip_and_write_once(
    s3_store: S3Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above the threshold the upload is multipart, verified, and still conditional."""
    store = S3Store(
        s3_store.bucket, client=s3_store.client, multipart_threshold=5 * MiB, part_size=5 * MiB
    )
    data = _random_bytes(6 * MiB + 1, seed=2)
    info = store.put(
        "vault/big",
        io.BytesIO(data),
        metadata={"note": "é"},
        sha256=hashlib.sha256(data).hexdigest(),
        if_absent=True,
    )
    assert info.etag.endswith("-2")
    assert info.metadata == {"note": "é"}
    with store.open("vault/big") as stream:
        assert _read_in_chunks(stream) == (len(data), hashlib.sha256(data).hexdigest())
    monkeypatch.setattr(S3Store, "_exists", lambda self, key: False)
    with pytest.raises(ObjectExists):
        store.put("vault/big", io.BytesIO(_random_bytes(6 * MiB, seed=3)), if_absent=True)
    assert store.head("vault/big").version_id == info.version_id
    uploads = store.client.list_multipart_uploads(Bucket=store.bucket)
    assert uploads.get("Uploads", []) == []


@pytest.mark.integration
def test_s3_object_lock_retention_on_write_once_put(s3_server: str) -> None:
    """With Object Lock and retention_days=1, a write-once put is retained in GOVERNANCE mode."""
    store = S3Store(
        f"locked-{os.urandom(6).hex()}",
        endpoint_url=s3_server,
        region="us-east-1",
        retention_days=1,
    )
    store.ensure_bucket(object_lock=True)
    store.ensure_bucket(object_lock=True)  # idempotent, as `evidence init` may run twice
    before = datetime.now(UTC)
    store.put("vault/item", io.BytesIO(b"original"), if_absent=True)
    store.put("derivatives/thumb", io.BytesIO(b"thumb"))
    # moto's get_object_retention answers 500; head_object carries the same facts.
    locked = store.client.head_object(Bucket=store.bucket, Key="vault/item")
    assert locked["ObjectLockMode"] == "GOVERNANCE"
    until = locked["ObjectLockRetainUntilDate"]
    assert before + timedelta(hours=23) < until < before + timedelta(days=1, minutes=5)
    plain = store.client.head_object(Bucket=store.bucket, Key="derivatives/thumb")
    assert "ObjectLockMode" not in plain


@pytest.mark.integration
def test_s3_unreachable_endpoint_is_unavailable(s3_server: str) -> None:
    """Nothing listening at the endpoint raises StoreUnavailable naming it, within seconds."""
    endpoint = f"http://127.0.0.1:{_unused_port()}"
    client = make_client(endpoint, "us-east-1", max_attempts=1, connect_timeout=1, read_timeout=1)
    store = S3Store("evidence", client=client)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="cannot reach") as caught:
        store.head("incoming/a")
    assert endpoint in str(caught.value)
    with pytest.raises(StoreUnavailable):
        store.put("incoming/a", io.BytesIO(b"x"))
    with pytest.raises(StoreUnavailable):
        list(store.list())
    assert time.monotonic() - started < 10


@pytest.mark.integration
def test_s3_missing_bucket_is_unavailable(s3_server: str) -> None:
    """A bucket that does not exist raises StoreUnavailable naming it, for reads and writes."""
    store = S3Store("no-such-bucket-here", endpoint_url=s3_server, region="us-east-1")
    for action in (
        lambda: store.head("incoming/a"),
        lambda: store.open("incoming/a"),
        lambda: store.exists("incoming/a"),
        lambda: store.put("incoming/a", io.BytesIO(b"x")),
        lambda: store.put("incoming/a", io.BytesIO(b"x"), if_absent=True),
        lambda: list(store.list()),
    ):
        with pytest.raises(StoreUnavailable, match="no-such-bucket-here"):
            action()


S3_ERRORS = [
    ("AccessDenied", 403, StoreUnavailable),
    ("InvalidAccessKeyId", 403, StoreUnavailable),
    ("NoSuchBucket", 404, StoreUnavailable),
    ("NoSuchKey", 404, ObjectNotFound),
    ("PreconditionFailed", 412, ObjectExists),
    ("BadDigest", 400, StoreError),
    ("InternalError", 500, StoreError),
]


@pytest.mark.parametrize(
    ("code", "status", "expected"), S3_ERRORS, ids=[c for c, _, _ in S3_ERRORS]
)
def test_s3_error_codes_map_to_store_errors(
    code: str, status: int, expected: type[Exception]
) -> None:
    """Each S3 error code becomes the store error a caller can act on."""
    client = make_client("http://127.0.0.1:9", "us-east-1")
    store = S3Store("evidence", client=client)
    with Stubber(client) as stubber:
        stubber.add_client_error("get_object", service_error_code=code, http_status_code=status)
        if status == 404 and code != "NoSuchBucket":
            stubber.add_response("head_bucket", {})  # the store asks whether the bucket exists
        with pytest.raises(expected) as caught:
            store.open("incoming/a")
    assert type(caught.value) is expected
