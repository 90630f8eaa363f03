"""The duplicate index snapshot: a batch starts from it, reads only the hashes logged after it,
and never uses one that belongs to another ledger or no longer matches its own."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import create_engine, insert

from verification.duplicates.index import PDQIndex
from verification.duplicates.snapshot import load_snapshot, save_snapshot
from verification.ledger.models import PerceptualHash, PerceptualLog, make_engine, migrate
from verification.pipeline.dedupe import CollectionIndex


def _hash(seed: int) -> bytes:
    return np.random.default_rng(seed).bytes(32)


def _ledger(path: Path) -> Any:
    """A migrated SQLite ledger without foreign keys (hash rows without their items)."""
    url = f"sqlite:///{path}"
    migrate(make_engine(url))
    return create_engine(url)


def _store(engine: Any, item: str, pdq: bytes) -> None:
    """What recording an item leaves for the index: its hash row (replaced) and a log row."""
    with engine.begin() as conn:
        conn.execute(PerceptualHash.__table__.delete().where(PerceptualHash.item_sha256 == item))
        conn.execute(
            insert(PerceptualHash), [{"item_sha256": item, "frame": 0, "pdq": pdq, "quality": 90}]
        )
        conn.execute(
            insert(PerceptualLog), [{"item_sha256": item, "created_at": datetime.now(UTC)}]
        )


def _full_reads(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Record each read of every stored hash (``_add`` without a list of items)."""
    calls: list[object] = []
    original = CollectionIndex._add

    def spy(self: CollectionIndex, session: Any, items: set[str] | None) -> None:
        if items is None:
            calls.append(None)
        original(self, session, items)

    monkeypatch.setattr(CollectionIndex, "_add", spy)
    return calls


def test_index_round_trips_through_arrays_without_its_discarded_items() -> None:
    """to_arrays/from_arrays keep every live row (with its frame) and drop discarded items."""
    index = PDQIndex()
    index.add_many([("a", _hash(1)), ("b", _hash(2), 3), ("c", _hash(3)), ("b", _hash(4), 7)])
    index.discard("c")
    copy = PDQIndex.from_arrays(*index.to_arrays())
    assert copy.item_ids == ("a", "b") and len(copy) == 3
    assert copy.query(_hash(4), 0)[0].item_id == "b" and copy.query(_hash(4), 0)[0].frame == 7
    assert copy.query(_hash(3), 0) == []


def test_arrays_that_do_not_fit_together_are_refused() -> None:
    """An item number past the ids, or hashes and numbers of different lengths, raise."""
    words = np.zeros((2, 4), dtype=np.uint64)
    with pytest.raises(ValueError, match="outside"):
        PDQIndex.from_arrays(["a"], np.array([0, 1]), words, np.zeros(2))
    with pytest.raises(ValueError, match="frames"):
        PDQIndex.from_arrays(["a"], np.array([0]), words, np.zeros(2))


def test_unreadable_snapshot_is_ignored(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A damaged file is not an index: it is reported and the caller reads the database."""
    path = tmp_path / "index.npz"
    path.write_bytes(b"not a snapshot")
    with caplog.at_level(logging.WARNING):
        assert load_snapshot(path) is None
    assert "ignoring the duplicate index snapshot" in caplog.text
    assert load_snapshot(tmp_path / "missing.npz") is None


def test_batch_starts_from_the_snapshot_and_reads_only_later_hashes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second batch's index comes from the file plus the log rows after it: a hash stored
    since is found, an item whose hash was replaced matches only its new hash."""
    engine = _ledger(tmp_path / "ledger.db")
    snapshot = tmp_path / "cache" / "index.npz"
    for n, item in enumerate(("a", "b", "c")):
        _store(engine, item, _hash(n))
    first = CollectionIndex(engine, snapshot=snapshot)
    first.refresh()
    assert first.save() and snapshot.exists()
    assert not first.save()  # nothing new since it was written
    _store(engine, "d", _hash(10))
    _store(engine, "b", _hash(11))
    reads = _full_reads(monkeypatch)
    second = CollectionIndex(engine, snapshot=snapshot)
    assert second.refresh() == {"a", "b", "c", "d"}
    assert reads == []
    assert [m.item_id for m in second.index.query(_hash(10), 0)] == ["d"]
    assert [m.item_id for m in second.index.query(_hash(11), 0)] == ["b"]
    assert second.index.query(_hash(1), 0) == []
    assert second.save()
    engine.dispose()


def test_snapshot_of_another_ledger_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A snapshot written for one database is ignored by another one (all hashes are read)."""
    snapshot = tmp_path / "index.npz"
    one = _ledger(tmp_path / "one.db")
    _store(one, "a", _hash(1))
    index = CollectionIndex(one, snapshot=snapshot)
    index.refresh()
    index.save()
    other = _ledger(tmp_path / "other.db")
    _store(other, "z", _hash(2))
    reads = _full_reads(monkeypatch)
    fresh = CollectionIndex(other, snapshot=snapshot)
    assert fresh.refresh() == {"z"} and reads == [None]
    one.dispose()
    other.dispose()


def test_snapshot_of_a_recreated_ledger_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same database URL, but the log row the snapshot stopped at now names another item: the
    ledger was recreated, so the snapshot is stale and every hash is read again."""
    path, snapshot = tmp_path / "ledger.db", tmp_path / "index.npz"
    engine = _ledger(path)
    _store(engine, "a", _hash(1))
    index = CollectionIndex(engine, snapshot=snapshot)
    index.refresh()
    index.save()
    engine.dispose()
    path.unlink()
    engine = _ledger(path)
    _store(engine, "y", _hash(5))
    reads = _full_reads(monkeypatch)
    fresh = CollectionIndex(engine, snapshot=snapshot)
    assert fresh.refresh() == {"y"} and reads == [None]
    engine.dispose()


def test_snapshot_written_for_another_quality_floor_is_not_used(tmp_path: Path) -> None:
    """The identity includes the quality floor: an index built with another floor is rebuilt."""
    engine = _ledger(tmp_path / "ledger.db")
    with engine.begin() as conn:
        conn.execute(
            insert(PerceptualHash),
            [{"item_sha256": "low", "frame": 0, "pdq": _hash(1), "quality": 20}],
        )
        conn.execute(
            insert(PerceptualLog), [{"item_sha256": "low", "created_at": datetime.now(UTC)}]
        )
    snapshot = tmp_path / "index.npz"
    loose = CollectionIndex(engine, min_quality=0, snapshot=snapshot)
    assert loose.refresh() == {"low"}
    loose.save()
    strict = CollectionIndex(engine, snapshot=snapshot)
    assert strict.refresh() == set()
    engine.dispose()


def test_saved_file_holds_identity_and_rows(tmp_path: Path) -> None:
    """save_snapshot/load_snapshot keep the identity as given and the index's rows."""
    index = PDQIndex()
    index.add("a", _hash(1))
    save_snapshot(tmp_path / "s.npz", index, {"watermark": 4})
    loaded = load_snapshot(tmp_path / "s.npz")
    assert loaded is not None
    assert loaded[1] == {"watermark": 4} and loaded[0].item_ids == ("a",)


def test_malformed_stored_hash_is_named_not_misread(tmp_path: Path) -> None:
    """A stored hash of the wrong length stops the read with an error, instead of shifting every
    hash after it."""
    engine = _ledger(tmp_path / "ledger.db")
    _store(engine, "a", _hash(1)[:31])
    with pytest.raises(ValueError, match="32 bytes"):
        CollectionIndex(engine).refresh()
    engine.dispose()
