"""Listing new submissions reads what is new, not the whole of ``incoming/`` on every run, and
never loses a submission: failed ones come back, unrecorded ones hold the cursor, files copied
in with old times are new, and a daily full listing finds what the time window missed."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from tests.helpers import init_context, make_settings, photo
from verification import pipeline
from verification.core.claims import Claims
from verification.ledger.models import ListingCursor
from verification.pipeline import Context
from verification.pipeline.submission import submit_file
from verification.storage import local
from verification.storage.local import LocalStore


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    return init_context(make_settings(tmp_path / "home"))


def _submit(
    ctx: Context, tmp_path: Path, name: str, seed: int, age: timedelta | None = None
) -> str:
    """Submit a photo; with ``age``, its object looks that much older (as a file copied in)."""
    path = tmp_path / name
    path.write_bytes(photo(seed))
    key = submit_file(ctx.store, path, Claims("case-1")).key
    if age is not None:
        _age(ctx, key, age)
    return key


def _age(ctx: Context, key: str, age: timedelta) -> None:
    """Set the object's mtime back by ``age`` and keep its metadata file describing it."""
    import json

    assert isinstance(ctx.store, LocalStore)
    path = ctx.store.root / "objects" / key
    meta = ctx.store.root / "meta" / f"{key}.json"
    stamp = int((datetime.now(UTC) - age).timestamp()) * 1_000_000_000
    path.chmod(0o644)
    os.utime(path, ns=(stamp, stamp))
    sidecar = json.loads(meta.read_text())
    sidecar["mtime_ns"] = path.stat().st_mtime_ns
    meta.write_text(json.dumps(sidecar))


