"""Photos: EXIF (exifread), XMP, pixel facts, perceptual hashes and a thumbnail (Pillow).

The file is opened read-only and decoded at most once: JPEGs are DCT-scaled while decoding to
about the thumbnail size, other formats are shrunk before any conversion, and the one scaled
image feeds the thumbnail, PDQ and pHash. Before decoding, the memory the decode would take is
estimated from the header (:mod:`verification.media.budget`); an image over the budget is not
decoded (``image-too-large``) but its metadata is read. Malformed EXIF structure is reported
(``metadata-malformed``) and the values it would lend are dropped
(:mod:`verification.media.ifd`). Files that cannot be decoded end as an ``unreadable`` finding
that says why (truncated, not of the identified format, ...) with whatever metadata could still
be read.

About 500 lines: one decode path per format family, kept together so the budget, the scaling
and the hashes are seen applied in one order.
"""

from __future__ import annotations

import io
import logging
import math
import struct
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any, BinaryIO

from verification.core.findings import Finding
from verification.core.formats import MIME
from verification.media import boxes, budget, exif, hashes, ifd, truncation, xmp
from verification.media._model import (
    JPEG_MIME,
    MEDIA_VERSION,
    Derivative,
    MediaAnalysis,
    empty_media,
    empty_metadata,
    empty_perceptual,
    unreadable,
)
from verification.media.c2pa import library_version, read_c2pa
from verification.media.compression import jpeg_history

if TYPE_CHECKING:
    from pathlib import Path

    from PIL import Image

    from verification.core.config import AnalysisOptions as Settings

logger = logging.getLogger(__name__)

THUMBNAIL_PX = 512
DRAFT_MIN_PX = 384
MAX_JPEG_SEGMENTS = 64
JPEG_QUALITY = 85
TRUNCATED = "truncated: the file ends before the image data is complete"

# Our format names (verification.core.formats.identify) -> the only Pillow plugin allowed to open
# the file, so a mislabelled file never reaches a decoder nobody expected.
PILLOW_FORMATS: dict[str, tuple[str, ...]] = {
    "jpeg": ("JPEG",),  # multi-picture files open through the JPEG plugin as "MPO"
    "png": ("PNG",),
    "tiff": ("TIFF",),
    "webp": ("WEBP",),
    "gif": ("GIF",),
    "heif": ("HEIF",),
    "avif": ("AVIF",),  # Pillow's own plugin (libavif); pillow-heif 1.x no longer reads AVIF
}
_NATIVE_XMP = frozenset({"JPEG", "MPO", "PNG", "WEBP", "AVIF"})
_ORIENTATION = 0x0112


@dataclass(slots=True)
class _Decoded:
    """What Pillow learned from one decode."""

    width: int | None = None
    height: int | None = None
    pil_format: str | None = None
    xmp: bytes | None = None
    exif: bytes | None = None
    scaled: Image.Image | None = None
    findings: list[Finding] = field(default_factory=list)


@cache
def register_heif() -> str | None:
    """Register pillow-heif's HEIC/HEIF opener once; its version, or None if unavailable."""
    try:
        import pillow_heif
    except ImportError:  # pragma: no cover - pillow-heif is a pinned dependency
        logger.warning("pillow-heif is not installed; HEIC/HEIF files cannot be decoded")
        return None
    pillow_heif.register_heif_opener()
    return str(pillow_heif.__version__)


@cache
def _init_pillow() -> None:
    """Load every Pillow plugin once so ``formats=`` can name any of them (MPO, HEIF)."""
    from PIL import Image

    register_heif()
    Image.init()


@cache
def avif_version() -> str | None:
    """The libavif version Pillow was built with, or None when Pillow cannot read AVIF."""
    from PIL import features

    return features.version("avif") if features.check("avif") else None


@contextmanager
def bomb_guard(max_pixels: int | None) -> Iterator[None]:
    """Refuse images above ``max_pixels``: Pillow's warning becomes an error here.

    ``None`` switches Pillow's own check off, for opening: :func:`budget.check` then decides
    from the header, and a refused image still gives its size and metadata.
    """
    from PIL import Image

    previous = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    finally:
        Image.MAX_IMAGE_PIXELS = previous


