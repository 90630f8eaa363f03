"""The dedupe step: an item's perceptual hashes against the whole collection, crops confirmed."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from verification.duplicates.crop import ImageInput, confirm_crop
from verification.duplicates.index import MIN_PDQ_QUALITY, PDQIndex

logger = logging.getLogger(__name__)


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
