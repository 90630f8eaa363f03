"""The dedupe step: an item's perceptual hashes against the whole collection, crops confirmed.

Every decision is a function of the pair, never of which item came first: the PDQ distance of
two items is computed from both items' hashes (plain hashes of every frame, and the dihedral
hashes of both photos, both ways), and the crop check is symmetric
(:func:`~verification.duplicates.crop.confirm_crop`). The index only proposes candidates; it
is asked generously enough (``DIHEDRAL_MARGIN``) that a pair found from one side is found
from the other.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from verification.duplicates.crop import CropGeometry, ImageInput, confirm_crop, describe_crop
from verification.duplicates.index import (
    DIHEDRAL_NAMES,
    MIN_PDQ_QUALITY,
    BaseScan,
    PDQHash,
    PDQIndex,
)

logger = logging.getLogger(__name__)

# The dihedral query of one side and the other's are not exact mirrors (PDQ thresholds each
# transformed DCT at its own median): candidates are asked for this much farther, then the
# pair's own distance decides.
DIHEDRAL_MARGIN = 16
CROP_CANDIDATE_THRESHOLD = 96
MAX_CROP_CHECKS = 10

# The transform of the other item that undoes each transform of this one.
INVERSE_TRANSFORM = {
    "original": "original",
    "rotate-90-ccw": "rotate-90-cw",
    "rotate-180": "rotate-180",
    "rotate-90-cw": "rotate-90-ccw",
    "flip-vertical": "flip-vertical",
    "flip-horizontal": "flip-horizontal",
    "transpose": "transpose",
    "anti-transpose": "anti-transpose",
}


@dataclass(frozen=True, slots=True)
class PairDistance:
    """How close two items' PDQ hashes come, seen from the first item.

    ``keyframe``/``other_keyframe`` are the keyframe numbers that matched (None for a photo);
    ``transform`` is the dihedral transform of the first item that gives the second (None
    when the plain hashes are closest).
    """

    distance: int
    keyframe: int | None = None
    other_keyframe: int | None = None
    transform: str | None = None

    def swapped(self) -> PairDistance:
        """The same distance seen from the second item."""
        transform = INVERSE_TRANSFORM[self.transform] if self.transform else None
        return PairDistance(self.distance, self.other_keyframe, self.keyframe, transform)


def _frames(perceptual: Mapping[str, Any], min_quality: int) -> list[tuple[int | None, PDQHash]]:
    """(keyframe number or None, hash) of every usable frame: a photo's one hash, a video's
    keyframes; frames below ``min_quality`` (flat, black) match nothing."""
    keyframes = perceptual.get("keyframes") or []
    rows: list[tuple[int | None, Any, Any]] = [
        (i, k.get("pdq"), k.get("quality")) for i, k in enumerate(keyframes)
    ]
    if not keyframes:
        rows = [(None, perceptual.get("pdq"), perceptual.get("pdq_quality"))]
    return [
        (number, PDQHash.parse(h))
        for number, h, quality in rows
        if h and (quality is None or quality >= min_quality)
    ]


def _dihedral(perceptual: Mapping[str, Any]) -> list[PDQHash]:
    return [PDQHash.parse(h) for h in perceptual.get("pdq_dihedral") or []]


def _canonical_key(perceptual: Mapping[str, Any]) -> tuple[str, ...]:
    hashes = [perceptual.get("pdq") or ""]
    hashes += [k.get("pdq") or "" for k in perceptual.get("keyframes") or []]
    return tuple(hashes)


def pair_distance(
    a: Mapping[str, Any], b: Mapping[str, Any], *, min_quality: int = MIN_PDQ_QUALITY
) -> PairDistance | None:
    """The PDQ distance of two items (perceptual dicts as the media step makes them).

    The smallest of: every frame of one against every frame of the other, and each photo's
    eight dihedral hashes against the other's plain hash, both ways. Symmetric:
    ``pair_distance(b, a)`` is ``pair_distance(a, b).swapped()``. None when either has no
    usable hash.
    """
    if _canonical_key(b) < _canonical_key(a):
        swapped = pair_distance(b, a, min_quality=min_quality)
        return swapped.swapped() if swapped else None
    frames_a, frames_b = _frames(a, min_quality), _frames(b, min_quality)
    if not frames_a or not frames_b:
        return None
    best = min(
        (ha - hb, fa if fa is not None else -1, fb if fb is not None else -1)
        for fa, ha in frames_a
        for fb, hb in frames_b
    )
    distance, frame_a, frame_b = best
    result = PairDistance(
        distance, None if frame_a < 0 else frame_a, None if frame_b < 0 else frame_b
    )
    for transform, distance in _dihedral_distances(a, b, frames_a, frames_b):
        if distance < result.distance:
            result = PairDistance(distance, transform=transform)
    return result


def _dihedral_distances(
    a: Mapping[str, Any],
    b: Mapping[str, Any],
    frames_a: Sequence[tuple[int | None, PDQHash]],
    frames_b: Sequence[tuple[int | None, PDQHash]],
) -> Iterable[tuple[str, int]]:
    """(transform of ``a`` that gives ``b``, distance) for photos with dihedral hashes."""
    if a.get("keyframes") or b.get("keyframes"):
        return  # dihedral hashes are a photo's; videos match frame against frame
    for names, hashes, plain, inverse in (
        (DIHEDRAL_NAMES, _dihedral(a), frames_b, False),
        (DIHEDRAL_NAMES, _dihedral(b), frames_a, True),
    ):
        for name, h in zip(names[1:], hashes[1:], strict=False):
            distance = min(h - other for _, other in plain)
            yield (INVERSE_TRANSFORM[name] if inverse else name), distance


def find_duplicates(
    perceptual: Mapping[str, Any],
    index: PDQIndex,
    *,
    threshold: int = 31,
    exclude: str | None = None,
    image: ImageInput | Callable[[], ImageInput | None] | None = None,
    load_image: Callable[[str], ImageInput | None] | None = None,
    load_perceptual: Callable[[str], Mapping[str, Any] | None] | None = None,
    crop_candidates: Iterable[str] = (),
    crop_candidate_threshold: int = CROP_CANDIDATE_THRESHOLD,
    max_crop_checks: int = MAX_CROP_CHECKS,
    min_quality: int = MIN_PDQ_QUALITY,
    ahead: BaseScan | None = None,
) -> list[dict[str, Any]]:
    """Near-duplicates of one item: ``[{"item", "distance", "kind", ...}]``, closest first.

    ``kind`` is ``near-pdq`` (PDQ within ``threshold``), ``near-pdq-dihedral`` (a rotated or
    mirrored copy) or ``crop-orb`` (confirmed by ORB: candidates within
    ``crop_candidate_threshold`` plus ``crop_candidates``, when ``image`` and ``load_image``
    are given; ``image`` may be a function that reads it, called only when there is a
    candidate, and no crop is checked when it returns None). With ``load_perceptual`` (another
    item's perceptual dict) each candidate's distance is :func:`pair_distance`, the same
    whichever item is asked about; without it the index's one-way distance is used. Unrelated PDQ hashes sit at 128 ± 8 bits; a 5 % crop
    lands at 65-105; each ORB check costs 2-3 ms on 512-pixel thumbnails, and about 40 items
    per million fall within 96 by chance, hence ``max_crop_checks`` (closest first, then by
    item id). ``exclude`` is the query item's own id. Items whose hashes have a
    PDQ quality below ``min_quality`` match nothing (flat images collide). ``ahead`` is what
    :func:`scan_ahead` found in the index's base, used when it still applies (same answer).
    """
    if _too_flat(perceptual, min_quality):
        quality = perceptual.get("pdq_quality")
        logger.debug("PDQ quality %s below %s: near-duplicate search skipped", quality, min_quality)
        return []
    frames, dihedral = _queries(perceptual, min_quality)
    crop = image is not None and load_image is not None
    near, candidates = _candidates(
        index, frames, dihedral, threshold, crop_candidate_threshold if crop else None, ahead
    )
    near.pop(exclude or "", None)
    found: dict[str, dict[str, Any]] = {}
    for item in sorted(near):
        other = load_perceptual(item) if load_perceptual else None
        pair = pair_distance(perceptual, other, min_quality=min_quality) if other else near[item]
        if pair is not None and pair.distance <= threshold:
            found[item] = _entry(item, pair)
    if crop:
        assert image is not None and load_image is not None
        for item in crop_candidates:
            candidates.setdefault(item, None)
        todo = sorted(
            (d if d is not None else crop_candidate_threshold + 1, i)
            for i, d in candidates.items()
            if i not in found and i != exclude
        )
        own = (image() if callable(image) else image) if todo else None  # read only if needed
        if todo and own is None:
            logger.debug("crop checks skipped: no image of the item")
        elif own is not None:
            if len(todo) > max_crop_checks:
                logger.warning(
                    "%d crop candidates, %d checked (max_crop_checks)", len(todo), max_crop_checks
                )
            for _, item in todo[:max_crop_checks]:
                entry = _crop_entry(item, own, load_image, candidates[item])
                if entry is not None:
                    found[item] = entry
    return sorted(
        found.values(), key=lambda d: (d["distance"] is None, d["distance"] or 0, d["item"])
    )


def scan_ahead(
    perceptual: Mapping[str, Any],
    index: PDQIndex,
    *,
    threshold: int = 31,
    crop_candidate_threshold: int = CROP_CANDIDATE_THRESHOLD,
    min_quality: int = MIN_PDQ_QUALITY,
) -> BaseScan | None:
    """The part of :func:`find_duplicates`' search that reads the index's base (the collection
    as loaded, which never changes), done now, for instance in another thread while other
    items are recorded; None when there is nothing to read ahead. Searched with the crop
    threshold, so it serves a search with or without crop candidates."""
    if _too_flat(perceptual, min_quality):
        return None
    frames, dihedral = _queries(perceptual, min_quality)
    return index.scan_base(
        [h for _, h in frames],
        max(threshold, crop_candidate_threshold),
        dihedral,
        threshold + DIHEDRAL_MARGIN,
    )


def _queries(
    perceptual: Mapping[str, Any], min_quality: int
) -> tuple[list[tuple[int | None, PDQHash]], list[PDQHash]]:
    """What an item is searched with: its usable frames, and a photo's dihedral hashes."""
    dihedral = _dihedral(perceptual) if not perceptual.get("keyframes") else []
    return _frames(perceptual, min_quality), dihedral


def _too_flat(perceptual: Mapping[str, Any], min_quality: int) -> bool:
    """A photo whose PDQ quality is below ``min_quality`` matches nothing."""
    quality = perceptual.get("pdq_quality")
    return quality is not None and quality < min_quality and not perceptual.get("keyframes")


def _candidates(
    index: PDQIndex,
    frames: Sequence[tuple[int | None, PDQHash]],
    dihedral: Sequence[PDQHash],
    threshold: int,
    crop_threshold: int | None,
    ahead: BaseScan | None = None,
) -> tuple[dict[str, PairDistance], dict[str, int | None]]:
    """Items the index puts within reach (with the one-way distance it saw), and with
    ``crop_threshold`` the crop candidates (each item's closest frame distance): one pass over
    the collection for every frame and dihedral hash."""
    widest = threshold if crop_threshold is None else max(threshold, crop_threshold)
    plain, turned = index.search(
        [h for _, h in frames], widest, dihedral, threshold + DIHEDRAL_MARGIN, ahead=ahead
    )
    near: dict[str, PairDistance] = {}
    for (keyframe, _), matches in zip(frames, plain, strict=True):
        for m in matches:
            if m.distance > threshold:
                continue
            if m.item_id not in near or m.distance < near[m.item_id].distance:
                other = m.frame - 1 if m.frame > 0 else None  # index row 0: the item's own hash
                near[m.item_id] = PairDistance(m.distance, keyframe, other)
    for m in turned:
        if m.item_id not in near or m.distance < near[m.item_id].distance:
            transform = None if m.transform == "original" else m.transform
            near[m.item_id] = PairDistance(m.distance, transform=transform)
    crop: dict[str, int | None] = {}
    if crop_threshold is None:
        return near, crop
    for matches in plain:
        for m in matches:
            current = crop.get(m.item_id)
            if m.distance <= crop_threshold and (current is None or m.distance < current):
                crop[m.item_id] = m.distance
    return near, crop


def _entry(item: str, pair: PairDistance) -> dict[str, Any]:
    kind = "near-pdq-dihedral" if pair.transform else "near-pdq"
    return {
        "item": item,
        "distance": pair.distance,
        "kind": kind,
        "keyframe": pair.keyframe,
        "other_keyframe": pair.other_keyframe,
        "transform": pair.transform,
    }


def _crop_entry(
    item: str,
    image: ImageInput,
    load_image: Callable[[str], ImageInput | None],
    distance: int | None,
) -> dict[str, Any] | None:
    other = load_image(item)
    if other is None:
        logger.debug("crop check skipped: no image for a candidate")
        return None
    result = confirm_crop(image, other)
    if not result.matched:
        return None
    crop: dict[str, Any] = {
        "matched_points": result.matched_points,
        "inliers": result.inliers,
        "inlier_ratio": result.ratio,
    }
    if result.geometry is not None:
        geometry = result.geometry
        inner = {"a": "this", "b": "other"}.get(geometry.inner, geometry.inner)
        crop.update(geometry.to_dict(), inner=inner, sentence=describe_crop(geometry, "a"))
    return {
        "item": item,
        "distance": distance,
        "kind": "crop-orb",
        "keyframe": None,
        "other_keyframe": None,
        "transform": None,
        "crop": crop,
        # kept for readers of the earlier record layout
        "inliers": result.inliers,
        "ratio": result.ratio,
    }


def mirrored(entry: Mapping[str, Any], item: str) -> dict[str, Any]:
    """``entry`` (a match found for ``item``) as the matched item sees ``item``."""
    out = dict(entry)
    out["item"] = item
    out["keyframe"], out["other_keyframe"] = entry.get("other_keyframe"), entry.get("keyframe")
    if entry.get("transform"):
        out["transform"] = INVERSE_TRANSFORM[entry["transform"]]
    crop = entry.get("crop")
    if crop:
        flipped = dict(crop)
        flipped["inner"] = {"this": "other", "other": "this"}.get(
            crop.get("inner"), crop.get("inner")
        )
        if "sentence" in crop:
            flipped["sentence"] = _flip_sentence(crop)
        out["crop"] = flipped
    return out


def _flip_sentence(crop: Mapping[str, Any]) -> str:
    inner = {"this": "b", "other": "a"}.get(crop.get("inner", ""), "overlap")
    left, top, right, bottom = crop["box"]
    box = (float(left), float(top), float(right), float(bottom))
    geometry = CropGeometry(inner, box, crop["area"], crop["scale"], crop["position"])
    return describe_crop(geometry, "a")
