"""A JPEG's compression history, read from its quantisation tables and markers (no decoding).

What it can say: the estimated quality (the libjpeg quality whose scaled standard tables come
closest, exact when the file uses them), which family of encoder wrote the tables (the standard
libjpeg tables that Pillow, OpenCV, GIMP, ImageMagick and most servers use; ffmpeg's MJPEG
tables; or tables of the encoder's own, as camera firmware and some editors write), an encoder
named in a comment segment, and whether the EXIF thumbnail was encoded like the main image.
Each of these is a signal with evidence, never a verdict: many cameras and phones use the
standard tables themselves (docs/findings.md gives the figures).

Encoder signatures are the ones their sources document: libjpeg's ``jpeg_quality_scaling`` of
the Annex K tables (jcparam.c), libavcodec's MJPEG encoder (the MPEG-1 intra matrix scaled by
qscale / 8 with DC fixed at 8, and a ``Lavc`` comment) and libgd (a ``CREATOR: gd-jpeg``
comment). No messaging or social platform publishes its tables, so none is named here.
"""

from __future__ import annotations

import functools
import io
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, BinaryIO

from verification.core.findings import Finding

logger = logging.getLogger(__name__)

# ITU-T T.81 Annex K, tables K.1 and K.2, in natural (row-major) order.
STANDARD_LUMINANCE = (
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
)  # fmt: skip
STANDARD_CHROMINANCE = (
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99,
    24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99,
    *(99,) * 32,
)  # fmt: skip
# libavcodec's MJPEG tables: the MPEG-1 default intra matrix (ISO/IEC 11172-2), natural order.
MPEG1_INTRA = (
    8, 16, 19, 22, 26, 27, 29, 34, 16, 16, 22, 24, 27, 29, 34, 37,
    19, 22, 26, 27, 29, 34, 34, 38, 22, 22, 26, 27, 29, 34, 37, 40,
    22, 26, 27, 29, 32, 35, 40, 48, 26, 27, 29, 32, 35, 40, 48, 58,
    26, 27, 29, 34, 38, 46, 56, 69, 27, 29, 35, 38, 46, 56, 69, 83,
)  # fmt: skip

STANDARD = "libjpeg-standard"
FFMPEG = "ffmpeg"
CUSTOM = "custom"


