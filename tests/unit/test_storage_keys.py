"""Object keys are untrusted input: hostile keys are refused before any path join or request."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import boto3
import pytest

from verification.storage import InvalidKey, validate_key
from verification.storage.keys import normalize_metadata, validate_prefix
from verification.storage.local import LocalStore
from verification.storage.s3 import S3Store

HOSTILE_KEYS = {
    "parent-traversal": "../../etc/passwd",
    "dot-dot": "..",
    "dot": ".",
    "absolute": "/etc/passwd",
    "backslash": "a\\b",
    "inner-dot-dot": "a/../b",
    "inner-dot": "a/./b",
    "empty-component": "a//b",
    "trailing-slash": "a/",
    "drive-letter": "C:x",
    "nul": "a\x00b",
    "newline": "a\nb",
    "delete-char": "a\x7fb",
    "c1-control": "a\x85b",
    "lone-surrogate": "a\ud800b",
    "empty": "",
    "overlong-ascii": "x" * 1025,
    "overlong-utf8": "é" * 513,
}
SAFE_KEYS = [
    "incoming/case-1/photo.jpg",
    "vault/sha256/ab/cd/" + "ab" * 32,
    "incoming/case-1/Фото 2024-05-01T12:00:00.jpg",
    "a..b",
    ".hidden/..x",
    "ab:c",
    "x" * 1024,
]


@pytest.mark.parametrize("key", HOSTILE_KEYS.values(), ids=HOSTILE_KEYS.keys())
def test_validate_key_refuses_hostile_key(key: str) -> None:
    """validate_key raises InvalidKey for every unsafe key shape."""
    with pytest.raises(InvalidKey):
        validate_key(key)


@pytest.mark.parametrize("key", SAFE_KEYS)
def test_validate_key_returns_safe_key_unchanged(key: str) -> None:
    """A safe key comes back as the very same string."""
    assert validate_key(key) is key


def test_invalid_key_message_is_truncated() -> None:
    """The error names the problem and shows at most 100 characters of the key."""
    with pytest.raises(InvalidKey, match="bytes long") as caught:
        validate_key("x" * 5000)
    assert len(str(caught.value)) < 200


def test_invalid_key_is_a_value_error() -> None:
    """Callers that catch ValueError for bad input also catch InvalidKey."""
    with pytest.raises(ValueError, match="backslash"):
        validate_key("a\\b")


@pytest.mark.parametrize("prefix", ["../", "/", "a//", "..", "a\\"])
def test_validate_prefix_refuses_hostile_prefix(prefix: str) -> None:
    """A listing prefix is held to the key rules (a trailing slash aside)."""
    with pytest.raises(InvalidKey):
        validate_prefix(prefix)


def test_validate_prefix_accepts_empty_and_directory_prefixes() -> None:
    """The whole store and 'directory' prefixes are fine."""
    assert [validate_prefix(p) for p in ("", "incoming/", "incoming/case-1")] == [
        "",
        "incoming/",
        "incoming/case-1",
    ]


def test_metadata_names_are_lowercased_and_values_kept() -> None:
    """Metadata names become lower-case; values are kept exactly."""
    assert normalize_metadata({"Case-ID": " Ünïcode 100% "}) == {"case-id": " Ünïcode 100% "}


@pytest.mark.parametrize("name", ["", "has space", "ümlaut", "colon:", "-leading"])
def test_metadata_name_that_is_not_a_token_is_refused(name: str) -> None:
    """Metadata names travel as HTTP header names, so only ASCII tokens are allowed."""
    with pytest.raises(InvalidKey):
        normalize_metadata({name: "x"})


def _all_paths(root: Path) -> list[Path]:
    return sorted(root.rglob("*"))


@pytest.mark.parametrize("key", HOSTILE_KEYS.values(), ids=HOSTILE_KEYS.keys())
def test_local_store_refuses_hostile_key(tmp_path: Path, key: str) -> None:
    """LocalStore put, head, open and exists refuse the key and write nothing anywhere."""
    store = LocalStore(tmp_path / "deep" / "store")
    with pytest.raises(InvalidKey):
        store.put(key, io.BytesIO(b"payload"))
    with pytest.raises(InvalidKey):
        store.put(key, io.BytesIO(b"payload"), if_absent=True)
    with pytest.raises(InvalidKey):
        store.head(key)
    with pytest.raises(InvalidKey):
        store.open(key)
    with pytest.raises(InvalidKey):
        store.exists(key)
    assert _all_paths(tmp_path) == []


def test_local_store_refuses_key_through_symlinked_directory(tmp_path: Path) -> None:
    """A directory symlink inside objects/ cannot carry a write or read outside the root."""
    store = LocalStore(tmp_path / "store")
    store.put("inside", io.BytesIO(b"x"))
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"not evidence")
    (store.root / "objects" / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(InvalidKey, match="outside"):
        store.put("link/planted", io.BytesIO(b"payload"))
    with pytest.raises(InvalidKey, match="outside"):
        store.open("link/secret")
    assert sorted(p.name for p in outside.iterdir()) == ["secret"]


def test_local_store_refuses_symlinked_object_outside_root(tmp_path: Path) -> None:
    """An object that is a symlink to a file outside the root is neither read nor listed."""
    store = LocalStore(tmp_path / "store")
    store.put("inside", io.BytesIO(b"x"))
    target = tmp_path / "secret"
    target.write_bytes(b"not evidence")
    (store.root / "objects" / "leak").symlink_to(target)
    with pytest.raises(InvalidKey, match="outside"):
        store.head("leak")
    assert [info.key for info in store.list()] == ["inside"]


def test_local_store_list_refuses_hostile_prefix(tmp_path: Path) -> None:
    """Listing with a traversal prefix raises instead of walking outside the root."""
    store = LocalStore(tmp_path / "store")
    with pytest.raises(InvalidKey):
        list(store.list("../"))


def _refuse_to_send(**_: Any) -> None:
    msg = "a request was sent for a hostile key"
    raise AssertionError(msg)


@pytest.fixture
def offline_s3_store() -> S3Store:
    """An S3Store whose client fails the test if it ever sends a request."""
    client = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    ).client("s3", endpoint_url="http://127.0.0.1:9")
    client.meta.events.register("before-send.s3", _refuse_to_send)
    return S3Store("evidence", client=client)


@pytest.mark.parametrize("key", HOSTILE_KEYS.values(), ids=HOSTILE_KEYS.keys())
def test_s3_store_refuses_hostile_key_before_any_request(
    offline_s3_store: S3Store, key: str
) -> None:
    """S3Store put, head, open and exists refuse the key without contacting the server."""
    with pytest.raises(InvalidKey):
        offline_s3_store.put(key, io.BytesIO(b"payload"), if_absent=True)
    with pytest.raises(InvalidKey):
        offline_s3_store.head(key)
    with pytest.raises(InvalidKey):
        offline_s3_store.open(key)
    with pytest.raises(InvalidKey):
        offline_s3_store.exists(key)


def test_s3_store_list_refuses_hostile_prefix(offline_s3_store: S3Store) -> None:
    """Listing with a traversal prefix raises before any request."""
    with pytest.raises(InvalidKey):
        list(offline_s3_store.list("../"))
