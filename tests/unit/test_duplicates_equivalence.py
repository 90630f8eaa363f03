"""The one-pass index and its memory-mapped snapshot answer exactly as the index before them
(``tests/unit/reference``, the code of commit 128163b): same matches, distances, frames,
transforms and order, on random collections full of near hashes, ties and extremes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.unit.reference import matching as old_matching
from tests.unit.reference.pdq_index import PDQIndex as OldIndex
from verification.duplicates import index as index_module
from verification.duplicates import matching
from verification.duplicates.index import PDQIndex
from verification.duplicates.snapshot import load_snapshot, save_snapshot

THRESHOLDS = (-1, 0, 3, 31, 47, 63, 96, 127, 128, 129, 200, 255, 256)


def _near(rng: np.random.Generator, base: bytes, bits: int) -> bytes:
    """``base`` with ``bits`` distinct bits flipped."""
    array = np.unpackbits(np.frombuffer(base, dtype=np.uint8))
    array[rng.choice(256, size=bits, replace=False)] ^= 1
    return np.packbits(array).tobytes()


def _hash(rng: np.random.Generator, bases: list[bytes]) -> bytes:
    """Mostly near one of a few bases (many matches and equal distances), sometimes extreme."""
    pick = rng.integers(0, 10)
    if pick == 0:
        return bytes(32) if rng.integers(0, 2) else b"\xff" * 32
    return _near(rng, bases[int(rng.integers(0, len(bases)))], int(rng.integers(0, 140)))


def _item(rng: np.random.Generator) -> str:
    """SHA-256-like ids (stored raw) or other text ids (stored as UTF-8)."""
    number = int(rng.integers(0, 60))
    return f"{number:064x}" if number % 3 else f"item-{number}"


def _twins(rng: np.random.Generator, tmp: Path, snapshots: bool) -> tuple[OldIndex, PDQIndex]:
    """The same random history of adds, discards and re-adds applied to both indexes; the new
    one goes through a snapshot file (or its columns) at random points, as batches do."""
    bases = [rng.bytes(32) for _ in range(4)]
    old, new = OldIndex(capacity=3), PDQIndex(capacity=3)
    for step in range(int(rng.integers(3, 9))):
        action = rng.integers(0, 6)
        if action == 0 and len(old):
            victim = _item(rng)
            old.discard(victim)
            new.discard(victim)
        elif action == 1 and snapshots:
            path = tmp / f"s{step}"
            save_snapshot(path, new, {"step": step})
            loaded = load_snapshot(path)
            assert loaded is not None and loaded[1] == {"step": step}
            old, new = OldIndex.from_arrays(*old.to_arrays()), loaded[0]  # as the old snapshot
        elif action == 2:
            old, new = OldIndex.from_arrays(*old.to_arrays()), PDQIndex.from_columns(new.columns())
        else:
            rows = [
                (_item(rng), _hash(rng, bases), int(rng.integers(0, 4)))
                for _ in range(int(rng.integers(1, 40)))
            ]
            old.add_many(rows)
            new.add_many(rows)
    return old, new


def _plain(matches: list[Any]) -> list[tuple[Any, ...]]:
    """Matches as tuples (the two Match classes never compare equal)."""
    return [(m.item_id, m.distance, m.frame, m.transform) for m in matches]


def _pairs(near: dict[str, Any]) -> dict[str, tuple[Any, ...]]:
    return {k: (p.distance, p.keyframe, p.other_keyframe, p.transform) for k, p in near.items()}


def _queries(rng: np.random.Generator, old: OldIndex) -> list[bytes]:
    stored = [np.ascontiguousarray(old._words[:, r]).tobytes() for r in range(len(old))]
    picks = [stored[int(i)] for i in rng.integers(0, max(len(stored), 1), 4)] if stored else []
    return [_near(rng, h, int(rng.integers(0, 20))) for h in picks] + [
        rng.bytes(32),
        bytes(32),
        b"\xff" * 32,
    ]


@pytest.mark.parametrize("chunk", [5, 64, 65_536])
@pytest.mark.parametrize("seed", range(12))
def test_queries_answer_as_before(
    seed: int, chunk: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """query, query_dihedral, distances and the item list equal the old index's, whatever the
    history, the snapshots taken, the chunk size and the threshold."""
    monkeypatch.setattr(index_module, "_CHUNK", chunk)
    rng = np.random.default_rng(seed * 31 + chunk)
    old, new = _twins(rng, tmp_path, snapshots=True)
    assert new.item_ids == old.item_ids and len(new) == len(old)
    for item in {_item(rng) for _ in range(30)}:
        assert (item in new) == (item in old)
    queries = _queries(rng, old)
    for query in queries:
        assert np.array_equal(new.distances(query), old.distances(query))
        for threshold in THRESHOLDS:
            assert _plain(new.query(query, threshold)) == _plain(old.query(query, threshold))
    for threshold in THRESHOLDS:
        count = int(rng.integers(1, 9))
        dihedral = [queries[int(i)] for i in rng.integers(0, len(queries), count)]
        assert _plain(new.query_dihedral(dihedral, threshold)) == _plain(
            old.query_dihedral(dihedral, threshold)
        )


def _perceptual(rng: np.random.Generator, old: OldIndex) -> dict[str, Any]:
    """A photo (plain and dihedral hashes) or a video (keyframes), near the stored rows."""
    queries = _queries(rng, old)
    if rng.integers(0, 3) == 0:
        return {
            "keyframes": [
                {"pdq": queries[int(i)].hex(), "quality": int(rng.integers(30, 100))}
                for i in rng.integers(0, len(queries), int(rng.integers(1, 5)))
            ]
        }
    dihedral = [queries[int(i)].hex() for i in rng.integers(0, len(queries), 8)]
    return {"pdq": dihedral[0], "pdq_quality": 90, "pdq_dihedral": dihedral}


@pytest.mark.parametrize("seed", range(20))
def test_candidates_of_an_item_are_as_before(
    seed: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The one-pass search gives find_duplicates the near and crop candidates the separate
    plain, dihedral and crop queries gave, with the same distances, frames and transforms."""
    monkeypatch.setattr(index_module, "_CHUNK", 7)
    rng = np.random.default_rng(1000 + seed)
    old, new = _twins(rng, tmp_path, snapshots=True)
    for _ in range(5):
        perceptual = _perceptual(rng, old)
        frames = old_matching._frames(perceptual, 50)
        new_frames = matching._frames(perceptual, 50)
        video = bool(perceptual.get("keyframes"))
        dihedral = [] if video else matching._dihedral(perceptual)
        old_dihedral = [] if video else old_matching._dihedral(perceptual)
        threshold = int(rng.choice([0, 10, 31, 47, 80]))
        crop = int(rng.choice([5, 31, 64, 96, 140]))
        near, candidates = matching._candidates(new, new_frames, dihedral, threshold, crop)
        assert _pairs(near) == _pairs(
            old_matching._near_candidates(old, frames, old_dihedral, threshold)
        )
        assert candidates == old_matching._crop_candidates(old, frames, crop, ())
        alone, none = matching._candidates(new, new_frames, dihedral, threshold, None)
        assert _pairs(alone) == _pairs(near) and none == {}
        exclude = _item(rng)
        assert matching.find_duplicates(
            perceptual, new, threshold=threshold, exclude=exclude
        ) == old_matching.find_duplicates(perceptual, old, threshold=threshold, exclude=exclude)


