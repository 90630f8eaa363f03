"""Crops: ORB features and a RANSAC homography confirm (or recover) a copy that PDQ misses.

A crop of a few percent moves PDQ far; matching local features between the two thumbnails
tells a crop of the same scene from a different scene.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)

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