@contextmanager
def _quiet_exif_warnings() -> Iterator[None]:
    """Pillow warns when it parses malformed EXIF; read_exif reports it as metadata-malformed."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        yield


def read_exif(
    fh: BinaryIO, fmt: str, pillow_exif: bytes | None = None
) -> tuple[dict[str, Any], list[Finding]]:
    """exifread's tags for the open file, minus anything read from malformed structure.

    When exifread finds nothing in the file itself, the EXIF block is located another way and
    given to exifread as a TIFF stream: for JPEG by walking the marker segments (exifread only
    looks near the start, and Photoshop may put an XMP APP1 first); for other formats from the
    block Pillow already extracted (exifread misses WebP and HEIF blocks without the
    header prefix, as pillow-heif and Pillow write them). The block's IFD structure is then
    inspected: a loop, an out-of-range offset or a parser failure is a ``metadata-malformed``
    finding, and the values that structure lent are dropped.
    """
    tags, parse_error = _exifread(fh)
    if not tags:
        block = jpeg_exif_block(fh) if fmt == "jpeg" else _tiff_block(pillow_exif)
        if block:
            fallback, fallback_error = _exifread(io.BytesIO(block))
            if fallback:
                tags, parse_error = fallback, fallback_error
    report = exif_structure(fh, fmt, pillow_exif)
    if parse_error:
        report = report.with_problem(f"exifread could not parse it ({parse_error})")
    trusted = report.trusted(tags)
    finding = ifd.malformed_finding(report, dropped=len(tags) - len(trusted))
    return trusted, [finding] if finding else []


def exif_structure(fh: BinaryIO, fmt: str, pillow_exif: bytes | None) -> ifd.Report:
    """The IFD structure report of the file's EXIF (for TIFF, of the file itself)."""
    if fmt == "tiff":
        return ifd.inspect(fh)
    block = jpeg_exif_block(fh) if fmt == "jpeg" else _tiff_block(pillow_exif)
    return ifd.inspect_block(block) if block else ifd.Report()


def _tiff_block(data: bytes | None) -> bytes | None:
    if not data:
        return None
    block = data[6:] if data.startswith(b"Exif\x00\x00") else data
    return block if block[:4] in {b"II*\x00", b"MM\x00*"} else None


def jpeg_exif_block(fh: BinaryIO) -> bytes | None:
    """The TIFF block of the first ``Exif`` APP1 segment before the scan data, if any."""
    fh.seek(0)
    if fh.read(2) != b"\xff\xd8":
        return None
    for _ in range(MAX_JPEG_SEGMENTS):
        header = fh.read(4)
        if len(header) < 4 or header[0] != 0xFF or header[1] in {0xDA, 0xD9}:
            return None
        length = struct.unpack(">H", header[2:4])[0]
        if length < 2:
            return None
        if header[1] == 0xE1:
            payload = fh.read(length - 2)
            if payload.startswith(b"Exif\x00\x00"):
                return payload[6:]
        else:
            fh.seek(length - 2, io.SEEK_CUR)
    return None


def _exifread(fh: BinaryIO) -> tuple[dict[str, Any], str | None]:
    """exifread's tags, or no tags and the name of the error it raised."""
    import exifread

    try:
        # details=False skips MakerNote decoding: a crafted MakerNote makes details=True
        # allocate without bound (exif-py issue #182), and we do not use maker notes.
        tags = exifread.process_file(fh, details=False, extract_thumbnail=True)
    except MemoryError:
        raise
    except Exception as error:  # any parser failure on hostile input is a finding
        logger.info("exifread failed: %s", type(error).__name__)
        return {}, type(error).__name__
    return dict(tags), None


