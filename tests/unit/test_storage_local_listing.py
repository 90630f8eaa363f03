"""The local store lists only what changed since a given time, cheaply and without losing
anything the store itself published."""

from __future__ import annotations

import io
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from verification.storage.local import LocalStore


def _age(path: Path, days: int) -> None:
    stamp = int((datetime.now(UTC) - timedelta(days=days)).timestamp()) * 1_000_000_000
    os.utime(path, ns=(stamp, stamp))


def _keys(store: LocalStore, since: datetime | None) -> list[str]:
    return [info.key for info in store.list("incoming/", modified_since=since)]


def test_object_published_into_an_old_directory_is_listed(tmp_path: Path) -> None:
    """Publishing an object changes its directory, so a directory older than the window is
    looked into again as soon as something arrives in it."""
    store = LocalStore(tmp_path)
    store.put("incoming/c/old.jpg", io.BytesIO(b"a"))
    old = tmp_path / "objects" / "incoming" / "c"
    _age(old / "old.jpg", 3)
    _age(old, 3)
    since = datetime.now(UTC) - timedelta(days=1)
    assert _keys(store, since) == []
    store.put("incoming/c/new.jpg", io.BytesIO(b"b"))
    assert _keys(store, since) == ["incoming/c/new.jpg"]


def test_quiet_directory_is_still_descended_into(tmp_path: Path) -> None:
    """A directory unchanged since the window yields none of its files but its subdirectories
    are still listed (a new object in a nested folder is found)."""
    store = LocalStore(tmp_path)
    store.put("incoming/c/a.jpg", io.BytesIO(b"a"))
    store.put("incoming/c/sub/b.jpg", io.BytesIO(b"b"))
    case = tmp_path / "objects" / "incoming" / "c"
    _age(case / "a.jpg", 3)
    _age(case, 3)
    since = datetime.now(UTC) - timedelta(days=1)
    assert _keys(store, since) == ["incoming/c/sub/b.jpg"]


def test_file_rewritten_in_place_waits_for_a_full_listing(tmp_path: Path) -> None:
    """A file changed in place behind the store's back (its directory untouched) is left out of
    a time-bounded listing and found by a full one."""
    store = LocalStore(tmp_path)
    store.put("incoming/c/a.jpg", io.BytesIO(b"a"))
    case = tmp_path / "objects" / "incoming" / "c"
    _age(case, 3)
    since = datetime.now(UTC) - timedelta(days=1)
    assert _keys(store, since) == []
    assert _keys(store, None) == ["incoming/c/a.jpg"]