def ijg_table(standard: Sequence[int], quality: int) -> tuple[int, ...]:
    """libjpeg's table for ``quality`` (1-100): the Annex K table scaled, limited to 1..255."""
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return tuple(min(255, max(1, (value * scale + 50) // 100)) for value in standard)


@functools.cache
def ffmpeg_table(qscale: int) -> tuple[int, ...]:
    """libavcodec's MJPEG table for ``qscale``: DC 8, AC the MPEG-1 matrix times qscale / 8."""
    return (8, *(max(1, value * qscale // 8) for value in MPEG1_INTRA[1:]))


@dataclass(frozen=True, slots=True)
class CompressionHistory:
    """What a JPEG's structure says about how it was encoded."""

    tables: dict[int, tuple[int, ...]]
    family: str
    quality: int | None
    deviation: float | None
    ffmpeg_qscale: int | None = None
    progressive: bool = False
    subsampling: str | None = None
    comment: str | None = None
    encoder: str | None = None
    thumbnail_family: str | None = None
    thumbnail_quality: int | None = None
    findings: tuple[Finding, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, as kept in the record under ``media.compression``."""
        return {
            "family": self.family,
            "quality": self.quality,
            "deviation": self.deviation,
            "ffmpeg_qscale": self.ffmpeg_qscale,
            "progressive": self.progressive,
            "subsampling": self.subsampling,
            "comment": self.comment,
            "encoder": self.encoder,
            "thumbnail_family": self.thumbnail_family,
            "thumbnail_quality": self.thumbnail_quality,
            "tables": {str(k): list(v) for k, v in sorted(self.tables.items())},
        }


def estimate_quality(tables: Mapping[int, Sequence[int]]) -> tuple[int, float, bool]:
    """(libjpeg quality whose tables come closest, mean absolute difference per entry, exact).

    Table 0 is compared with the luminance table, table 1 with the chrominance table (as
    libjpeg assigns them); further tables are ignored. Ties go to the lowest quality.
    """
    error = _distances(tables[0], STANDARD_LUMINANCE) + _distances(tables[1], STANDARD_CHROMINANCE)
    return _closest(error, 64 * 2)


def _distances(table: Sequence[int], standard: tuple[int, ...]) -> Any:
    """Sum of absolute differences between ``table`` and libjpeg's table for each quality
    1-100 (entry q-1), over the entries both have."""
    import numpy as np

    scaled = _ijg_tables(standard)
    values = np.asarray(table[:64], dtype=np.int64)
    return np.abs(scaled[:, : len(values)] - values).sum(axis=1)


def _closest(error: Any, entries: int) -> tuple[int, float, bool]:
    import numpy as np

    best = int(np.argmin(error))  # the first minimum: the lowest quality among equals
    smallest = int(error[best])
    return best + 1, round(smallest / entries, 3), smallest == 0


@functools.cache
def _ijg_tables(standard: tuple[int, ...]) -> Any:
    """libjpeg's tables for qualities 1-100 (row q-1), as a 100x64 array."""
    import numpy as np

    return np.array([ijg_table(standard, q) for q in range(1, 101)], dtype=np.int64)


def _ffmpeg_qscale(tables: Mapping[int, Sequence[int]]) -> int | None:
    """libavcodec's qscale when every table is its MJPEG table for one qscale, else None."""
    for qscale in range(1, 32):
        expected = ffmpeg_table(qscale)
        if all(tuple(table) == expected for table in tables.values()):
            return qscale
    return None


def classify(
    tables: Mapping[int, Sequence[int]],
) -> tuple[str, int | None, float | None, int | None]:
    """(family, estimated libjpeg quality, deviation, ffmpeg qscale) of a set of tables."""
    if 0 not in tables:
        return CUSTOM, None, None, None
    qscale = _ffmpeg_qscale(tables)
    if qscale is not None:
        return FFMPEG, None, None, qscale
    if 1 in tables:
        quality, deviation, exact = estimate_quality(tables)
    else:  # one table for every component: compare it with the luminance table only
        quality, deviation, exact = _luminance_only(tables[0])
    return (STANDARD if exact else CUSTOM), quality, deviation, None


def _luminance_only(table: Sequence[int]) -> tuple[int, float, bool]:
    return _closest(_distances(table, STANDARD_LUMINANCE), 64)


def _tables_of(image: Any) -> dict[int, tuple[int, ...]]:
    raw = getattr(image, "quantization", None) or {}
    return {int(k): tuple(int(v) for v in table) for k, table in raw.items()}


def _comment(image: Any) -> str | None:
    for marker, payload in getattr(image, "applist", []):
        if marker == "COM" and isinstance(payload, bytes):
            text = payload[:120].decode("latin-1", errors="replace")
            return "".join(c if c.isprintable() else " " for c in text).strip() or None
    return None


def _encoder(family: str, comment: str | None) -> str | None:
    if comment and comment.startswith("Lavc"):
        return "ffmpeg (libavcodec)"
    if comment and comment.startswith("CREATOR: gd-jpeg"):
        return "libgd (gd-jpeg)"
    if family == FFMPEG:
        return "ffmpeg (libavcodec)"
    return None


def _subsampling(image: Any) -> str | None:
    from PIL import JpegImagePlugin

    names = {0: "4:4:4", 1: "4:2:2", 2: "4:2:0"}
    return names.get(JpegImagePlugin.get_sampling(image))


def read_history(
    fh: BinaryIO, thumbnail: bytes | None = None, camera: str | None = None
) -> CompressionHistory | None:
    """The compression history of the JPEG open in ``fh`` (headers only), or None when the
    tables cannot be read. ``thumbnail`` is the EXIF thumbnail's bytes, ``camera`` the EXIF
    make (and model) the file claims; they turn structure into findings."""
    from PIL import Image

    try:
        fh.seek(0)
        with Image.open(fh, formats=("JPEG",)) as image:
            tables = _tables_of(image)
            progressive = bool(image.info.get("progressive") or image.info.get("progression"))
            subsampling, comment = _subsampling(image), _comment(image)
    except MemoryError:
        raise
    except Exception as error:  # hostile headers: the decode step reports the file itself
        logger.info("quantisation tables unreadable: %s", type(error).__name__)
        return None
    if not tables:
        return None
    family, quality, deviation, qscale = classify(tables)
    thumb_family, thumb_quality = _thumbnail_tables(thumbnail)
    history = CompressionHistory(
        tables,
        family,
        quality,
        deviation,
        qscale,
        progressive,
        subsampling,
        comment,
        _encoder(family, comment),
        thumb_family,
        thumb_quality,
    )
    return _with_findings(history, camera)


def _thumbnail_tables(data: bytes | None) -> tuple[str | None, int | None]:
    from PIL import Image

    if not data:
        return None, None
    try:
        with Image.open(io.BytesIO(data), formats=("JPEG",)) as thumb:
            tables = _tables_of(thumb)
    except MemoryError:
        raise
    except Exception:  # a broken thumbnail is reported by the metadata step
        return None, None
    if not tables:
        return None, None
    family, quality, _, _ = classify(tables)
    return family, quality


def _with_findings(history: CompressionHistory, camera: str | None) -> CompressionHistory:
    findings: list[Finding] = []
    if camera and history.family in (STANDARD, FFMPEG):
        findings.append(_reencoded(history, camera))
    if history.encoder:
        findings.append(_encoder_finding(history))
    return replace(history, findings=tuple(findings))


def jpeg_history(
    fh: BinaryIO, fmt: str, tags: Mapping[str, Any]
) -> tuple[dict[str, Any] | None, list[Finding]]:
    """The record's ``media.compression`` and its findings, for a photo's exifread ``tags``
    (None and no finding for other formats)."""
    if fmt != "jpeg":
        return None, []
    make, model = (str(tags.get(k) or "").strip() for k in ("Image Make", "Image Model"))
    camera = " ".join(p for p in (make, model) if p) or None
    history = read_history(fh, tags.get("JPEGThumbnail"), camera)
    return (history.to_dict(), list(history.findings)) if history else (None, [])


def _reencoded(history: CompressionHistory, camera: str) -> Finding:
    if history.family == FFMPEG:
        how = f"ffmpeg's MJPEG tables (qscale {history.ffmpeg_qscale})"
    else:
        how = f"the standard libjpeg tables at quality {history.quality}"
    thumb = ""
    if history.thumbnail_family == CUSTOM:
        thumb = "; its EXIF thumbnail has the encoder's own tables, so it was encoded otherwise"
    message = (
        f"quantisation tables are {how}, while the EXIF names a camera ({camera}): "
        f"consistent with re-encoding by software after capture{thumb}"
    )
    evidence = {
        "family": history.family,
        "quality": history.quality,
        "ffmpeg_qscale": history.ffmpeg_qscale,
        "camera": camera,
        "thumbnail_family": history.thumbnail_family,
        "thumbnail_quality": history.thumbnail_quality,
    }
    return Finding("jpeg-software-tables", "info", message, evidence)


def _encoder_finding(history: CompressionHistory) -> Finding:
    encoder = history.encoder or "ffmpeg (libavcodec)"
    message = f"the JPEG was written by {encoder}"
    if history.family == FFMPEG:
        message += f" (MJPEG tables, qscale {history.ffmpeg_qscale}): typical of a frame taken from a video"
    evidence = {
        "encoder": encoder,
        "family": history.family,
        "comment": history.comment,
        "quality": history.quality,
        "ffmpeg_qscale": history.ffmpeg_qscale,
    }
    return Finding("jpeg-encoder-identified", "info", message, evidence)
