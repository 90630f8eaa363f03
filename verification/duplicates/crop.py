"""Crops: ORB features and a RANSAC homography confirm (or recover) a copy that PDQ misses.

A crop of a few percent moves PDQ far; matching local features between the two thumbnails
tells a crop of the same scene from a different scene.

The check is symmetric: ``confirm_crop(a, b)`` and ``confirm_crop(b, a)`` give the same answer
with the roles swapped. Only mutual matches count (each point is the other's best match, both
passing Lowe's ratio test), and the homography is always fitted from the same one of the two
images (the one whose pixels digest lower), so which file arrived first cannot change the
outcome. The homography also says where one picture sits in the other: the evidence an
analyst reads as "a 92 % crop of the top-left".
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

MAX_SIDE = 800  # bounded cost: features are found on a downscaled copy
_RATIO_TEST = 0.75  # Lowe's ratio test
MIN_INLIERS = 25
MIN_INLIER_RATIO = 0.25
_EDGE = 0.03  # a margin under 3 % of a side counts as "no margin" when naming the position
_INSIDE = 0.04  # projected corners may stick out this much (fraction of a side) and be inside


@dataclass(frozen=True, slots=True)
class CropGeometry:
    """Where one picture sits inside the other, from the homography (fractions of a side).

    ``inner`` is ``"a"``, ``"b"`` (the first or second argument of :func:`confirm_crop` is
    the crop of the other) or ``"overlap"`` (each shows part of the other). ``box`` is the
    inner picture's bounding box in the outer one (left, top, right, bottom, each 0..1),
    ``area`` its share of the outer picture's area, ``scale`` the linear scale from the inner
    thumbnail's pixels to the outer's.
    """

    inner: str
    box: tuple[float, float, float, float]
    area: float
    scale: float
    position: str

    def swapped(self) -> CropGeometry:
        """The same geometry with the arguments' roles exchanged."""
        inner = {"a": "b", "b": "a"}.get(self.inner, self.inner)
        return replace(self, inner=inner)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "inner": self.inner,
            "box": list(self.box),
            "area": self.area,
            "scale": self.scale,
            "position": self.position,
        }


@dataclass(frozen=True, slots=True)
class CropMatch:
    """ORB/RANSAC verdict on two pictures.

    ``matched_points`` mutual matches passed the ratio test, ``inliers`` of them agree with one
    homography, ``ratio`` = inliers / matched points; ``geometry`` is None when no plausible
    homography was found.
    """

    matched: bool
    inliers: int
    ratio: float
    matched_points: int = 0
    geometry: CropGeometry | None = None

    def swapped(self) -> CropMatch:
        """The result as ``confirm_crop(b, a)`` states it."""
        geometry = self.geometry.swapped() if self.geometry else None
        return replace(self, geometry=geometry)


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
    return np.ascontiguousarray(array)


def _digest(gray: np.ndarray) -> bytes:
    return hashlib.sha256(np.ascontiguousarray(gray).tobytes() + repr(gray.shape).encode()).digest()


def confirm_crop(img_a: ImageInput, img_b: ImageInput, *, max_features: int = 1000) -> CropMatch:
    """Whether two images show the same picture up to crop, scale or re-encoding, and how.

    Images are arrays (grey, BGR or BGRA, as OpenCV uses) or encoded bytes. Use it on
    candidates that are too far for PDQ alone (a 5 % crop moves PDQ far). Symmetric: swapping
    the arguments gives :meth:`CropMatch.swapped` of the same result.
    """
    gray_a, gray_b = _gray(img_a), _gray(img_b)
    if gray_a is None or gray_b is None:
        return CropMatch(False, 0, 0.0)
    if _digest(gray_b) < _digest(gray_a):  # one canonical order for the pair
        return _confirm(gray_b, gray_a, max_features).swapped()
    return _confirm(gray_a, gray_b, max_features)


def _confirm(gray_a: np.ndarray, gray_b: np.ndarray, max_features: int) -> CropMatch:
    import cv2

    orb = cv2.ORB.create(nfeatures=max_features)
    kp_a, des_a = orb.detectAndCompute(gray_a, None)
    kp_b, des_b = orb.detectAndCompute(gray_b, None)
    if des_a is None or des_b is None or len(kp_a) < 2 or len(kp_b) < 2:
        return CropMatch(False, 0, 0.0)
    pairs = _mutual_matches(des_a, des_b)
    if len(pairs) < 4:
        return CropMatch(False, 0, 0.0, len(pairs))
    src = np.array([kp_a[i].pt for i, _ in pairs], dtype=np.float32).reshape(-1, 1, 2)
    dst = np.array([kp_b[j].pt for _, j in pairs], dtype=np.float32).reshape(-1, 1, 2)
    homography, mask = cv2.findHomography(src, dst, cv2.RANSAC, 5.0)
    if homography is None or mask is None or not _plausible(homography):
        return CropMatch(False, 0, 0.0, len(pairs))
    inliers = int(mask.sum())
    ratio = round(inliers / len(pairs), 3)
    matched = inliers >= MIN_INLIERS and ratio >= MIN_INLIER_RATIO
    geometry = _geometry(homography, gray_a.shape[:2], gray_b.shape[:2])
    return CropMatch(matched, inliers, ratio, len(pairs), geometry)


