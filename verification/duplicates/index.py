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


@dataclass(frozen=True, slots=True, eq=False)
class RowHits:
    """The rows a search found, before they are told apart by item: per plain query (rows,
    distances), and the dihedral rows with their best ``distance << 3 | query``; rows ascending."""

    plain: tuple[tuple[np.ndarray, np.ndarray], ...]
    turned: tuple[np.ndarray, np.ndarray]

    def joined(self, later: RowHits) -> RowHits:
        """These rows followed by ``later``'s (rows further down the index)."""
        plain = tuple(
            (np.concatenate([a[0], b[0]]), np.concatenate([a[1], b[1]]))
            for a, b in zip(self.plain, later.plain, strict=True)
        )
        turned = (
            np.concatenate([self.turned[0], later.turned[0]]),
            np.concatenate([self.turned[1], later.turned[1]]),
        )
        return RowHits(plain, turned)


@dataclass(frozen=True, slots=True, eq=False)
class BaseScan:
    """What :meth:`PDQIndex.scan_base` found in an index's base rows for some queries."""

    base: IndexColumns
    plain: tuple[bytes, ...]
    threshold: int
    dihedral: tuple[bytes, ...]
    dihedral_threshold: int
    hits: RowHits

    def covers(
        self,
        base: IndexColumns | None,
        plain: Sequence[np.ndarray],
        threshold: int,
        dihedral: Sequence[np.ndarray],
        dihedral_threshold: int,
    ) -> bool:
        """Whether these hits answer a search of ``base`` for these queries: the same base
        (the same object, so the same rows), the same hashes, thresholds no narrower."""
        return (
            base is self.base
            and threshold <= self.threshold
            and (not dihedral or dihedral_threshold <= self.dihedral_threshold)
            and self.plain == tuple(q.tobytes() for q in plain)
            and self.dihedral == tuple(q.tobytes() for q in dihedral)
        )

    def within(self, threshold: int, dihedral_threshold: int) -> RowHits:
        """The hits within narrower thresholds (the rows a scan with them would find)."""
        plain = tuple((rows[d <= threshold], d[d <= threshold]) for rows, d in self.hits.plain)
        rows, keys = self.hits.turned
        close = (keys >> 3) <= dihedral_threshold
        return RowHits(plain, (rows[close], keys[close]))


_NO_ROWS = (np.empty(0, dtype=np.int64), np.empty(0, dtype=np.uint16))


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


@dataclass(frozen=True, slots=True)
class IndexColumns:
    """An index as plain arrays: what a snapshot stores and memory-maps back.

    Item ``n`` is ``ids[n]`` (UTF-8 text, or with ``encoding`` "sha256" the 32 raw bytes of a
    hex SHA-256); ``ids[order]`` is sorted, so an id is found by binary search instead of a
    dictionary built at load. Row ``r`` is hash ``words[0..3][r]`` of item ``numbers[r]``,
    keyframe ``frames[r]``.
    """

    ids: np.ndarray
    encoding: str
    order: np.ndarray
    numbers: np.ndarray
    words: tuple[np.ndarray, ...]
    frames: np.ndarray

    def __post_init__(self) -> None:
        rows, items = len(self.numbers), len(self.ids)
        if len(self.words) != _WORDS or any(len(w) != rows for w in self.words):
            msg = f"{len(self.numbers)} item numbers for hash words of other lengths"
            raise ValueError(msg)
        if len(self.frames) != rows:
            msg = f"{rows} item numbers and {len(self.frames)} frames for {rows} hashes"
            raise ValueError(msg)
        if self.encoding not in ID_ENCODINGS or len(self.order) != items:
            msg = "item ids without their order, or in an unknown encoding"
            raise ValueError(msg)
        if rows and (int(self.numbers.min()) < 0 or int(self.numbers.max()) >= items):
            msg = "an item number points outside the item ids"
            raise ValueError(msg)
        if items and (int(self.order.min()) < 0 or int(self.order.max()) >= items):
            msg = "the item id order points outside the item ids"
            raise ValueError(msg)


ID_ENCODINGS = ("utf-8", "sha256")
_SHA256_HEX = frozenset("0123456789abcdef")


def _is_sha256(item_id: str) -> bool:
    return len(item_id) == 64 and _SHA256_HEX.issuperset(item_id)


