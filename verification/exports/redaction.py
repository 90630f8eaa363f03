"""Redacted working copies: the same pixels without GPS, serial numbers or owner names.

Each copy is checked clean after writing and linked to its original by a ``redaction`` custody
event; the original is never touched."""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from verification.core.text import printable
from verification.exports.content import ItemContent, export_agent
from verification.exports.layout import (
    REDACTED,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Redacted:
    """A redacted working copy: its bytes, how it was made and what was removed."""

    data: bytes
    method: str
    removed: tuple[str, ...] = field(default_factory=tuple)


class RedactionUnsupported(Exception):
    """No redaction is implemented for this format (the item is exported unredacted only)."""


class RedactionError(Exception):
    """The file could not be redacted safely (structure unreadable, metadata left behind)."""


# ---------------------------------------------------------------------------------------------
# Redacted working copies

REDACTION_VERSION = "1"
# JPEG segments kept in a redacted copy (everything else that is not image data is dropped):
# APP0 JFIF/JFXX, APP2 ICC profile and APP14 Adobe change how pixels are shown, not who took them.
_JPEG_KEEP_APP = {0xE0: (b"JFIF\x00", b"JFXX\x00"), 0xE2: (b"ICC_PROFILE\x00",), 0xEE: (b"Adobe",)}
_PNG_DROP = {b"eXIf", b"tEXt", b"zTXt", b"iTXt", b"tIME"}
_WEBP_DROP = {b"EXIF", b"XMP "}
# EXIF tags that name a person or identify a device: Artist, Copyright, CameraOwnerName,
# BodySerialNumber, LensSerialNumber, CameraSerialNumber (DNG), ImageUniqueID.
_IDENTIFYING_TAGS = {0x013B, 0x8298, 0xA430, 0xA431, 0xA435, 0xC62F, 0xA420}
_GPS_IFD, _EXIF_IFD = 0x8825, 0x8769


def redact_item(
    ctx: Any, content: ItemContent, original: Path, out_dir: Path, analyst: str
) -> str | None:
    """Write a metadata-free working copy of ``original`` and record a ``redaction`` event.

    Returns the copy's file name, or None when the format has no redaction (a ``not-run`` event)
    or the file could not be redacted safely (a ``failure`` event); the original is never touched.
    """
    sha, fmt = content.sha256, str(content.report["item"]["format"])
    try:
        if fmt not in _REDACTORS:
            msg = f"no redaction for {fmt} files"
            raise RedactionUnsupported(msg)
        result = redact_bytes(original.read_bytes(), fmt)
    except RedactionUnsupported as exc:
        _record_redaction(ctx, sha, "not-run", {"reason": str(exc)}, "not-run", analyst)
        return None
    except RedactionError as exc:
        _record_redaction(ctx, sha, "failure", {"reason": str(exc)}, "failure", analyst)
        log.warning("item %s: redaction failed: %s", sha[:12], printable(str(exc)))
        return None
    out_dir.mkdir(exist_ok=True)
    name = f"{sha}-redacted{content.extension}"
    (out_dir / name).write_bytes(result.data)
    digest = hashlib.sha256(result.data).hexdigest()
    detail = {
        "original_sha256": sha,
        "derivative_sha256": digest,
        "derivative": f"{REDACTED}/{name}",
        "store_key": _store_redacted(ctx.store, sha, digest, content.extension, result.data),
        "size": len(result.data),
        "method": result.method,
        "removed": list(result.removed),
        "version": REDACTION_VERSION,
    }
    ctx.ledger.append(
        sha,
        "redaction",
        "success",
        detail,
        step_key=f"redaction:{digest}",
        agents=[export_agent(analyst)],
    )
    return name


def _record_redaction(
    ctx: Any, sha: str, outcome: Any, detail: Mapping[str, Any], kind: str, analyst: str
) -> None:
    ctx.ledger.append(
        sha,
        "redaction",
        outcome,
        {"original_sha256": sha, "version": REDACTION_VERSION, **detail},
        step_key=f"redaction:{sha}:{REDACTION_VERSION}:{kind}",
        agents=[export_agent(analyst)],
    )


def _store_redacted(store: Any, sha: str, digest: str, extension: str, data: bytes) -> str | None:
    """Keep the working copy as a derivative (never next to the vault copy); None if not stored."""
    from verification.pipeline import derivative_key
    from verification.storage import ObjectExists, StoreError

    key = derivative_key(sha, f"redacted{extension}")
    try:
        store.put(key, io.BytesIO(data), sha256=digest, if_absent=True)
    except ObjectExists:
        if store.head(key).size != len(data):
            log.warning("item %s: a different redacted derivative is already stored", sha[:12])
            return None
    except StoreError as exc:
        log.warning("item %s: redacted copy not stored: %s", sha[:12], type(exc).__name__)
        return None
    return key


def redact_bytes(data: bytes, fmt: str) -> Redacted:
    """A copy of an image without location, serial numbers, owner names or other metadata.

    JPEG, PNG and WebP are redacted byte-wise (metadata segments or chunks dropped, image data
    untouched, never re-encoded); TIFF, where the metadata is the container, is re-saved
    losslessly by Pillow. The result is checked before it is returned.
    """
    redactor = _REDACTORS.get(fmt)
    if redactor is None:
        msg = f"no redaction for {fmt} files"
        raise RedactionUnsupported(msg)
    result = redactor(data)
    _assert_clean(result.data)
    return result


def _redact_jpeg(data: bytes) -> Redacted:
    if not data.startswith(b"\xff\xd8"):
        raise RedactionError("not a JPEG (no SOI marker)")
    out, removed, pos = bytearray(b"\xff\xd8"), [], 2
    while pos < len(data):
        if data[pos] != 0xFF or pos + 1 >= len(data):
            raise RedactionError(f"JPEG structure unreadable at offset {pos}")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xD9:
            out += b"\xff\xd9"
            if pos + 2 < len(data):
                removed.append(f"{len(data) - pos - 2} bytes after the image (trailer)")
            break
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            out += data[pos : pos + 2]
            pos += 2
            continue
        end = pos + 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
        if end > len(data):
            raise RedactionError(f"JPEG segment at offset {pos} runs past the end of the file")
        segment = data[pos:end]
        if _jpeg_keeps(marker, segment[4:]):
            out += segment
        else:
            removed.append(_jpeg_segment_name(marker, segment[4:]))
        pos = end
        if marker == 0xDA:  # entropy-coded scan data follows the SOS header
            scan_end = _scan_end(data, pos)
            out += data[pos:scan_end]
            pos = scan_end
    orientation = _orientation(data)
    if orientation not in (None, 1):
        out[2:2] = _orientation_segment(orientation)
        removed.append("EXIF (except Orientation, kept so the picture displays upright)")
    return Redacted(bytes(out), "jpeg-segments-dropped", tuple(dict.fromkeys(removed)))


def _jpeg_keeps(marker: int, payload: bytes) -> bool:
    if marker == 0xFE or 0xE0 <= marker <= 0xEF:
        return any(payload.startswith(p) for p in _JPEG_KEEP_APP.get(marker, ()))
    return True


def _jpeg_segment_name(marker: int, payload: bytes) -> str:
    if marker == 0xFE:
        return "COM (comment)"
    ident = payload[:32].split(b"\x00", 1)[0].decode("ascii", "replace")
    ident = "".join(c for c in ident if c.isprintable())[:40]
    return f"APP{marker - 0xE0} ({ident or 'unnamed'})"


def _scan_end(data: bytes, pos: int) -> int:
    """Offset of the first marker after entropy-coded data (stuffed 0xFF00 and RSTn skipped)."""
    while True:
        i = data.find(b"\xff", pos)
        if i < 0 or i + 1 >= len(data):
            return len(data)  # truncated file: keep what there is
        nxt = data[i + 1]
        if nxt == 0x00 or 0xD0 <= nxt <= 0xD7:
            pos = i + 2
        elif nxt == 0xFF:
            pos = i + 1
        else:
            return i


def _orientation(data: bytes) -> int | None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            value = image.getexif().get(0x0112)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return None
    return value if isinstance(value, int) and 1 <= value <= 8 else None


def _orientation_segment(orientation: int) -> bytes:
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = orientation
    payload = exif.tobytes()
    return b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload


def _redact_png(data: bytes) -> Redacted:
    signature = b"\x89PNG\r\n\x1a\n"
    if not data.startswith(signature):
        raise RedactionError("not a PNG (bad signature)")
    out, removed, pos = bytearray(signature), [], len(signature)
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if end > len(data):
            raise RedactionError(f"PNG chunk at offset {pos} runs past the end of the file")
        if kind in _PNG_DROP:
            removed.append(kind.decode("ascii"))
        else:
            out += data[pos:end]
        pos = end
        if kind == b"IEND":
            break
    if pos < len(data):
        removed.append(f"{len(data) - pos} bytes after IEND (trailer)")
    return Redacted(bytes(out), "png-chunks-dropped", tuple(dict.fromkeys(removed)))


def _redact_webp(data: bytes) -> Redacted:
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise RedactionError("not a WebP (bad RIFF header)")
    body, removed, pos = bytearray(b"WEBP"), [], 12
    end_of_riff = min(len(data), 8 + int.from_bytes(data[4:8], "little"))
    while pos + 8 <= end_of_riff:
        kind = data[pos : pos + 4]
        size = int.from_bytes(data[pos + 4 : pos + 8], "little")
        end = pos + 8 + size + (size & 1)
        if pos + 8 + size > len(data):
            raise RedactionError(f"WebP chunk at offset {pos} runs past the end of the file")
        chunk = bytearray(data[pos:end])
        if kind in _WEBP_DROP:
            removed.append(kind.decode("ascii").strip())
        else:
            if kind == b"VP8X":
                chunk[8] &= ~0x0C & 0xFF  # clear the EXIF (0x08) and XMP (0x04) flags
            body += chunk
        pos = end
    riff = b"RIFF" + len(body).to_bytes(4, "little") + bytes(body)
    return Redacted(riff, "webp-chunks-dropped", tuple(dict.fromkeys(removed)))


def _redact_tiff(data: bytes) -> Redacted:
    from PIL import Image, ImageSequence, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            icc = image.info.get("icc_profile")
            frames = [_bare_copy(frame) for frame in ImageSequence.Iterator(image)]
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise RedactionError(f"TIFF not decodable ({type(exc).__name__})") from exc
    out = io.BytesIO()
    options: dict[str, Any] = {"compression": "tiff_adobe_deflate"}
    if icc:
        options["icc_profile"] = icc
    frames[0].save(
        out, format="TIFF", save_all=len(frames) > 1, append_images=frames[1:], **options
    )
    return Redacted(
        out.getvalue(), "tiff-resaved-lossless", ("all TIFF/EXIF tags but image structure",)
    )


def _bare_copy(frame: Any) -> Any:
    """The pixels alone: a new image without the source's tags or info."""
    from PIL import Image

    frame.load()
    bare = Image.new(frame.mode, frame.size)
    bare.frombytes(frame.tobytes())
    if frame.mode == "P" and frame.getpalette():
        bare.putpalette(frame.getpalette())
    return bare


_REDACTORS = {"jpeg": _redact_jpeg, "png": _redact_png, "webp": _redact_webp, "tiff": _redact_tiff}


def _assert_clean(data: bytes) -> None:
    """Refuse a copy that still carries GPS, identifying tags or XMP (defence in depth)."""
    from PIL import Image, UnidentifiedImageError

    if b"ns.adobe.com/xap/1.0/" in data or b"<x:xmpmeta" in data:
        raise RedactionError("XMP metadata left in the redacted copy")
    try:
        with Image.open(io.BytesIO(data)) as image:
            exif = image.getexif()
            text = {
                k
                for k in image.info
                if k
                not in {
                    "dpi",
                    "jfif",
                    "jfif_version",
                    "jfif_unit",
                    "jfif_density",
                    "icc_profile",
                    "adobe",
                    "adobe_transform",
                    "progressive",
                    "progression",
                    "compression",
                    "gamma",
                    "transparency",
                    "loop",
                    "duration",
                    "background",
                    "exif",
                    "resolution",
                    "aspect",
                }
            }
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return  # a truncated image: the byte-wise pass above already removed every segment
    if exif.get_ifd(_GPS_IFD) or _GPS_IFD in exif:
        raise RedactionError("GPS metadata left in the redacted copy")
    tags = set(exif) | set(exif.get_ifd(_EXIF_IFD))
    if tags & _IDENTIFYING_TAGS:
        raise RedactionError("identifying EXIF tags left in the redacted copy")
    if text:
        raise RedactionError("text metadata left in the redacted copy")


# ---------------------------------------------------------------------------------------------
