"""PDQ hashes as values, and a vectorised index that finds every stored hash within a distance.

PDQ survives re-encoding, resizing, watermarks and format changes; its eight dihedral hashes
cover mirrored and rotated copies.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

PDQ_BITS = 256
PDQ_BYTES = PDQ_BITS // 8
_WORDS = 4  # 256 bits as four uint64 words
_CHUNK = 65_536  # rows per pass: keeps the working set in L2 cache

# What each of pdqhash.compute_dihedral's eight hashes undoes, in its order (checked against
# pdqhash.compute on numpy-transformed images): a query matching through "flip-horizontal"
# is a mirrored copy of the stored item.
DIHEDRAL_NAMES = (
    "original",
    "rotate-90-ccw",
    "rotate-180",
    "rotate-90-cw",
    "flip-vertical",
    "flip-horizontal",
    "transpose",
    "anti-transpose",
)

MIN_PDQ_QUALITY = 50  # PDQ's authors: hashes of lower quality are unreliable for matching


@dataclass(frozen=True, slots=True)
class PDQHash:
    """A 256-bit PDQ hash; ``a - b`` is the Hamming distance (0..256)."""

    value: bytes

    def __post_init__(self) -> None:
        if len(self.value) != PDQ_BYTES:
            msg = f"a PDQ hash is {PDQ_BYTES} bytes, got {len(self.value)}"
            raise ValueError(msg)

    @classmethod
    def from_hex(cls, text: str) -> PDQHash:
        """Parse 64 hex digits."""
        try:
            raw = bytes.fromhex(text.strip())
        except (ValueError, AttributeError) as exc:
            msg = "a PDQ hash must be 64 hex digits"
            raise ValueError(msg) from exc
        return cls(raw)

    @classmethod
    def from_bytes(cls, raw: bytes) -> PDQHash:
        """Wrap 32 raw bytes."""
        return cls(bytes(raw))

    @classmethod
    def from_bits(cls, bits: Sequence[int] | np.ndarray) -> PDQHash:
        """Pack the 256-element 0/1 vector returned by ``pdqhash.compute`` (MSB first)."""
        array = np.asarray(bits, dtype=np.uint8).reshape(-1)
        if array.size != PDQ_BITS:
            msg = f"a PDQ hash has {PDQ_BITS} bits, got {array.size}"
            raise ValueError(msg)
        return cls(np.packbits(array).tobytes())

    @classmethod
    def parse(cls, value: str | bytes | PDQHash) -> PDQHash:
        """Accept a hash as hex, raw bytes or a PDQHash."""
        if isinstance(value, PDQHash):
            return value
        if isinstance(value, bytes | bytearray | memoryview):
            return cls.from_bytes(bytes(value))
        return cls.from_hex(value)

    def hex(self) -> str:
        """64 lowercase hex digits."""
        return self.value.hex()

    def words(self) -> np.ndarray:
        """The hash as four uint64 words (the index's storage form)."""
        return np.frombuffer(self.value, dtype=np.uint64).copy()

    def __sub__(self, other: PDQHash) -> int:
        if not isinstance(other, PDQHash):
            return NotImplemented
        xor = int.from_bytes(self.value, "big") ^ int.from_bytes(other.value, "big")
        return xor.bit_count()

    def __str__(self) -> str:
        return self.hex()


@dataclass(frozen=True, slots=True)
class Match:
    """One stored item within the threshold; ``frame`` is the best row's keyframe number."""

    item_id: str
    distance: int
    frame: int = 0
    transform: str | None = None  # dihedral transform of the query that matched


if hasattr(np, "bitwise_count"):  # numpy >= 2.0

    def _popcount(words: np.ndarray, out: np.ndarray) -> np.ndarray:
        np.bitwise_count(words, out=out)
        return out

else:  # pragma: no cover - numpy 1.x fallback
    _BYTE_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)

    def _popcount(words: np.ndarray, out: np.ndarray) -> np.ndarray:
        per_byte = _BYTE_POPCOUNT[words.view(np.uint8)].reshape(len(words), 8)
        out[:] = per_byte.sum(axis=1, dtype=np.uint8)
        return out


