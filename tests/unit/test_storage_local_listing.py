"""The local store lists only what changed since a given time, cheaply and without losing
anything the store itself published or anyone copied into it."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from verification.storage.local import LocalStore


def _age(path: Path, days: int) -> None:
    """Set the modification time back (the status-change time, which no one can set, stays)."""
    stamp = int((datetime.now(UTC) - timedelta(days=days)).timestamp()) * 1_000_000_000
    os.utime(path, ns=(stamp, stamp))


def _now() -> datetime:
    """A moment strictly after every change made so far and before any made later (file times
    have a resolution of a few milliseconds)."""
    time.sleep(0.05)
    moment = datetime.now(UTC)
    time.sleep(0.05)
    return moment


def _keys(store: LocalStore, since: datetime | None) -> list[str]:
    return [info.key for info in store.list("incoming/", modified_since=since)]


def test_object_published_into_an_old_directory_is_listed(tmp_path: Path) -> None:
    """Publishing an object changes its directory, so a directory unchanged since the window
    began is looked into again as soon as something arrives in it."""
    store = LocalStore(tmp_path)
    store.put("incoming/c/old.jpg", io.BytesIO(b"a"))
    since = _now()
    assert _keys(store, since) == []
    store.put("incoming/c/new.jpg", io.BytesIO(b"b"))
    assert _keys(store, since) == ["incoming/c/new.jpg"]


def test_quiet_directory_is_still_descended_into(tmp_path: Path) -> None:
    """A directory unchanged since the window yields none of its files but its subdirectories
    are still listed (a new object in a nested folder is found)."""
    store = LocalStore(tmp_path)
    store.put("incoming/c/a.jpg", io.BytesIO(b"a"))
    store.put("incoming/c/sub/x.jpg", io.BytesIO(b"x"))
    since = _now()
    store.put("incoming/c/sub/b.jpg", io.BytesIO(b"b"))
    assert _keys(store, since) == ["incoming/c/sub/b.jpg"]


def test_file_rewritten_in_place_waits_for_a_full_listing(tmp_path: Path) -> None:
    """A file changed in place behind the store's back (its directory untouched) is left out of
    a time-bounded listing and found by a full one."""
    store = LocalStore(tmp_path)
    store.put("incoming/c/a.jpg", io.BytesIO(b"a"))
    since = _now()
    with (tmp_path / "objects" / "incoming" / "c" / "a.jpg").open("r+b") as handle:
        handle.write(b"z")
    assert _keys(store, since) == []
    assert _keys(store, None) == ["incoming/c/a.jpg"]


def test_files_copied_in_with_their_old_times_are_listed(tmp_path: Path) -> None:
    """Files copied into the store keeping a modification time from long ago (``cp -p``,
    ``shutil.copy2``), and a whole folder copied so (``cp -a``: its directory's time set back
    too), are new to a time-bounded listing: they arrived after the window began."""
    store = LocalStore(tmp_path / "store")
    store.put("incoming/c/a.jpg", io.BytesIO(b"a"))
    outside = tmp_path / "camera"
    (outside / "d").mkdir(parents=True)
    for name, folder in (("old.jpg", outside), ("older.jpg", outside / "d")):
        (folder / name).write_bytes(b"photo " + name.encode())
        _age(folder / name, 400)
    _age(outside / "d", 400)
    since = _now()
    objects = tmp_path / "store" / "objects" / "incoming"
    shutil.copy2(outside / "old.jpg", objects / "c" / "old.jpg")
    subprocess.run(["cp", "-a", str(outside / "d"), str(objects / "d")], check=True)
    assert (objects / "d").stat().st_mtime < since.timestamp() - 86400
    assert _keys(store, since) == ["incoming/c/old.jpg", "incoming/d/older.jpg"]


def test_quiet_directory_without_subdirectories_is_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A directory unchanged since the window with no subdirectories (its link count is 2) is
    not even scanned: a case of a million old submissions costs one stat."""
    from verification.storage import local

    store = LocalStore(tmp_path)
    for name in ("a.jpg", "b.jpg"):
        store.put(f"incoming/old/{name}", io.BytesIO(name.encode()))
    store.put("incoming/busy/sub/x.jpg", io.BytesIO(b"x"))
    since = _now()
    store.put("incoming/new/c.jpg", io.BytesIO(b"c"))
    store.put("incoming/busy/sub/y.jpg", io.BytesIO(b"y"))
    scanned: list[str] = []
    scandir = os.scandir

    def spy(path: Any) -> Any:
        scanned.append(Path(path).name)
        return scandir(path)

    monkeypatch.setattr(local.os, "scandir", spy)
    assert _keys(store, since) == ["incoming/busy/sub/y.jpg", "incoming/new/c.jpg"]
    assert "old" not in scanned and {"busy", "sub", "new"} <= set(scanned)
    assert _keys(store, None) == [
        "incoming/busy/sub/x.jpg",
        "incoming/busy/sub/y.jpg",
        "incoming/new/c.jpg",
        "incoming/old/a.jpg",
        "incoming/old/b.jpg",
    ]