def _mutual_matches(des_a: np.ndarray, des_b: np.ndarray) -> list[tuple[int, int]]:
    """Index pairs (i in a, j in b) where each is the other's ratio-tested best match."""
    import cv2

    matcher = cv2.BFMatcher(cv2.NORM_HAMMING)
    forward = _ratio_tested(matcher.knnMatch(des_a, des_b, k=2))
    backward = _ratio_tested(matcher.knnMatch(des_b, des_a, k=2))
    both = set(forward.items()) | {(i, j) for j, i in backward.items()}
    return sorted(both)


def _ratio_tested(pairs: Any) -> dict[int, int]:
    return {
        p[0].queryIdx: p[0].trainIdx
        for p in pairs
        if len(p) == 2 and p[0].distance < _RATIO_TEST * p[1].distance
    }


def _plausible(homography: np.ndarray) -> bool:
    """Reject degenerate or mirroring homographies (flips are PDQ dihedral's job)."""
    det = float(np.linalg.det(homography[:2, :2]))
    return 1 / 50 < det < 50


def _geometry(
    homography: np.ndarray, shape_a: tuple[int, ...], shape_b: tuple[int, ...]
) -> CropGeometry | None:
    """Which picture lies inside the other, where and how large (from ``homography`` a -> b)."""
    try:
        inverse = np.linalg.inv(homography)
    except np.linalg.LinAlgError:
        return None
    scale = float(np.sqrt(abs(np.linalg.det(homography[:2, :2]))))
    box_in_b = _projected_box(homography, shape_a, shape_b)
    box_in_a = _projected_box(inverse, shape_b, shape_a)
    if box_in_b is not None and _inside(box_in_b):
        return _described("a", box_in_b, scale)
    if box_in_a is not None and _inside(box_in_a):
        return _described("b", box_in_a, 1 / scale)
    if box_in_b is None:
        return None
    return _described("overlap", _clipped(box_in_b), scale)


def _projected_box(
    homography: np.ndarray, shape_from: tuple[int, ...], shape_to: tuple[int, ...]
) -> tuple[float, float, float, float] | None:
    """Bounding box of one image's corners mapped into the other, in fractions of its sides."""
    import cv2

    height, width = shape_from[0], shape_from[1]
    corners = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float64)
    projected = cv2.perspectiveTransform(corners.reshape(-1, 1, 2), homography).reshape(-1, 2)
    if not np.all(np.isfinite(projected)):
        return None
    to_h, to_w = shape_to[0], shape_to[1]
    xs, ys = projected[:, 0] / to_w, projected[:, 1] / to_h
    return float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())


def _inside(box: tuple[float, float, float, float]) -> bool:
    left, top, right, bottom = box
    return left >= -_INSIDE and top >= -_INSIDE and right <= 1 + _INSIDE and bottom <= 1 + _INSIDE


def _clipped(box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    left, top, right, bottom = (min(max(v, 0.0), 1.0) for v in box)
    return left, top, right, bottom


def _described(inner: str, box: tuple[float, float, float, float], scale: float) -> CropGeometry:
    left, top, right, bottom = _clipped(box)
    area = max(0.0, right - left) * max(0.0, bottom - top)
    rounded = (round(left, 3), round(top, 3), round(right, 3), round(bottom, 3))
    return CropGeometry(inner, rounded, round(area, 3), round(scale, 3), _position(rounded))


def _position(box: tuple[float, float, float, float]) -> str:
    """``top-left``, ``bottom``, ``centre``, ``whole`` ...: the margins a crop removed."""
    left, top, right, bottom = box
    margins = (left > _EDGE, top > _EDGE, right < 1 - _EDGE, bottom < 1 - _EDGE)
    if not any(margins):
        return "whole"
    cut_left, cut_top, cut_right, cut_bottom = margins
    vertical = (
        "top" if cut_bottom and not cut_top else "bottom" if cut_top and not cut_bottom else ""
    )
    horizontal = (
        "left" if cut_right and not cut_left else "right" if cut_left and not cut_right else ""
    )
    return "-".join(p for p in (vertical, horizontal) if p) or "centre"


def describe_crop(geometry: CropGeometry, this: str) -> str:
    """One sentence for an analyst, from the point of view of argument ``this`` (a or b)."""
    percent = round(geometry.area * 100)
    if geometry.inner == "overlap":
        return f"the two pictures overlap: each shows part of the other ({percent} % shared)"
    if geometry.position == "whole":
        return "the two pictures show the same framing (one is a rescaled copy of the other)"
    if geometry.inner == this:
        return f"this item is a {percent} % crop of the {geometry.position} of the other"
    return f"the other item is a {percent} % crop of the {geometry.position} of this one"
