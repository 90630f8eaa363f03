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
    "webp": "image/webp",
    "gif": "image/gif",
    "mp4": "video/mp4",
    "mov": "video/quicktime",
    "avi": "video/x-msvideo",
    "mkv": "video/x-matroska",
    "webm": "video/webm",
    "unknown": "application/octet-stream",
}

KIND = {
    "jpeg": "image",
    "png": "image",
    "tiff": "image",
    "heif": "image",
    "webp": "image",
    "gif": "image",
    "mp4": "video",
    "mov": "video",
    "avi": "video",
    "mkv": "video",
    "webm": "video",
    "unknown": "unknown",
}

EXTENSIONS = {
    "jpeg": {".jpg", ".jpeg", ".jpe", ".jfif"},
    "png": {".png"},
    "tiff": {".tif", ".tiff", ".dng"},
    "heif": {".heic", ".heif", ".hif", ".avif"},
    "webp": {".webp"},
    "gif": {".gif"},
    "mp4": {".mp4", ".m4v", ".3gp"},
    "mov": {".mov", ".qt"},
    "avi": {".avi"},
    "mkv": {".mkv"},
    "webm": {".webm"},
}

_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1", b"avif"}
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
    """Return the format name for the first bytes of a file (``unknown`` when unrecognised)."""
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
    """ISO base media files (MP4, MOV, HEIF) by their ``ftyp`` brands."""
    if head[4:8] == b"ftyp":
        major = head[8:12]
        size = int.from_bytes(head[0:4], "big")
        brands = {major} | {head[i : i + 4] for i in range(16, min(size, len(head)) - 3, 4)}
        if major in _HEIF_BRANDS or (brands & _HEIF_BRANDS and major not in _MOV_BRANDS):
            return "heif"
        return "mov" if major in _MOV_BRANDS else "mp4"
    if head[4:8] in (b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"):
        return "mov"  # old QuickTime files have no ftyp box
    return "unknown"


def describe(head: bytes, name: str) -> FormatInfo:
    """Identify ``head`` and compare it with the extension of ``name``."""
    fmt = identify(head)
    extension = PurePosixPath(name).suffix.lower()
    expected = EXTENSIONS.get(fmt, set())
    mismatch = bool(extension) and fmt != "unknown" and extension not in expected
    if fmt == "unknown" and extension in set().union(*EXTENSIONS.values()):
        mismatch = True
    return FormatInfo(fmt, MIME[fmt], KIND[fmt], extension, mismatch)