def decode(
    fh: BinaryIO, fmt: str, max_pixels: int, budget_bytes: int = budget.DECODE_BUDGET_BYTES
) -> _Decoded:
    """Open, judge the memory cost from the header, then decode once and scale for hashing.

    ``budget_bytes`` is the decode budget (``AnalysisOptions.decode_budget_bytes``).
    """
    result = _Decoded()
    stage = "open"
    try:
        early = _webp_refusal(fh, max_pixels, budget_bytes) if fmt == "webp" else None
        if early is not None:
            result.findings.append(early)
            return result
        image = _open(fh, fmt, result)
        buffers = _decoder_buffers(fh, fmt, image)
        stored = (image.width, image.height)
        decoded = _request_reduced_decode(image)
        refusal = budget.check(
            fmt, image.mode, stored, decoded, max_pixels, buffers, budget=budget_bytes
        )
        if refusal is not None:
            result.findings.append(refusal)
            return result
        stage = "decode"
        with bomb_guard(max_pixels):
            image.load()
            result.scaled = scale_for_hashing(image)
    except MemoryError:
        raise  # says nothing about the file: the worker reports it (verification.analysis)
    except Exception as error:  # hostile input of any shape ends as a finding
        logger.info("image %s failed: %s", stage, type(error).__name__)
        result.findings.append(_unreadable(fh, fmt, stage, error))
    return result


def _open(fh: BinaryIO, fmt: str, result: _Decoded) -> Image.Image:
    """Open lazily (header and metadata only) with the identified format's plugin."""
    from PIL import Image

    fh.seek(0)
    with bomb_guard(None), _quiet_exif_warnings():
        image = Image.open(fh, formats=PILLOW_FORMATS.get(fmt))
    result.width, result.height = image.size
    result.pil_format = image.format
    result.xmp = _info_xmp(image.info)
    exif_block = image.info.get("exif")
    result.exif = exif_block if isinstance(exif_block, bytes) else None
    return image


def _decoder_buffers(fh: BinaryIO, fmt: str, image: Image.Image) -> int:
    """Bytes the decoder will hold besides pixels (judged at the stored size, before draft)."""
    if image.format in {"JPEG", "MPO"}:
        progressive = bool(image.info.get("progressive") or image.info.get("progression"))
        return budget.jpeg_coefficients(image.size, getattr(image, "layer", []), progressive)
    return _file_size(fh) if fmt in budget.FILE_READ_WHOLE else 0


def _file_size(fh: BinaryIO) -> int:
    position = fh.tell()
    size = fh.seek(0, io.SEEK_END)
    fh.seek(position)
    return size


def _request_reduced_decode(image: Image.Image) -> tuple[int, int]:
    """Ask for the smallest decode the format allows (JPEG DCT scaling); the size it will give."""
    if image.format in {"JPEG", "MPO"}:
        image.draft("RGB", draft_request(image.size))
    return image.size


def _webp_refusal(fh: BinaryIO, max_pixels: int, budget_bytes: int) -> Finding | None:
    """The budget judged from a WebP's header, before Pillow opens it and allocates canvases."""
    fh.seek(0)
    canvas = budget.webp_canvas(fh.read(30))
    if canvas is None:
        return None
    size = _file_size(fh)
    return budget.check("webp", "RGB", canvas, canvas, max_pixels, size, budget=budget_bytes)


def scale_for_hashing(image: Image.Image) -> Image.Image:
    """A thumbnail-sized RGB copy with the EXIF orientation applied.

    The image is shrunk in its own mode first, so no second full-size copy is made, except
    for the modes Pillow cannot resample well (``budget.CONVERTED_BEFORE_SCALING``, counted in
    the budget). The orientation is read before any conversion, which would drop TIFF tags.
    """
    with _quiet_exif_warnings():
        transpose = transpose_method(image.getexif().get(_ORIENTATION))
    converted = budget.CONVERTED_BEFORE_SCALING.get(image.mode)
    small = image.convert(converted) if converted else image
    small.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
    if transpose is not None:
        small = small.transpose(transpose)
    return small if small.mode == "RGB" else small.convert("RGB")