def _metadata_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the metadata files the local store reads while listing."""
    reads: list[str] = []
    original = local._read_sidecar

    def spy(meta_path: Path, status: os.stat_result) -> dict[str, object] | None:
        reads.append(meta_path.name)
        return original(meta_path, status)

    monkeypatch.setattr(local, "_read_sidecar", spy)
    return reads


def _keys(ctx: Context) -> list[str]:
    return [info.key.rsplit("/", 1)[-1] for info in pipeline.list_new(ctx)]


@pytest.fixture
def no_margin(monkeypatch: pytest.MonkeyPatch) -> None:
    """The listing window without its hour of margin, so that an object can be older than the
    window without the test waiting an hour: nothing can set a file's status-change time back,
    and the local store counts it as a change."""
    from verification.pipeline import batch

    monkeypatch.setattr(batch, "LISTING_MARGIN", timedelta(0))


def _tick() -> None:
    """Let file times (a few milliseconds of resolution) move past the last listing."""
    time.sleep(0.05)


def test_second_listing_reads_only_objects_modified_since(
    ctx: Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_margin: None
) -> None:
    """Objects older than the cursor (less the margin) are skipped without reading their
    metadata; a new upload is listed. The cursor moves past a processed object at the listing
    after it was recorded."""
    old = _submit(ctx, tmp_path, "old.jpg", 1)
    _tick()
    pipeline.process_batch(ctx, [info.key for info in pipeline.list_new(ctx)])
    assert _keys(ctx) == []
    _tick()
    _submit(ctx, tmp_path, "new.jpg", 2)
    reads = _metadata_reads(monkeypatch)
    assert _keys(ctx) == ["new.jpg"]
    assert "old.jpg.json" not in reads and "new.jpg.json" in reads
    assert old.endswith("old.jpg")


def test_failed_submission_older_than_the_cursor_is_retried(
    ctx: Context, tmp_path: Path, no_margin: None
) -> None:
    """A submission that failed comes back from the ledger even though the time-bounded listing
    no longer reads its object."""
    key = _submit(ctx, tmp_path, "a.jpg", 3, age=timedelta(hours=5))
    assert isinstance(ctx.store, LocalStore)
    listed = pipeline.list_new(ctx)
    hidden = tmp_path / "hidden"
    obj = ctx.store.root / "objects" / key
    obj.rename(hidden)
    assert pipeline.process_batch(ctx, [i.key for i in listed])[0].failed
    hidden.rename(obj)
    _tick()
    assert _keys(ctx) == ["a.jpg"]  # still inside the window: listed from the store
    with Session(ctx.engine) as session:
        cursor = session.get(ListingCursor, "incoming/")
        assert cursor is not None  # a failed submission does not hold the cursor back
        assert cursor.listed_from.replace(tzinfo=UTC) > datetime.now(UTC) - timedelta(hours=1)
        since = cursor.listed_from.replace(tzinfo=UTC)
    _tick()
    assert list(ctx.store.list("incoming/", modified_since=since)) == []  # outside the window
    assert _keys(ctx) == ["a.jpg"]  # so found in the ledger
    assert not pipeline.process_batch(ctx, [key])[0].failed
    assert _keys(ctx) == []


def test_listed_but_unrecorded_object_holds_the_cursor(ctx: Context, tmp_path: Path) -> None:
    """An object listed by a run that died before recording it keeps the cursor at its time, so
    the next listing sees it again however old it is."""
    _submit(ctx, tmp_path, "a.jpg", 4, age=timedelta(hours=6))
    assert _keys(ctx) == ["a.jpg"]  # listed, never processed
    assert _keys(ctx) == ["a.jpg"]
    with Session(ctx.engine) as session:
        cursor = session.get(ListingCursor, "incoming/")
        assert cursor is not None
        held = cursor.listed_from.replace(tzinfo=UTC)
    assert held <= datetime.now(UTC) - timedelta(hours=5)


def test_object_copied_in_with_an_old_time_is_listed_at_once(ctx: Context, tmp_path: Path) -> None:
    """A file that appears with a modification time long before the window (copied in with
    ``cp -p``) is new to the quick listing: it arrived after the last one."""
    assert _keys(ctx) == []
    _submit(ctx, tmp_path, "late.jpg", 5, age=timedelta(days=3))
    assert _keys(ctx) == ["late.jpg"]


def test_object_rewritten_in_place_is_found_by_the_daily_full_listing(
    ctx: Context, tmp_path: Path, no_margin: None
) -> None:
    """A file rewritten in place behind the store's back (its folder unchanged) is missed by the
    quick listing and found by the full one (forced, or due after a day), as a new submission
    (new ETag) of the same key."""
    key = _submit(ctx, tmp_path, "a.jpg", 5)
    pipeline.process_batch(ctx, [info.key for info in pipeline.list_new(ctx)])
    _tick()
    assert _keys(ctx) == []
    assert isinstance(ctx.store, LocalStore)
    path = ctx.store.root / "objects" / key
    path.chmod(0o644)
    path.write_bytes(photo(6)[: path.stat().st_size].ljust(path.stat().st_size, b"\0"))
    assert _keys(ctx) == []
    assert [i.key for i in pipeline.list_new(ctx, full=True)] == [key]
    with Session(ctx.engine) as session, session.begin():
        cursor = session.get(ListingCursor, "incoming/")
        assert cursor is not None
        cursor.full_at = datetime.now(UTC) - timedelta(hours=25)
    assert _keys(ctx) == ["a.jpg"]


def test_each_case_prefix_keeps_its_own_cursor(ctx: Context, tmp_path: Path) -> None:
    """Listing one case leaves the cursor of the whole of incoming/ as it was."""
    _submit(ctx, tmp_path, "a.jpg", 6)
    assert [i.key for i in pipeline.list_new(ctx, "case-1")] == ["incoming/case-1/a.jpg"]
    with Session(ctx.engine) as session:
        assert session.get(ListingCursor, "incoming/") is None
        assert session.get(ListingCursor, "incoming/case-1/") is not None
    assert _keys(ctx) == ["a.jpg"]
