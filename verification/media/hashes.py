"""Perceptual hashes of an already decoded, already scaled image.

PDQ (Meta's 256-bit hash, with a quality score) is the near-duplicate key; the eight dihedral
PDQ hashes let a rotated or mirrored copy match; pHash (imagehash) is kept for interop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL import Image


def _bits_to_hex(vector: Any) -> str:
    import numpy as np

    # pdqhash returns bit 255 first, the order the reference implementation prints in hex.
    packed = np.packbits(np.asarray(vector, dtype=np.uint8))
    return packed.tobytes().hex()


def _rgb_array(image: Image.Image) -> Any:
    import numpy as np

    rgb = image if image.mode == "RGB" else image.convert("RGB")
    return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))


def pdq(image: Image.Image) -> tuple[str, int]:
    """PDQ hash as 64 hex digits and its quality (0-100; below ~50 is unreliable)."""
    import pdqhash

    vector, quality = pdqhash.compute(_rgb_array(image))
    return _bits_to_hex(vector), int(quality)


def pdq_dihedral(image: Image.Image) -> tuple[list[str], int]:
    """The eight PDQ hashes of the image's rotations and mirrors, plus the quality."""
    import pdqhash

    vectors, quality = pdqhash.compute_dihedral(_rgb_array(image))
    return [_bits_to_hex(vector) for vector in vectors], int(quality)


def phash(image: Image.Image) -> str:
    """64-bit DCT pHash (imagehash) as 16 hex digits."""
    import imagehash

    return str(imagehash.phash(image))


def hamming(a: str, b: str) -> int:
    """Bit distance between two equal-length hex hashes."""
    return (int(a, 16) ^ int(b, 16)).bit_count()