class PDQIndex:
    """In-memory PDQ index: rows of four uint64 words stored word-major, with item ids.

    A query XORs and popcounts every row (exhaustive, exact); about 3 ms per query per million
    rows on one core. Several rows may belong to one item (video keyframes); results keep the
    best row per item.
    """

    def __init__(self, capacity: int = 1024) -> None:
        self._words = np.zeros((_WORDS, max(capacity, 1)), dtype=np.uint64)
        self._item_rows = np.zeros(max(capacity, 1), dtype=np.int64)
        self._frames = np.zeros(max(capacity, 1), dtype=np.int32)
        self._size = 0
        self._item_ids: list[str] = []
        self._item_number: dict[str, int] = {}
        self._discarded: set[int] = set()

    def __len__(self) -> int:
        return self._size

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._item_number

    @property
    def item_ids(self) -> tuple[str, ...]:
        """Distinct item ids, in insertion order (discarded ones left out)."""
        return tuple(i for n, i in enumerate(self._item_ids) if n not in self._discarded)

    def discard(self, item_id: str) -> None:
        """Forget every hash of an item (its rows stay allocated but never match again).

        Adding the item afterwards starts it afresh: how an index kept for a batch follows an
        item whose hashes were replaced (reprocessing).
        """
        number = self._item_number.pop(item_id, None)
        if number is not None:
            self._discarded.add(number)

    def add(self, item_id: str, h: str | bytes | PDQHash, frame: int = 0) -> None:
        """Store one hash of an item (``frame``: keyframe number for videos)."""
        self.add_packed([item_id], PDQHash.parse(h).words()[None, :], frames=[frame])

    def add_many(
        self, entries: Iterable[tuple[str, str | bytes | PDQHash] | tuple[str, Any, int]]
    ) -> None:
        """Store many ``(item_id, hash)`` or ``(item_id, hash, frame)`` entries at once."""
        ids: list[str] = []
        raw: list[bytes] = []
        frames: list[int] = []
        for entry in entries:
            ids.append(entry[0])
            raw.append(PDQHash.parse(entry[1]).value)
            frames.append(int(entry[2]) if len(entry) > 2 else 0)
        if ids:
            words = np.frombuffer(b"".join(raw), dtype=np.uint64).reshape(-1, _WORDS)
            self.add_packed(ids, words, frames=frames)

    def add_packed(
        self, item_ids: Sequence[str], words: np.ndarray, frames: Sequence[int] | None = None
    ) -> None:
        """Store hashes given as an (N, 4) uint64 or (N, 32) uint8 array (bulk loading)."""
        words = _as_words(words)
        if len(words) != len(item_ids):
            msg = f"{len(item_ids)} item ids for {len(words)} hashes"
            raise ValueError(msg)
        start, end = self._size, self._size + len(words)
        self._reserve(end)
        self._words[:, start:end] = words.T
        self._item_rows[start:end] = [self._item_ordinal(i) for i in item_ids]
        self._frames[start:end] = 0 if frames is None else np.asarray(frames, dtype=np.int32)
        self._size = end

    def to_arrays(self) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
        """The live rows (discarded items left out) as ``(item ids, row item numbers, (N, 4)
        uint64 words, frames)``: what :meth:`from_arrays` takes back (saving an index)."""
        ordinals = self._item_rows[: self._size]
        rows = np.arange(self._size)
        if self._discarded:
            rows = rows[~np.isin(ordinals, np.fromiter(self._discarded, dtype=np.int64))]
        live, numbers = np.unique(ordinals[rows], return_inverse=True)
        ids = [self._item_ids[n] for n in live.tolist()]
        words = np.ascontiguousarray(self._words[:, rows].T)
        return ids, numbers.astype(np.int64), words, self._frames[rows].copy()

    @classmethod
    def from_arrays(
        cls, item_ids: Sequence[str], numbers: np.ndarray, words: np.ndarray, frames: np.ndarray
    ) -> PDQIndex:
        """An index of the rows :meth:`to_arrays` returned (row ``r`` belongs to
        ``item_ids[numbers[r]]``), built without a Python step per row."""
        words = _as_words(words)
        numbers = np.asarray(numbers, dtype=np.int64)
        if not (len(words) == len(numbers) == len(frames)):
            msg = f"{len(numbers)} item numbers and {len(frames)} frames for {len(words)} hashes"
            raise ValueError(msg)
        if len(numbers) and (numbers.min() < 0 or numbers.max() >= len(item_ids)):
            msg = "an item number points outside the item ids"
            raise ValueError(msg)
        index = cls(capacity=len(words))
        index._item_ids = list(item_ids)
        index._item_number = {item: n for n, item in enumerate(index._item_ids)}
        if len(index._item_number) != len(index._item_ids):
            msg = "item ids repeat"
            raise ValueError(msg)
        index._words[:, : len(words)] = words.T
        index._item_rows[: len(words)] = numbers
        index._frames[: len(words)] = np.asarray(frames, dtype=np.int32)
        index._size = len(words)
        return index

    def _item_ordinal(self, item_id: str) -> int:
        number = self._item_number.get(item_id)
        if number is None:
            number = self._item_number[item_id] = len(self._item_ids)
            self._item_ids.append(item_id)
        return number

    def _reserve(self, rows: int) -> None:
        capacity = self._words.shape[1]
        if rows <= capacity:
            return
        new = max(rows, capacity * 2)
        words = np.zeros((_WORDS, new), dtype=np.uint64)
        words[:, : self._size] = self._words[:, : self._size]
        self._words = words
        self._item_rows = np.resize(self._item_rows, new)
        self._frames = np.resize(self._frames, new)

    def distances(self, h: str | bytes | PDQHash) -> np.ndarray:
        """Hamming distance from ``h`` to every stored row (uint16, length ``len(self)``)."""
        row: np.ndarray = self._distances([PDQHash.parse(h).words()])[0]
        return row

    def _chunks(self, queries: Sequence[np.ndarray]) -> Iterator[tuple[int, int, np.ndarray]]:
        """Yield (start, end, distances of every query to rows start..end) chunk by chunk,
        so the rows stay in cache while all queries run over them."""
        block = np.empty((len(queries), _CHUNK), dtype=np.uint16)
        xor = np.empty(_CHUNK, dtype=np.uint64)
        count = np.empty(_CHUNK, dtype=np.uint8)
        for start in range(0, self._size, _CHUNK):
            end = min(self._size, start + _CHUNK)
            width = end - start
            for qi, query in enumerate(queries):
                row = block[qi, :width]
                for w in range(_WORDS):
                    np.bitwise_xor(self._words[w, start:end], query[w], out=xor[:width])
                    _popcount(xor[:width], count[:width])
                    if w == 0:
                        row[:] = count[:width]
                    else:
                        np.add(row, count[:width], out=row)
            yield start, end, block[:, :width]

    def _distances(self, queries: Sequence[np.ndarray]) -> np.ndarray:
        """(len(queries), N) distances."""
        out = np.empty((len(queries), self._size), dtype=np.uint16)
        for start, end, block in self._chunks(queries):
            out[:, start:end] = block
        return out

    def _best_of(self, queries: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Per row: the smallest distance over ``queries`` and which query gave it."""
        # One running minimum over keys distance * 8 + query number: a plain SIMD minimum,
        # several times faster than argmin across queries or masked copies.
        keys = np.empty(self._size, dtype=np.uint16)
        scratch = np.empty(_CHUNK, dtype=np.uint16)
        for start, end, block in self._chunks(queries):
            part, tmp = keys[start:end], scratch[: end - start]
            np.left_shift(block[0], 3, out=part)
            for qi in range(1, len(block)):
                np.left_shift(block[qi], 3, out=tmp)
                np.bitwise_or(tmp, qi, out=tmp)
                np.minimum(part, tmp, out=part)
        best, which = keys >> 3, (keys & 7).astype(np.uint8)
        return best, which

    def query(self, h: str | bytes | PDQHash, threshold: int) -> list[Match]:
        """Items with a stored hash within ``threshold`` of ``h``, best first (one per item)."""
        distances = self._distances([PDQHash.parse(h).words()])[0]
        return self._matches(distances, None, threshold)

    def query_dihedral(
        self, hashes: Sequence[str | bytes | PDQHash], threshold: int
    ) -> list[Match]:
        """Like :meth:`query` over the query's dihedral hashes (``pdqhash.compute_dihedral``
        order); each item's best distance is kept with the transform that gave it, so
        mirrored and rotated copies match."""
        if not hashes:
            return []
        if len(hashes) > len(DIHEDRAL_NAMES):
            msg = f"at most {len(DIHEDRAL_NAMES)} dihedral hashes, got {len(hashes)}"
            raise ValueError(msg)
        best, transform = self._best_of([PDQHash.parse(h).words() for h in hashes])
        return self._matches(best, transform, threshold)

    def _matches(
        self, distances: np.ndarray, transform: np.ndarray | None, threshold: int
    ) -> list[Match]:
        rows = np.flatnonzero(distances <= threshold)
        if rows.size == 0:
            return []
        rows = rows[np.argsort(distances[rows], kind="stable")]
        seen: set[int] = set()
        matches: list[Match] = []
        for row in rows.tolist():
            item = int(self._item_rows[row])
            if item in seen or item in self._discarded:
                continue
            seen.add(item)
            name = None if transform is None else DIHEDRAL_NAMES[int(transform[row]) % 8]
            matches.append(
                Match(self._item_ids[item], int(distances[row]), int(self._frames[row]), name)
            )
        return matches


def _as_words(array: np.ndarray) -> np.ndarray:
    array = np.asarray(array)
    if array.dtype == np.uint8 and array.ndim == 2 and array.shape[1] == PDQ_BYTES:
        words: np.ndarray = np.ascontiguousarray(array).view(np.uint64)
        return words
    if array.dtype == np.uint64 and array.ndim == 2 and array.shape[1] == _WORDS:
        return array
    msg = f"expected an (N, 4) uint64 or (N, 32) uint8 array, got {array.dtype} {array.shape}"
    raise ValueError(msg)