def transpose_method(orientation: object) -> Image.Transpose | None:
    """Pillow's transpose that shows a picture with this EXIF orientation upright (None: as is)."""
    from PIL import Image

    methods = {
        2: Image.Transpose.FLIP_LEFT_RIGHT,
        3: Image.Transpose.ROTATE_180,
        4: Image.Transpose.FLIP_TOP_BOTTOM,
        5: Image.Transpose.TRANSPOSE,
        6: Image.Transpose.ROTATE_270,
        7: Image.Transpose.TRANSVERSE,
        8: Image.Transpose.ROTATE_90,
    }
    return methods.get(orientation) if isinstance(orientation, int) else None


def draft_request(size: tuple[int, int]) -> tuple[int, int]:
    """The size to ask libjpeg's DCT scaling for: long side at least DRAFT_MIN_PX.

    libjpeg picks the largest 1/2, 1/4 or 1/8 reduction that stays at or above the request,
    so a 12 MP photo decodes at 1/8 (500x375), the cheapest decode there is, and the result
    is already thumbnail-sized; PDQ and pHash work on about 512 px anyway.
    """
    width, height = size
    long_side = max(width, height, 1)
    scale = min(1.0, DRAFT_MIN_PX / long_side)
    return max(1, math.ceil(width * scale)), max(1, math.ceil(height * scale))


def _unreadable(fh: BinaryIO, fmt: str, stage: str, error: BaseException) -> Finding:
    """The ``unreadable`` finding for a failed open or decode, saying why in plain words."""
    if truncation.is_truncated(fh, fmt, error):
        return unreadable(stage, "TruncatedFile", TRUNCATED)
    return unreadable(stage, error, _reason(stage, error))


