"""Near-duplicate search: PDQ hashes in a vectorised index, ORB feature matching for crops.

PDQ survives re-encoding, resizing, watermarks and format changes; its eight dihedral hashes
cover mirrored and rotated copies. A crop of a few percent moves PDQ far, so crop candidates
are confirmed (or recovered) with ORB features and a RANSAC homography.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
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

    def __len__(self) -> int:
        return self._size

    @property
    def item_ids(self) -> tuple[str, ...]:
        """Distinct item ids, in insertion order."""
        return tuple(self._item_ids)

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
            if item in seen:
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


# --- crops: ORB features + RANSAC homography -------------------------------------------------

MAX_SIDE = 800  # bounded cost: features are found on a downscaled copy
_RATIO_TEST = 0.75  # Lowe's ratio test
MIN_INLIERS = 25
MIN_INLIER_RATIO = 0.25


@dataclass(frozen=True, slots=True)
class CropMatch:
    """ORB/RANSAC verdict: ``inliers`` consistent matches, ``ratio`` = inliers / good matches."""

    matched: bool
    inliers: int
    ratio: float


ImageInput = np.ndarray | bytes


def _gray(image: ImageInput) -> np.ndarray | None:
    import cv2

    if isinstance(image, bytes | bytearray | memoryview):
        buffer = np.frombuffer(bytes(image), dtype=np.uint8)
        decoded = cv2.imdecode(buffer, cv2.IMREAD_REDUCED_GRAYSCALE_2)
        if decoded is None:
            return None
        image = decoded
    array = np.asarray(image)
    if array.ndim == 3:
        code = cv2.COLOR_BGRA2GRAY if array.shape[2] == 4 else cv2.COLOR_BGR2GRAY
        array = cv2.cvtColor(array, code)
    if array.dtype != np.uint8:
        peak = max(float(array.max()), 1.0)  # e.g. 16-bit input: scale to 0..255
        array = (array.astype(np.float64) * (255.0 / peak)).clip(0, 255).astype(np.uint8)
    scale = MAX_SIDE / max(array.shape[:2])
    if scale < 1:
        size = (max(1, round(array.shape[1] * scale)), max(1, round(array.shape[0] * scale)))
        array = cv2.resize(array, size, interpolation=cv2.INTER_AREA)
    return array


def confirm_crop(img_a: ImageInput, img_b: ImageInput, *, max_features: int = 1000) -> CropMatch:
    """Whether two images show the same picture up to crop, scale or re-encoding.

    Images are arrays (grey, BGR or BGRA, as OpenCV uses) or encoded bytes. Use it on
    PDQ candidates that are too far for PDQ alone (a 5 % crop moves PDQ far).
    """
    import cv2

    gray_a, gray_b = _gray(img_a), _gray(img_b)
    if gray_a is None or gray_b is None:
        return CropMatch(False, 0, 0.0)
    orb = cv2.ORB.create(nfeatures=max_features)
    kp_a, des_a = orb.detectAndCompute(gray_a, None)
    kp_b, des_b = orb.detectAndCompute(gray_b, None)
    if des_a is None or des_b is None or len(kp_a) < 2 or len(kp_b) < 2:
        return CropMatch(False, 0, 0.0)
    pairs = cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(des_a, des_b, k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < _RATIO_TEST * p[1].distance]
    if len(good) < 4:
        return CropMatch(False, 0, 0.0)
    src = np.array([kp_a[m.queryIdx].pt for m in good], dtype=np.float32).reshape(-1, 1, 2)
    dst = np.array([kp_b[m.trainIdx].pt for m in good], dtype=np.float32).reshape(-1, 1, 2)
    homography, mask = cv2.findHomography(src, dst, cv2.RANSAC, 5.0)
    if homography is None or mask is None or not _plausible(homography):
        return CropMatch(False, 0, 0.0)
    inliers = int(mask.sum())
    ratio = inliers / len(good)
    return CropMatch(inliers >= MIN_INLIERS and ratio >= MIN_INLIER_RATIO, inliers, round(ratio, 3))


def _plausible(homography: np.ndarray) -> bool:
    """Reject degenerate or mirroring homographies (flips are PDQ dihedral's job)."""
    det = float(np.linalg.det(homography[:2, :2]))
    return 1 / 50 < det < 50


# --- the dedupe step -------------------------------------------------------------------------


def find_duplicates(
    perceptual: Mapping[str, Any],
    index: PDQIndex,
    *,
    threshold: int = 31,
    exclude: str | None = None,
    image: ImageInput | None = None,
    load_image: Callable[[str], ImageInput | None] | None = None,
    crop_candidates: Iterable[str] = (),
    crop_candidate_threshold: int = 96,
    max_crop_checks: int = 10,
    min_quality: int = MIN_PDQ_QUALITY,
) -> list[dict[str, Any]]:
    """Near-duplicates of one item: ``[{"item", "distance", "kind", ...}]``, closest first.

    ``kind`` is ``near-pdq`` (PDQ within ``threshold``), ``near-pdq-dihedral`` (a rotated or
    mirrored copy) or ``crop-orb`` (confirmed by ORB: candidates within
    ``crop_candidate_threshold`` plus ``crop_candidates``, when ``image`` and ``load_image``
    are given). Unrelated PDQ hashes sit at 128 ± 8 bits; a 5 % crop lands at 65-105, so
    the PDQ pre-filter recovers most crops and ``crop_candidates`` (e.g. the items of the
    same case) covers the rest; each ORB check costs ~30-60 ms, hence ``max_crop_checks``.
    ``exclude`` is the query item's own id. Hashes with a PDQ quality below
    ``min_quality`` match nothing (flat images collide), so the result is empty for them.
    """
    quality = perceptual.get("pdq_quality")
    if quality is not None and quality < min_quality:
        logger.debug("PDQ quality %s below %s: near-duplicate search skipped", quality, min_quality)
        return []
    found: dict[str, dict[str, Any]] = {}
    for query in _query_hashes(perceptual):
        for m in index.query(query, threshold):
            _keep(found, m.item_id, m.distance, "near-pdq", exclude, frame=m.frame)
    dihedral = perceptual.get("pdq_dihedral") or []
    for m in index.query_dihedral(dihedral, threshold):
        kind = "near-pdq" if m.transform == "original" else "near-pdq-dihedral"
        _keep(found, m.item_id, m.distance, kind, exclude, transform=m.transform)
    if image is not None and load_image is not None:
        candidates = _crop_candidates(
            perceptual, index, threshold, crop_candidate_threshold, crop_candidates
        )
        todo = [i for i in candidates if i not in found and i != exclude][:max_crop_checks]
        _confirm_crops(found, image, load_image, todo, candidates)
    return sorted(found.values(), key=lambda d: (d["distance"] is None, d["distance"] or 0))


def _query_hashes(perceptual: Mapping[str, Any]) -> list[str]:
    hashes = [perceptual.get("pdq")] + [k.get("pdq") for k in perceptual.get("keyframes") or []]
    return [h for h in hashes if h]


def _keep(
    found: dict[str, dict[str, Any]],
    item: str,
    distance: int | None,
    kind: str,
    exclude: str | None,
    **extra: Any,
) -> None:
    if item == exclude:
        return
    current = found.get(item)
    if current is not None and (distance is None or current["distance"] <= distance):
        return
    found[item] = {"item": item, "distance": distance, "kind": kind, **extra}


def _crop_candidates(
    perceptual: Mapping[str, Any],
    index: PDQIndex,
    threshold: int,
    candidate_threshold: int,
    extra: Iterable[str],
) -> dict[str, int | None]:
    """Items too far for PDQ alone but close enough to be crops, plus the caller's extras."""
    distances: dict[str, int | None] = {}
    for query in _query_hashes(perceptual):
        for m in index.query(query, candidate_threshold):
            if m.distance > threshold and m.item_id not in distances:
                distances[m.item_id] = m.distance
    for item in extra:
        distances.setdefault(item, None)
    return distances


def _confirm_crops(
    found: dict[str, dict[str, Any]],
    image: ImageInput,
    load_image: Callable[[str], ImageInput | None],
    todo: Iterable[str],
    distances: Mapping[str, int | None],
) -> None:
    for item in todo:
        other = load_image(item)
        if other is None:
            logger.debug("crop check skipped: no image for a candidate")
            continue
        result = confirm_crop(image, other)
        if result.matched:
            found[item] = {
                "item": item,
                "distance": distances[item],
                "kind": "crop-orb",
                "inliers": result.inliers,
                "ratio": result.ratio,
            }
