"""How much memory decoding an image will take, judged from its header before any decoding.

A pixel limit alone does not bound memory: a 744 KB PNG of 14000x14000 RGBA is under the default
200-megapixel limit yet decodes to 784 MB, and the decoders of some formats hold extra full-size
buffers. :func:`check` estimates the peak in bytes from the mode Pillow will decode to, the size
after any reduced decoding (JPEG DCT scaling), the decoder's own buffers (a progressive JPEG's
coefficients, a file read whole) and the conversion the analysis needs, and refuses the decode
when that exceeds the budget: ``AnalysisOptions.decode_budget_bytes`` (``EVIDENCE_DECODE_BUDGET_MB``),
by default :data:`DECODE_BUDGET_BYTES`. A refusal is an ``image-too-large`` finding; the metadata
is still read.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

from verification.core.config import DECODE_BUDGET_BYTES as DECODE_BUDGET_BYTES
from verification.core.findings import Finding

# DECODE_BUDGET_BYTES: default peak bytes of pixel memory one image may take to decode and scale;
# larger ones are refused. The pipeline passes ``EVIDENCE_DECODE_BUDGET_MB`` (same default).

# Full-size copies a decoder holds besides Pillow's own image, measured with
# `python -m bench memory` (peak RSS over Pillow's pixel storage: WebP 4.0x, HEIF 2.0x,
# AVIF 2.4x; PNG, TIFF, GIF and JPEG 1.0x), rounded up.
DECODER_COPIES: dict[str, float] = {"webp": 4.5, "heif": 2.5, "avif": 2.5}

# Formats whose decoders take the whole file into memory before decoding (Pillow's WebP and
# AVIF plugins, pillow-heif). libtiff maps TIFF files instead: those pages are the file's own.
FILE_READ_WHOLE = frozenset({"webp", "heif", "avif"})

# Modes that are converted at full size before scaling: Pillow resizes palette and bilevel
# images with nearest-neighbour only, and resizes images with alpha through a premultiplied
# full-size copy. Every other mode is scaled first and converted once small.
CONVERTED_BEFORE_SCALING: dict[str, str] = {
    "1": "L",
    "P": "RGB",
    "PA": "RGB",
    "LA": "L",
    "La": "L",
    "RGBA": "RGB",
    "RGBa": "RGB",
}


@dataclass(frozen=True, slots=True)
class Estimate:
    """Peak pixel memory of decoding one image and the figures it is computed from."""

    width: int
    height: int
    mode: str
    bytes_per_pixel: int
    estimated_bytes: int


def bytes_per_pixel(mode: str) -> int:
    """Bytes Pillow stores per pixel of ``mode``: bands x bytes per band, 32-bit aligned.

    Pillow keeps pixels of more than one 8-bit band in one 32-bit word (RGB and LA take 4
    bytes, not 3 and 2); single-band modes take their band's width (``I;16`` 2, ``I``/``F`` 4).
    """
    from PIL import ImageMode

    description = ImageMode.getmode(mode)
    per_band = int(description.typestr[-1])
    raw = len(description.bands) * per_band
    return 4 * math.ceil(raw / 4) if len(description.bands) > 1 else raw


def estimate(fmt: str, mode: str, size: tuple[int, int], buffer_bytes: int = 0) -> Estimate:
    """The peak memory of decoding an image of ``mode`` and ``size`` (after reduced decoding).

    ``buffer_bytes`` is what the decoder holds besides pixels: the file when it is in
    :data:`FILE_READ_WHOLE`, a progressive JPEG's coefficients (:func:`jpeg_coefficients`).
    """
    width, height = size
    pixels = width * height
    per_pixel = bytes_per_pixel(mode)
    peak = pixels * per_pixel * DECODER_COPIES.get(fmt, 1.0) + buffer_bytes
    converted = CONVERTED_BEFORE_SCALING.get(mode)
    if converted is not None:
        peak += pixels * bytes_per_pixel(converted)
    return Estimate(width, height, mode, per_pixel, math.ceil(peak))


def jpeg_coefficients(
    size: tuple[int, int], layers: list[tuple[int, int, int, int]], progressive: bool
) -> int:
    """Bytes libjpeg holds for a progressive JPEG's DCT coefficients, whatever the output scale.

    A progressive file is decoded scan by scan, so libjpeg keeps every coefficient of every
    component (2 bytes each, 64 per 8x8 block) until the last scan: 3 bytes a pixel for 4:2:0
    colour, 6 for 4:4:4, even when DCT scaling makes the output tiny. Baseline files need none.
    """
    if not progressive or not layers:
        return 0
    h_max = max(layer[1] for layer in layers) or 1
    v_max = max(layer[2] for layer in layers) or 1
    width, height = size
    mcus = math.ceil(width / (8 * h_max)) * math.ceil(height / (8 * v_max))
    blocks_per_mcu = sum(layer[1] * layer[2] for layer in layers)
    return mcus * blocks_per_mcu * 64 * 2


def check(
    fmt: str,
    mode: str,
    stored: tuple[int, int],
    decoded: tuple[int, int],
    max_pixels: int,
    buffer_bytes: int = 0,
    budget: int | None = None,
) -> Finding | None:
    """An ``image-too-large`` finding when the image must not be decoded, else None.

    ``stored`` is the size in the header (held to ``max_pixels``, the operator's limit);
    ``decoded`` the size the decoder will produce, smaller when the format decodes reduced;
    ``buffer_bytes`` what the decoder holds besides pixels.
    """
    budget = DECODE_BUDGET_BYTES if budget is None else budget
    width, height = stored
    if width * height > max_pixels:
        return _over_pixel_limit(width, height, mode, max_pixels)
    cost = estimate(fmt, mode, decoded, buffer_bytes)
    if cost.estimated_bytes > budget:
        return _over_budget(width, height, cost, budget)
    return None


def _over_pixel_limit(width: int, height: int, mode: str, max_pixels: int) -> Finding:
    pixels = width * height
    message = (
        f"image not decoded: {width}x{height} is {pixels:,} pixels, over the limit of "
        f"{max_pixels:,} (EVIDENCE_MAX_IMAGE_PIXELS); metadata was read, the original is kept"
    )
    evidence = {
        "limit": "pixels",
        "width": width,
        "height": height,
        "mode": mode,
        "pixels": pixels,
        "max_pixels": max_pixels,
    }
    return Finding("image-too-large", "warning", message, evidence)


def _over_budget(width: int, height: int, cost: Estimate, budget: int) -> Finding:
    message = (
        f"image not decoded: {width}x{height} {cost.mode} would take about "
        f"{_mib(cost.estimated_bytes)} of memory to decode, over the {_mib(budget)} budget; "
        "metadata was read, the original is kept"
    )
    evidence = {
        "limit": "bytes",
        "width": width,
        "height": height,
        "mode": cost.mode,
        "decoded_width": cost.width,
        "decoded_height": cost.height,
        "bytes_per_pixel": cost.bytes_per_pixel,
        "estimated_bytes": cost.estimated_bytes,
        "budget_bytes": budget,
    }
    return Finding("image-too-large", "warning", message, evidence)


def _mib(count: int) -> str:
    return f"{count / 2**20:,.0f} MiB"


def webp_canvas(head: bytes) -> tuple[int, int] | None:
    """The canvas size a WebP file declares in its first 30 bytes, or None.

    Pillow's WebP decoder allocates its canvases when the file is opened, so the size must be
    judged from the header before Pillow sees the file.
    """
    if len(head) < 30 or head[:4] != b"RIFF" or head[8:12] != b"WEBP":
        return None
    chunk = head[12:16]
    if chunk == b"VP8X":
        width = int.from_bytes(head[24:27], "little") + 1
        height = int.from_bytes(head[27:30], "little") + 1
        return width, height
    if chunk == b"VP8L" and head[20] == 0x2F:
        bits = struct.unpack("<I", head[21:25])[0]
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 " and head[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", head[26:30])
        return width & 0x3FFF, height & 0x3FFF
    return None