def _encode_id(item_id: str, encoding: str) -> bytes | None:
    """The stored form of an id, or None when it has none in ``encoding``."""
    if encoding == "sha256":
        return bytes.fromhex(item_id) if _is_sha256(item_id) else None
    return item_id.encode()


def _decode_ids(ids: np.ndarray, encoding: str) -> list[str]:
    if encoding == "sha256":
        raw = ids.tobytes()
        return [raw[i : i + PDQ_BYTES].hex() for i in range(0, len(raw), PDQ_BYTES)]
    return [item.decode() for item in ids.tolist()]


def _encode_ids(item_ids: Sequence[str], encoding: str) -> np.ndarray:
    encoded = [_encode_id(item, encoding) or b"" for item in item_ids]
    width = PDQ_BYTES if encoding == "sha256" else max((len(i) for i in encoded), default=1)
    return np.array(encoded, dtype=f"S{max(width, 1)}")


class PDQIndex:
    """In-memory PDQ index: rows of four uint64 words stored word-major, with item ids.

    A query XORs and popcounts every row (exhaustive, exact). Several rows may belong to one
    item (video keyframes); results keep the best row per item. The rows are a read-only base
    (an index loaded from a snapshot, used where it lies, memory-mapped) followed by the rows
    added since, so loading costs no copy of the collection.
    """

    def __init__(self, capacity: int = 1024) -> None:
        self._base: IndexColumns | None = None
        self._base_rows = 0
        self._base_items = 0
        self._words = np.zeros((_WORDS, max(capacity, 1)), dtype=np.uint64)
        self._item_rows = np.zeros(max(capacity, 1), dtype=np.int64)
        self._frames = np.zeros(max(capacity, 1), dtype=np.int32)
        self._tail = 0  # rows added after the base
        self._tail_ids: list[str] = []
        self._tail_number: dict[str, int] = {}
        self._discarded: set[int] = set()

    def __len__(self) -> int:
        return self._base_rows + self._tail

    def __contains__(self, item_id: object) -> bool:
        return isinstance(item_id, str) and self._number(item_id) is not None

    @property
    def item_ids(self) -> tuple[str, ...]:
        """Distinct item ids, in insertion order (discarded ones left out)."""
        ids = _decode_ids(self._base.ids, self._base.encoding) if self._base is not None else []
        ids += self._tail_ids
        return tuple(i for n, i in enumerate(ids) if n not in self._discarded)

    def discard(self, item_id: str) -> None:
        """Forget every hash of an item (its rows stay allocated but never match again).

        Adding the item afterwards starts it afresh: how an index kept for a batch follows an
        item whose hashes were replaced (reprocessing).
        """
        number = self._number(item_id)
        if number is not None:
            self._tail_number.pop(item_id, None)
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
        start, end = self._tail, self._tail + len(words)
        self._reserve(end)
        self._words[:, start:end] = words.T
        self._item_rows[start:end] = [self._item_ordinal(i) for i in item_ids]
        self._frames[start:end] = 0 if frames is None else np.asarray(frames, dtype=np.int32)
        self._tail = end

    def columns(self) -> IndexColumns:
        """The live rows and items (discarded ones left out) as arrays, in row and insertion
        order: what :meth:`from_columns` takes back (saving an index)."""
        encoding = self._encoding()
        ids = self._all_ids(encoding)
        order = self._merged_order(ids)
        base, tail = self._base, self._tail
        numbers = _joined(None if base is None else base.numbers, self._item_rows[:tail])
        words = tuple(
            _joined(None if base is None else base.words[w], self._words[w, :tail])
            for w in range(_WORDS)
        )
        frames = _joined(None if base is None else base.frames, self._frames[:tail])
        if self._discarded:
            keep = np.ones(len(ids), dtype=bool)
            keep[np.fromiter(self._discarded, dtype=np.int64)] = False
            rows = keep[numbers]
            renumber = np.cumsum(keep) - 1
            ids, order = ids[keep], renumber[order[keep[order]]]
            numbers, frames = renumber[numbers[rows]], frames[rows]
            words = tuple(w[rows] for w in words)
        return IndexColumns(
            ids, encoding, _narrow(order), _narrow(numbers), words, frames.astype(np.int32)
        )

    @classmethod
    def from_columns(cls, columns: IndexColumns) -> PDQIndex:
        """An index whose rows are ``columns`` as they are (no copy: memory-mapped arrays stay
        on disk until read); rows added later go to memory."""
        index = cls(capacity=1024)
        index._base = columns
        index._base_rows = len(columns.numbers)
        index._base_items = len(columns.ids)
        return index

    def to_arrays(self) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
        """The live rows (discarded items left out) as ``(item ids, row item numbers, (N, 4)
        uint64 words, frames)``: what :meth:`from_arrays` takes back."""
        columns = self.columns()
        ids = _decode_ids(columns.ids, columns.encoding)
        words = np.ascontiguousarray(np.stack(columns.words, axis=1))
        return ids, columns.numbers.astype(np.int64), words, columns.frames.copy()

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
        encoding = "sha256" if item_ids and all(_is_sha256(i) for i in item_ids) else "utf-8"
        ids = _encode_ids(item_ids, encoding)
        order = np.argsort(ids, kind="stable")
        if len(ids) > 1 and bool((ids[order][1:] == ids[order][:-1]).any()):
            msg = "item ids repeat"
            raise ValueError(msg)
        columns = IndexColumns(
            ids,
            encoding,
            order,
            numbers,
            tuple(np.ascontiguousarray(words[:, w]) for w in range(_WORDS)),
            np.asarray(frames, dtype=np.int32),
        )
        return cls.from_columns(columns)

    def _encoding(self) -> str:
        """How :meth:`columns` stores ids: raw SHA-256 bytes when every id is one."""
        base = self._base.encoding if self._base is not None and self._base_items else None
        if base == "utf-8" or not all(_is_sha256(i) for i in self._tail_ids):
            return "utf-8"
        return "sha256" if base or self._tail_ids else "utf-8"

    def _all_ids(self, encoding: str) -> np.ndarray:
        """Every item number's id (discarded ones included) in ``encoding``."""
        tail = _encode_ids(self._tail_ids, encoding)
        if self._base is None:
            return tail
        base = self._base.ids
        if self._base.encoding != encoding:
            base = _encode_ids(_decode_ids(base, self._base.encoding), encoding)
        return np.concatenate([base, tail]) if self._tail_ids else base

    def _merged_order(self, ids: np.ndarray) -> np.ndarray:
        """The sorting order of ``ids`` (the base's ids then the added ones): the base's order
        with the added ids merged in (no sort of the whole collection)."""
        first = self._base_items if self._base is not None else 0
        added = np.argsort(ids[first:], kind="stable") + first
        if first == 0:
            return added
        base_order = np.asarray(self._base.order, dtype=np.int64)  # type: ignore[union-attr]
        where = np.searchsorted(ids[:first], ids[added], sorter=base_order)
        return np.insert(base_order, where, added)

    def _number(self, item_id: str) -> int | None:
        """The live item number of ``item_id``, or None."""
        number = self._tail_number.get(item_id)
        if number is not None:
            return number
        number = self._base_number(item_id)
        return None if number is None or number in self._discarded else number

    def _base_number(self, item_id: str) -> int | None:
        """Binary search of the base's sorted ids."""
        base = self._base
        if base is None or not self._base_items:
            return None
        key = _encode_id(item_id, base.encoding)
        width = base.ids.dtype.itemsize
        if key is None or len(key) > width:
            return None
        at = int(np.searchsorted(base.ids, np.array(key, dtype=base.ids.dtype), sorter=base.order))
        if at == self._base_items:
            return None
        number = int(base.order[at])
        return (
            number if base.ids[number : number + 1].tobytes() == key.ljust(width, b"\0") else None
        )

    def _item_ordinal(self, item_id: str) -> int:
        number = self._number(item_id)
        if number is None:
            number = self._tail_number[item_id] = self._base_items + len(self._tail_ids)
            self._tail_ids.append(item_id)
        return number

    def _reserve(self, rows: int) -> None:
        capacity = self._words.shape[1]
        if rows <= capacity:
            return
        new = max(rows, capacity * 2)
        words = np.zeros((_WORDS, new), dtype=np.uint64)
        words[:, : self._tail] = self._words[:, : self._tail]
        self._words = words
        self._item_rows = np.resize(self._item_rows, new)
        self._frames = np.resize(self._frames, new)

    def _segments(self) -> Iterator[tuple[int, Sequence[np.ndarray]]]:
        """(first row, four word columns) of the base and of the rows added since."""
        if self._base is not None and self._base_rows:
            yield 0, self._base.words
        yield from self._tail_segment()

    def _tail_segment(self) -> Iterator[tuple[int, Sequence[np.ndarray]]]:
        """(first row, four word columns) of the rows added after the base, if any."""
        if self._tail:
            yield self._base_rows, [self._words[w, : self._tail] for w in range(_WORDS)]

    def _chunks(self) -> Iterator[tuple[int, Sequence[np.ndarray]]]:
        return _chunked(self._segments())

    def _rows(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(item numbers, frames, (4, len(rows)) words) of the given rows."""
        numbers = np.empty(len(rows), dtype=np.int64)
        frames = np.empty(len(rows), dtype=np.int64)
        words = np.empty((_WORDS, len(rows)), dtype=np.uint64)
        in_base = rows < self._base_rows
        if self._base is not None and in_base.any():
            picked = rows[in_base]
            numbers[in_base] = self._base.numbers[picked]
            frames[in_base] = self._base.frames[picked]
            for w in range(_WORDS):
                words[w, in_base] = self._base.words[w][picked]
        added = ~in_base
        picked = rows[added] - self._base_rows
        numbers[added] = self._item_rows[picked]
        frames[added] = self._frames[picked]
        words[:, added] = self._words[:, picked]
        return numbers, frames, words

    def distances(self, h: str | bytes | PDQHash) -> np.ndarray:
        """Hamming distance from ``h`` to every stored row (uint16, length ``len(self)``)."""
        query = PDQHash.parse(h).words()
        out = np.empty(len(self), dtype=np.uint16)
        scratch = _Scratch()
        for first, words in self._chunks():
            _distance(words, query, scratch, out[first : first + len(words[0])])
        return out

    def search(
        self,
        plain: Sequence[str | bytes | PDQHash],
        threshold: int,
        dihedral: Sequence[str | bytes | PDQHash] = (),
        dihedral_threshold: int = 0,
        *,
        ahead: BaseScan | None = None,
    ) -> tuple[list[list[Match]], list[Match]]:
        """Several queries in one pass over the rows: for each ``plain`` hash what
        :meth:`query` returns with ``threshold``, and for the ``dihedral`` hashes what
        :meth:`query_dihedral` returns with ``dihedral_threshold``.

        ``ahead`` is what :meth:`scan_base` found for these queries, earlier or in another
        thread: when it covers them (same base, same hashes, thresholds at least these), only
        the rows added since the base are read now. The answer is the same either way.
        """
        plain_words, dihedral_words = _query_words(plain, dihedral)
        covered = ahead is not None and ahead.covers(
            self._base, plain_words, threshold, dihedral_words, dihedral_threshold
        )
        segments = self._tail_segment() if covered else self._segments()
        hits = self._scan(segments, plain_words, threshold, dihedral_words, dihedral_threshold)
        if covered:
            assert ahead is not None
            hits = ahead.within(threshold, dihedral_threshold).joined(hits)
        plain_matches = [self._matches(rows, distances, None) for rows, distances in hits.plain]
        if not dihedral_words:
            return plain_matches, []
        rows, keys = hits.turned
        return plain_matches, self._matches(rows, keys >> 3, keys & 7)

    def scan_base(
        self,
        plain: Sequence[str | bytes | PDQHash],
        threshold: int,
        dihedral: Sequence[str | bytes | PDQHash] = (),
        dihedral_threshold: int = 0,
    ) -> BaseScan | None:
        """The rows of the base (the part loaded from a snapshot, which never changes) that
        :meth:`search` would find for these queries, for a later ``search(..., ahead=)``;
        None without a base. Reads only the base, so it may run in another thread while rows
        are added or items discarded."""
        base = self._base
        if base is None or not self._base_rows:
            return None
        plain_words, dihedral_words = _query_words(plain, dihedral)
        hits = self._scan(
            iter([(0, base.words)]), plain_words, threshold, dihedral_words, dihedral_threshold
        )
        return BaseScan(
            base,
            tuple(q.tobytes() for q in plain_words),
            threshold,
            tuple(q.tobytes() for q in dihedral_words),
            dihedral_threshold,
            hits,
        )

    def _scan(
        self,
        segments: Iterator[tuple[int, Sequence[np.ndarray]]],
        plain_words: Sequence[np.ndarray],
        threshold: int,
        dihedral_words: Sequence[np.ndarray],
        dihedral_threshold: int,
    ) -> RowHits:
        """Every row of ``segments`` within reach: per plain query (rows, distances), and the
        rows whose best dihedral distance is within ``dihedral_threshold`` with their best
        ``distance << 3 | query`` (rows ascending, as stored)."""
        found: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in plain_words]
        candidates: list[np.ndarray] = []
        scratch = _Scratch()
        for first, words in _chunked(segments):
            width = len(words[0])
            for query, hits in zip(plain_words, found, strict=True):
                distance = _distance(words, query, scratch, scratch.distance[:width])
                rows = np.flatnonzero(distance <= threshold)
                hits.append((rows + first, distance[rows]))
            if dihedral_words:
                bound = _lower_bound(words, dihedral_words, scratch)
                candidates.append(np.flatnonzero(bound <= dihedral_threshold) + first)
        plain = tuple(_concatenated(hits) for hits in found)
        if not dihedral_words or not candidates:
            return RowHits(plain, _NO_ROWS)
        rows = np.concatenate(candidates)
        keys = self._dihedral_keys(rows, dihedral_words)
        close = (keys >> 3) <= dihedral_threshold
        return RowHits(plain, (rows[close], keys[close]))

    def _dihedral_keys(self, rows: np.ndarray, queries: Sequence[np.ndarray]) -> np.ndarray:
        """Per row, the exact best ``distance << 3 | query`` over the dihedral ``queries``
        (ties: the earlier query), as :meth:`query_dihedral` ranks them."""
        words = self._rows(rows)[2]
        keys = np.full(len(rows), np.iinfo(np.uint16).max, dtype=np.uint16)
        for qi, query in enumerate(queries):
            distance = sum(
                (_popcount_of(words[w] ^ query[w]).astype(np.uint16) for w in range(_WORDS)),
                start=np.zeros(len(rows), dtype=np.uint16),
            )
            np.minimum(keys, (distance << 3) | qi, out=keys)
        return keys

    def query(self, h: str | bytes | PDQHash, threshold: int) -> list[Match]:
        """Items with a stored hash within ``threshold`` of ``h``, best first (one per item)."""
        return self.search([h], threshold)[0][0]

    def query_dihedral(
        self, hashes: Sequence[str | bytes | PDQHash], threshold: int
    ) -> list[Match]:
        """Like :meth:`query` over the query's dihedral hashes (``pdqhash.compute_dihedral``
        order); each item's best distance is kept with the transform that gave it, so
        mirrored and rotated copies match."""
        if not hashes:
            return []
        return self.search([], threshold, hashes, threshold)[1]

    def _matches(
        self, rows: np.ndarray, distances: np.ndarray, transform: np.ndarray | None
    ) -> list[Match]:
        """One match per live item, closest first (ties: the earlier row)."""
        if rows.size == 0:
            return []
        order = np.argsort(distances, kind="stable")
        rows, distances = rows[order], distances[order]
        numbers, frames, _ = self._rows(rows)
        seen: set[int] = set()
        matches: list[Match] = []
        for n, item in enumerate(numbers.tolist()):
            if item in seen or item in self._discarded:
                continue
            seen.add(item)
            name = None if transform is None else DIHEDRAL_NAMES[int(transform[order[n]]) % 8]
            matches.append(Match(self._item_id(item), int(distances[n]), int(frames[n]), name))
        return matches

    def _item_id(self, number: int) -> str:
        if number >= self._base_items or self._base is None:
            return self._tail_ids[number - self._base_items]
        return _decode_ids(self._base.ids[number : number + 1], self._base.encoding)[0]


class _Scratch:
    """Buffers of one chunk, allocated once per search (fresh pages cost more than the work)."""

    def __init__(self) -> None:
        self.xor = np.empty(_CHUNK, dtype=np.uint64)
        self.count = np.empty(_CHUNK, dtype=np.uint8)
        self.partial = np.empty(_CHUNK, dtype=np.uint8)
        self.lowest = np.empty(_CHUNK, dtype=np.uint8)
        self.distance = np.empty(_CHUNK, dtype=np.uint16)


def _distance(
    words: Sequence[np.ndarray], query: np.ndarray, scratch: _Scratch, out: np.ndarray
) -> np.ndarray:
    """Hamming distances of one chunk's rows to ``query``, into ``out`` (uint16)."""
    width = len(words[0])
    xor, count, partial = scratch.xor[:width], scratch.count[:width], scratch.partial[:width]
    for w in range(_WORDS):
        np.bitwise_xor(words[w], query[w], out=xor)
        _popcount(xor, count if w else partial)
        if 0 < w < _WORDS - 1:
            np.add(partial, count, out=partial)  # at most 192: fits uint8
    np.add(partial, count, out=out, dtype=np.uint16)
    return out