def _later_history(rng: np.random.Generator, old: OldIndex, new: PDQIndex) -> None:
    """What a batch does to its index after a search was read ahead: items discarded, others
    added, some discarded and added again (reprocessed)."""
    bases = [rng.bytes(32) for _ in range(3)]
    for _ in range(int(rng.integers(1, 6))):
        if rng.integers(0, 3) == 0:
            victim = _item(rng)
            old.discard(victim)
            new.discard(victim)
        else:
            rows = [
                (_item(rng), _hash(rng, bases), int(rng.integers(0, 4)))
                for _ in range(int(rng.integers(1, 20)))
            ]
            old.add_many(rows)
            new.add_many(rows)


@pytest.mark.parametrize("seed", range(16))
def test_search_read_ahead_answers_as_a_whole_search(
    seed: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The base scanned ahead (as the batch's I/O threads do), then rows added and items
    discarded, then ``search(ahead=)``: what a whole search and the old index answer, for every
    threshold the scan covers; a scan that does not cover the search is not used."""
    monkeypatch.setattr(index_module, "_CHUNK", 7)
    rng = np.random.default_rng(5000 + seed)
    old, new = _twins(rng, tmp_path, snapshots=False)
    old, new = OldIndex.from_arrays(*old.to_arrays()), PDQIndex.from_columns(new.columns())
    queries = _queries(rng, old)
    plain = [queries[int(i)] for i in rng.integers(0, len(queries), int(rng.integers(1, 4)))]
    dihedral = [queries[int(i)] for i in rng.integers(0, len(queries), int(rng.integers(0, 9)))]
    wide, turned_wide = int(rng.choice([31, 96, 140, 256])), int(rng.choice([0, 31, 47, 80]))
    ahead = new.scan_base(plain, wide, dihedral, turned_wide)
    assert ahead is not None
    _later_history(rng, old, new)
    scanned: list[int] = []
    real_scan = PDQIndex._scan

    def spy(self: PDQIndex, segments: Any, *args: Any) -> Any:
        listed = list(segments)
        scanned.extend(first for first, _ in listed)
        return real_scan(self, iter(listed), *args)

    monkeypatch.setattr(PDQIndex, "_scan", spy)
    for threshold in (t for t in THRESHOLDS if t <= wide):
        for turned in (t for t in THRESHOLDS if t <= turned_wide):
            scanned.clear()
            fast = new.search(plain, threshold, dihedral, turned, ahead=ahead)
            assert 0 not in scanned  # the base was not read again
            whole = new.search(plain, threshold, dihedral, turned)
            assert [_plain(m) for m in fast[0]] == [_plain(m) for m in whole[0]]
            assert _plain(fast[1]) == _plain(whole[1])
            assert [_plain(m) for m in fast[0]] == [_plain(old.query(q, threshold)) for q in plain]
            if dihedral:
                assert _plain(fast[1]) == _plain(old.query_dihedral(dihedral, turned))
    for narrower in ([plain[1:], wide, dihedral], [plain, wide + 1, dihedral]):
        scanned.clear()
        new.search(narrower[0], narrower[1], narrower[2], turned_wide, ahead=ahead)
        assert 0 in scanned  # not covered: the whole index is read
    other = PDQIndex.from_columns(new.columns())
    scanned.clear()
    assert _plain(other.search(plain, wide, dihedral, turned_wide, ahead=ahead)[1]) == _plain(
        old.query_dihedral(dihedral, turned_wide) if dihedral else []
    )
    assert 0 in scanned  # another base: not used


def test_read_ahead_needs_a_base() -> None:
    """An index with only added rows (no snapshot loaded) has nothing to read ahead."""
    index = PDQIndex()
    index.add("a" * 64, bytes(32))
    assert index.scan_base([bytes(32)], 31) is None
