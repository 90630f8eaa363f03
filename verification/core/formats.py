"""Format identification from magic bytes, never from the file name."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

HEAD_SIZE = 64  # bytes needed to identify every supported format

MIME = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "tiff": "image/tiff",
    "heif": "image/heif",
    "avif": "image/avif",
    "webp": "image/webp",
    "gif": "image/gif",
    "mp4": "video/mp4",
    "mov": "video/quicktime",
    "avi": "video/x-msvideo",
    "mkv": "video/x-matroska",
    "webm": "video/webm",
    "empty": "application/x-empty",
    "unknown": "application/octet-stream",
}

KIND = {
    "jpeg": "image",
    "png": "image",
    "tiff": "image",
    "heif": "image",
    "avif": "image",
    "webp": "image",
    "gif": "image",
    "mp4": "video",
    "mov": "video",
    "avi": "video",
    "mkv": "video",
    "webm": "video",
    "empty": "unknown",
    "unknown": "unknown",
}

EXTENSIONS = {
    "jpeg": {".jpg", ".jpeg", ".jpe", ".jfif"},
    "png": {".png"},
    "tiff": {".tif", ".tiff", ".dng"},
    "heif": {".heic", ".heif", ".hif"},
    "avif": {".avif"},
    "webp": {".webp"},
    "gif": {".gif"},
    "mp4": {".mp4", ".m4v", ".3gp"},
    "mov": {".mov", ".qt"},
    "avi": {".avi"},
    "mkv": {".mkv"},
    "webm": {".webm"},
}

_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"}
_HEVC_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis"}
_AVIF_BRANDS = {b"avif", b"avis"}
_MOV_BRANDS = {b"qt  "}


@dataclass(frozen=True, slots=True)
class FormatInfo:
    """What the bytes are, and whether the name agrees."""

    format: str
    mime: str
    kind: str
    extension: str
    extension_mismatch: bool

    def to_dict(self) -> dict[str, str | bool]:
        """JSON-ready form."""
        return {
            "format": self.format,
            "mime": self.mime,
            "kind": self.kind,
            "extension": self.extension,
            "extension_mismatch": self.extension_mismatch,
        }


def identify(head: bytes) -> str:
    """Return the format name for the first bytes of a file (``unknown`` when unrecognised).

    No bytes at all is ``empty``: a zero-byte file has no format, and saying so is more precise
    than ``unknown`` (which means bytes we do not recognise).
    """
    if not head:
        return "empty"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "avi"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "webm" if b"webm" in head[:64] else "mkv"
    return _identify_isobmff(head)


def _identify_isobmff(head: bytes) -> str:
    """ISO base media files (MP4, MOV, HEIF, AVIF) by their ``ftyp`` brands.

    AVIF shares HEIF's container (major brand often ``mif1``) but not its codec, so it is told
    apart by its ``avif``/``avis`` brand unless an HEVC brand is present too.
    """
    if head[4:8] == b"ftyp":
        major = head[8:12]
        size = int.from_bytes(head[0:4], "big")
        brands = {major} | {head[i : i + 4] for i in range(16, min(size, len(head)) - 3, 4)}
        if major in _MOV_BRANDS:
            return "mov"
        if major in _AVIF_BRANDS or (brands & _AVIF_BRANDS and not brands & _HEVC_BRANDS):
            return "avif"
        return "heif" if brands & _HEIF_BRANDS else "mp4"
    if head[4:8] in (b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"):
        return "mov"  # old QuickTime files have no ftyp box
    return "unknown"


def describe(head: bytes, name: str) -> FormatInfo:
    """Identify ``head`` and compare it with the extension of ``name``."""
    fmt = identify(head)
    extension = PurePosixPath(name).suffix.lower()
    expected = EXTENSIONS.get(fmt, set())
    # An empty file has no bytes to contradict its name.
    mismatch = bool(extension) and fmt not in {"unknown", "empty"} and extension not in expected
    if fmt == "unknown" and extension in set().union(*EXTENSIONS.values()):
        mismatch = True
    return FormatInfo(fmt, MIME[fmt], KIND[fmt], extension, mismatch)