def _lower_bound(
    words: Sequence[np.ndarray], queries: Sequence[np.ndarray], scratch: _Scratch
) -> np.ndarray:
    """Per row of one chunk, the smallest distance to any of ``queries`` over the first 128
    bits: never more than the full distance, so a row above the threshold here is above it
    for all 256 bits (an exact pre-filter that halves the work of the eight dihedral hashes)."""
    width = len(words[0])
    xor, count = scratch.xor[:width], scratch.count[:width]
    partial, lowest = scratch.partial[:width], scratch.lowest[:width]
    for qi, query in enumerate(queries):
        target = lowest if qi == 0 else partial
        np.bitwise_xor(words[0], query[0], out=xor)
        _popcount(xor, target)
        np.bitwise_xor(words[1], query[1], out=xor)
        _popcount(xor, count)
        np.add(target, count, out=target)  # at most 128: fits uint8
        if qi:
            np.minimum(lowest, partial, out=lowest)
    return lowest


def _popcount_of(words: np.ndarray) -> np.ndarray:
    return _popcount(words, np.empty(len(words), dtype=np.uint8))


def _query_words(
    plain: Sequence[str | bytes | PDQHash], dihedral: Sequence[str | bytes | PDQHash]
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    if len(dihedral) > len(DIHEDRAL_NAMES):
        msg = f"at most {len(DIHEDRAL_NAMES)} dihedral hashes, got {len(dihedral)}"
        raise ValueError(msg)
    return [PDQHash.parse(h).words() for h in plain], [PDQHash.parse(h).words() for h in dihedral]


def _chunked(
    segments: Iterator[tuple[int, Sequence[np.ndarray]]],
) -> Iterator[tuple[int, Sequence[np.ndarray]]]:
    """(first row, word columns) of every chunk of rows, so each chunk stays in cache while
    every query runs over it: the collection is read from memory once per search."""
    for first, words in segments:
        for start in range(0, len(words[0]), _CHUNK):
            yield first + start, [w[start : start + _CHUNK] for w in words]


def _concatenated(hits: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    if not hits:
        return _NO_ROWS
    return (
        np.concatenate([rows for rows, _ in hits]).astype(np.int64, copy=False),
        np.concatenate([distances for _, distances in hits]),
    )


def _joined(base: np.ndarray | None, added: np.ndarray) -> np.ndarray:
    return added.copy() if base is None else np.concatenate([base, added])


def _narrow(numbers: np.ndarray) -> np.ndarray:
    """Item numbers as int32 when they fit (half the bytes to write, checksum and map)."""
    if len(numbers) and int(numbers.max()) > np.iinfo(np.int32).max:
        return numbers.astype(np.int64)
    return numbers.astype(np.int32)


def _as_words(array: np.ndarray) -> np.ndarray:
    array = np.asarray(array)
    if array.dtype == np.uint8 and array.ndim == 2 and array.shape[1] == PDQ_BYTES:
        words: np.ndarray = np.ascontiguousarray(array).view(np.uint64)
        return words
    if array.dtype == np.uint64 and array.ndim == 2 and array.shape[1] == _WORDS:
        return array
    msg = f"expected an (N, 4) uint64 or (N, 32) uint8 array, got {array.dtype} {array.shape}"
    raise ValueError(msg)
