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


def _saved(tmp_path: Path) -> tuple[Any, Path, Path]:
    """A ledger with three items and the snapshot of its index."""
    engine = _ledger(tmp_path / "ledger.db")
    for n, item in enumerate(("a", "b", "c")):
        _store(engine, item, _hash(n))
    snapshot = tmp_path / "cache" / "index.snapshot"
    first = CollectionIndex(engine, snapshot=snapshot)
    first.refresh()
    assert first.save()
    return engine, snapshot, tmp_path


def _assert_read_from_database(
    engine: Any, snapshot: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = _full_reads(monkeypatch)
    index = CollectionIndex(engine, snapshot=snapshot)
    assert index.refresh() == {"a", "b", "c"} and reads == [None]
    assert [m.item_id for m in index.index.query(_hash(1), 0)] == ["b"]
    engine.dispose()


def test_snapshot_with_a_flipped_bit_is_read_from_the_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """One bit changed in the stored hashes fails their CRC-32: the file is ignored, never
    used as a (wrong) index."""
    engine, snapshot, _ = _saved(tmp_path)
    data = bytearray(snapshot.read_bytes())
    at = data.find(_hash(1)[:8])  # b's first hash word
    assert at > 0
    data[at] ^= 0x10
    snapshot.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING):
        assert load_snapshot(snapshot) is None
    assert "CRC-32" in caplog.text
    _assert_read_from_database(engine, snapshot, monkeypatch)


def test_truncated_snapshot_is_read_from_the_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A file cut short (a full disk, a copy interrupted) is ignored."""
    engine, snapshot, _ = _saved(tmp_path)
    snapshot.write_bytes(snapshot.read_bytes()[:-100])
    with caplog.at_level(logging.WARNING):
        assert load_snapshot(snapshot) is None
    assert "outside the file" in caplog.text
    _assert_read_from_database(engine, snapshot, monkeypatch)


def test_snapshot_with_a_damaged_header_is_read_from_the_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A changed byte in the header (identity, layout) fails the header's CRC-32."""
    engine, snapshot, _ = _saved(tmp_path)
    data = bytearray(snapshot.read_bytes())
    data[30] ^= 0x01
    snapshot.write_bytes(bytes(data))
    assert load_snapshot(snapshot) is None
    _assert_read_from_database(engine, snapshot, monkeypatch)


def test_snapshot_of_the_earlier_npz_format_is_read_from_the_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file of the earlier format (an .npz archive) is not taken for this one."""
    engine, snapshot, _ = _saved(tmp_path)
    with snapshot.open("wb") as sink:
        np.savez(sink, ids=np.array([b"a"]), words=np.zeros((1, 4), dtype=np.uint64))
    assert load_snapshot(snapshot) is None
    _assert_read_from_database(engine, snapshot, monkeypatch)


def test_loaded_snapshot_is_mapped_not_copied(tmp_path: Path) -> None:
    """The loaded hashes lie in the mapped file (no per-item work at load); items added later
    go to memory, and the file is left as it was."""
    index = PDQIndex()
    index.add_many((f"{n:064x}", _hash(n)) for n in range(100))
    path = tmp_path / "s.snapshot"
    save_snapshot(path, index, {"watermark": 1})
    before = path.read_bytes()
    loaded = load_snapshot(path)
    assert loaded is not None
    mapped = loaded[0].columns().words[0]
    base = loaded[0]._base
    assert base is not None and not base.words[0].flags.writeable
    assert not base.words[0].flags.owndata and np.array_equal(mapped, base.words[0])
    loaded[0].add(f"{500:064x}", _hash(500))
    loaded[0].discard(f"{3:064x}")
    assert [m.item_id for m in loaded[0].query(_hash(500), 0)] == [f"{500:064x}"]
    assert loaded[0].query(_hash(3), 0) == []
    assert f"{99:064x}" in loaded[0] and f"{3:064x}" not in loaded[0]
    assert path.read_bytes() == before