def _reason(stage: str, error: BaseException) -> str:
    from PIL import Image, UnidentifiedImageError

    if isinstance(error, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return "image exceeds the pixel limit (possible decompression bomb)"
    if isinstance(error, UnidentifiedImageError):
        return "not a decodable image of the identified format"
    return f"image could not be read at stage {stage!r} ({type(error).__name__})"


def _info_xmp(info: Mapping[Any, Any]) -> bytes | None:
    value = info.get("xmp") or info.get("XML:com.adobe.xmp")
    if isinstance(value, str):
        return value.encode("utf-8", errors="replace")
    return value if isinstance(value, bytes) else None


def encode_jpeg(image: Image.Image, max_px: int, quality: int = JPEG_QUALITY) -> bytes:
    """JPEG bytes of ``image`` shrunk to at most ``max_px`` on the long side."""
    if max(image.size) > max_px:
        image = image.copy()
        image.thumbnail((max_px, max_px))
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def perceptual_hashes(image: Image.Image) -> dict[str, Any]:
    """PDQ (with quality and the eight dihedral hashes) and pHash of a scaled image."""
    dihedral, quality = hashes.pdq_dihedral(image)
    return {
        "pdq": dihedral[0],
        "pdq_quality": quality,
        "phash": hashes.phash(image),
        "pdq_dihedral": dihedral,
        "keyframes": [],
    }


def embedded_thumbnail_pdq(data: bytes | None) -> tuple[str | None, list[Finding]]:
    """PDQ of the EXIF thumbnail, so a later check can compare it with the main image."""
    from PIL import Image

    if not data:
        return None, []
    try:
        with Image.open(io.BytesIO(data), formats=("JPEG",)) as thumb:
            thumb.load()
            pdq, _quality = hashes.pdq(thumb.convert("RGB"))
    except MemoryError:
        raise
    except Exception as error:  # a broken thumbnail is a signal, not a crash
        evidence = {"stage": "embedded_thumbnail", "error": type(error).__name__}
        return None, [
            Finding("embedded_thumbnail_unreadable", "info", "EXIF thumbnail unreadable", evidence)
        ]
    return pdq, []


def extractor_versions() -> dict[str, str]:
    """Versions of every library that shaped an image record."""
    import exifread
    import imagehash
    import pdqhash
    import PIL

    versions = {
        "exifread": str(exifread.__version__),
        "Pillow": PIL.__version__,
        "pdqhash": str(pdqhash.__version__),
        "imagehash": str(imagehash.__version__),
        "media": MEDIA_VERSION,
    }
    heif = register_heif()
    if heif:
        versions["pillow-heif"] = heif
    avif = avif_version()
    if avif:
        versions["libavif"] = avif
    c2pa = library_version()
    if c2pa:
        versions["c2pa-python"] = c2pa
    return versions


def build_metadata(tags: dict[str, Any], xmp_summary: dict[str, Any]) -> dict[str, Any]:
    """The normalised metadata schema from exifread tags and the XMP summary."""
    metadata = empty_metadata()
    metadata.update(exif.normalise_text(tags))
    metadata.update(exif.normalise_dates(tags))
    metadata["gps"] = exif.normalise_gps(tags)
    metadata["has_thumbnail"] = bool(tags.get("JPEGThumbnail"))
    metadata["xmp"] = xmp_summary
    has_exif = any(not key.endswith("Thumbnail") for key in tags)
    metadata["metadata_stripped"] = not has_exif and not xmp_summary["present"]
    return metadata


def heif_stored_size(fh: BinaryIO) -> tuple[int, int] | None:
    """The HEIF primary item's stored size; libheif reports it after ``irot`` is applied."""
    try:
        return boxes.heif_primary_size(fh)
    except (boxes.BoxError, OSError, struct.error, ValueError):
        logger.debug("HEIF item properties unreadable; keeping the decoded size")
        return None


def _xmp_packet(fh: BinaryIO, decoded: _Decoded) -> bytes | None:
    if decoded.xmp or decoded.pil_format in _NATIVE_XMP:
        return decoded.xmp
    return xmp.find_packet(fh)


def analyse_image(path: Path, fmt: str, settings: Settings) -> MediaAnalysis:
    """Analyse one photo; hostile or unreadable input becomes findings, never an exception."""
    from PIL import __version__ as pil_version

    _init_pillow()
    findings: list[Finding] = []
    with path.open("rb") as fh:
        decoded = decode(fh, fmt, settings.max_image_pixels, settings.decode_budget_bytes)
        tags, exif_findings = read_exif(fh, fmt, decoded.exif)
        packet = _xmp_packet(fh, decoded)
        stored_size = heif_stored_size(fh) if fmt in {"heif", "avif"} else None
        compression, compression_findings = jpeg_history(fh, fmt, tags)
    if any(f.code == "unreadable" for f in decoded.findings):
        # The tables are still recorded (media.compression), but a finding about how a file
        # that does not decode was encoded tells the analyst nothing.
        compression_findings = []
    findings += exif_findings + decoded.findings + compression_findings
    metadata = build_metadata(tags, xmp.summarise(packet))
    if exif_findings:  # malformed metadata was there: the file was not stripped of it
        metadata["metadata_stripped"] = False
    metadata["thumbnail_pdq"], thumb_findings = embedded_thumbnail_pdq(tags.get("JPEGThumbnail"))
    findings += thumb_findings
    metadata["c2pa"] = read_c2pa(path, MIME.get(fmt, ""))
    media = empty_media("image", fmt)
    width, height = stored_size or (decoded.width, decoded.height)
    media.update(
        width=width, height=height, orientation=exif.orientation(tags), compression=compression
    )
    perceptual = empty_perceptual()
    derivatives: tuple[Derivative, ...] = ()
    if decoded.scaled is not None:
        perceptual = perceptual_hashes(decoded.scaled)
        thumb = encode_jpeg(decoded.scaled, THUMBNAIL_PX)
        derivatives = (Derivative("thumbnail.jpg", thumb, JPEG_MIME, f"Pillow {pil_version}"),)
    return MediaAnalysis(
        media=media,
        metadata=metadata,
        raw=exif.raw_strings(tags),
        perceptual=perceptual,
        findings=tuple(findings),
        derivatives=derivatives,
        extractors=extractor_versions(),
    )
