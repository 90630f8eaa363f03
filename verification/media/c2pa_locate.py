"""Where a file carries C2PA data, found from its container alone, without the C2PA SDK.

The C2PA specification ("Embedding manifests into assets") puts the manifest store in one
known place per format: APP11 segments holding a JUMBF box described as ``c2pa`` (JPEG XT,
ISO/IEC 19566-5), a ``caBX`` chunk (PNG), a top-level ``uuid`` box with the C2PA UUID (ISO
BMFF: MP4, MOV, HEIF, AVIF), a ``C2PA`` chunk (RIFF: WebP, AVI), tag 0xCD41 in the first IFD
(TIFF) and an application extension ``C2PA_GIF`` (GIF). A manifest kept online is pointed to
from the file's XMP (``dcterms:provenance``).

The SDK raises the same error kinds for "a manifest it cannot read" and "a file it cannot
parse"; the container tells them apart. Only headers are walked (media data is skipped by
seeking, never read) and every count and read is capped, so a crafted file costs little.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO, Literal
from xml.sax.saxutils import unescape

from verification.core.formats import identify
from verification.media import boxes

C2PA_UUID = bytes.fromhex("d8fec3d61b0e483c92975828877ec481")
"""The ``uuid`` box extended type of a C2PA manifest store in ISO BMFF files."""

XMP_UUID = bytes.fromhex("be7acfcb97a942e89c71999491e3afac")
"""The ``uuid`` box extended type of an XMP packet in ISO BMFF files."""

MAX_SEGMENTS = 1024  # JPEG header segments (a manifest store of 60 MB spans ~940 APP11 segments)
MAX_CHUNKS = 1 << 17  # PNG / RIFF chunks (PNG image data may come in many small IDAT chunks)
MAX_GIF_BLOCKS = 1 << 20  # GIF data sub-blocks (255 bytes each: a 256 MiB GIF)
MAX_XMP = 1 << 20  # bytes of an XMP packet searched for the provenance reference
MAX_REFERENCE = 2048  # characters of a provenance reference kept

_PROVENANCE = re.compile(
    rb"""dcterms:provenance\s*(?:=\s*(?:"([^"]*)"|'([^']*)')|>\s*([^<]*?)\s*<)"""
)


@dataclass(frozen=True, slots=True)
class Embedding:
    """What a file's container says about C2PA data in it."""

    container: str | None = None
    """``jpeg``, ``png``, ``bmff``, ``riff``, ``tiff`` or ``gif``; None for other files."""
    store: str | None = None
    """Where an embedded manifest store sits (e.g. ``JPEG APP11 JUMBF``); None if none."""
    reference: str | None = None
    """The XMP ``dcterms:provenance`` value, when the file has one."""
    complete: bool = False
    """The walk reached the end of the container (for JPEG: the start of the image data)."""

    @property
    def remote_url(self) -> str | None:
        """The reference when it points outside the file (``self#jumbf=...`` points inside)."""
        ref = self.reference
        return ref if ref and not ref.lower().startswith("self#") else None

    @property
    def found(self) -> bool:
        """The file carries a manifest store or points to one online."""
        return self.store is not None or self.remote_url is not None


def locate(fh: BinaryIO) -> Embedding:
    """Where the open file carries C2PA data; never raises for what the file contains."""
    size = fh.seek(0, 2)
    fh.seek(0)
    entry = _WALKERS.get(identify(fh.read(64)))
    if entry is None:
        return Embedding()
    container, walker = entry
    scan = _Scan()
    try:
        walker(fh, size, scan)
    except (ValueError, IndexError):  # a header the walk did not expect: keep what was seen
        scan.complete = False
    return Embedding(container, scan.store, scan.reference, scan.complete)


@dataclass(slots=True)
class _Scan:
    """What one walk has seen so far (kept when a later header turns out malformed)."""

    store: str | None = None
    reference: str | None = None
    complete: bool = False
    budget: int = MAX_GIF_BLOCKS  # GIF data sub-blocks still allowed

    def xmp(self, packet: bytes) -> None:
        """Keep the first provenance reference met."""
        self.reference = self.reference or provenance(packet)


def provenance(xmp: bytes) -> str | None:
    """The ``dcterms:provenance`` value of an XMP packet (entities decoded, bounded), or None."""
    match = _PROVENANCE.search(xmp[:MAX_XMP])
    if match is None:
        return None
    raw = next(group for group in match.groups() if group is not None)
    text = unescape(raw.decode("utf-8", "replace"), {"&quot;": '"', "&apos;": "'"}).strip()
    text = "".join(ch for ch in text if ch.isprintable())[:MAX_REFERENCE]
    return text or None


def is_c2pa_jumbf(box: bytes) -> bool:
    """A JUMBF superbox (``jumb``) whose description box (``jumd``) names the C2PA store.

    The description holds a content-type UUID (the store's begins with ``c2pa``), a toggles
    byte and, when its bit 1 is set, a NUL-terminated label (``c2pa`` for the store). Either
    naming C2PA counts: the SDK itself looks only at the UUID.
    """
    if box[4:8] != b"jumb" or box[12:16] != b"jumd" or len(box) < 33:
        return False
    content_type, toggles = box[16:32], box[32]
    label = box[33:].split(b"\x00", 1)[0] if toggles & 0x02 else b""
    return content_type[:4] == b"c2pa" or label == b"c2pa"


# --- JPEG ------------------------------------------------------------------------------------


def _jpeg(fh: BinaryIO, size: int, scan: _Scan) -> None:
    """APP11 segments (JPEG XT boxes) and APP1 XMP, up to the start of the image data."""
    fh.seek(2)
    for _ in range(MAX_SEGMENTS):
        head = fh.read(4)
        if len(head) < 4 or head[0] != 0xFF:
            return
        marker, length = head[1], int.from_bytes(head[2:4], "big")
        if marker == 0xDA:  # start of scan: the header segments are all read
            scan.complete = True
            return
        if length < 2:
            return
        if marker not in (0xE1, 0xEB):
            fh.seek(length - 2, 1)
            continue
        body = fh.read(length - 2)
        if marker == 0xEB and _is_c2pa_app11(body):
            scan.store = "JPEG APP11 JUMBF"
        elif marker == 0xE1 and b"provenance" in body:
            scan.xmp(body)
            if scan.reference is None:  # names a provenance we cannot read: the SDK decides
                return


def _is_c2pa_app11(body: bytes) -> bool:
    # JPEG XT marker segment: common identifier "JP", box instance (2), sequence number (4),
    # then the box itself (continuation segments repeat LBox/TBox, then carry on the payload).
    return body[:2] == b"JP" and is_c2pa_jumbf(body[8:])


# --- PNG -------------------------------------------------------------------------------------


def _png(fh: BinaryIO, size: int, scan: _Scan) -> None:
    """``caBX`` and ``iTXt`` (XMP) chunks, up to ``IEND``."""
    offset = 8
    for _ in range(MAX_CHUNKS):
        fh.seek(offset)
        head = fh.read(8)
        if len(head) < 8:
            return
        length, kind = int.from_bytes(head[:4], "big"), head[4:8]
        if kind == b"caBX":
            scan.store = "PNG caBX chunk"
        elif kind == b"iTXt":
            data = fh.read(min(length, MAX_XMP))
            if data.startswith(b"XML:com.adobe.xmp\x00"):
                scan.xmp(data)
        elif kind == b"IEND":
            scan.complete = True
            return
        offset += 12 + length


# --- ISO BMFF --------------------------------------------------------------------------------


def _bmff(fh: BinaryIO, size: int, scan: _Scan) -> None:
    """Top-level ``uuid`` boxes: the C2PA store, and XMP where a remote reference would be."""
    end = 0
    for box in boxes.iter_boxes(fh, 0, size, boxes.Budget()):
        end = box.end
        if box.type != "uuid" or box.payload_size < 16:
            continue
        fh.seek(box.payload_start)
        kind = fh.read(16)
        if kind == C2PA_UUID:
            scan.store = "ISO BMFF uuid box"
        elif kind == XMP_UUID:
            scan.xmp(fh.read(min(box.payload_size - 16, MAX_XMP)))
    scan.complete = end == size


# --- RIFF (WebP, AVI) ------------------------------------------------------------------------


def _riff(fh: BinaryIO, size: int, scan: _Scan) -> None:
    """The first RIFF chunk's children: ``C2PA``, and ``XMP `` (WebP) or ``_PMX`` (AVI)."""
    fh.seek(4)
    declared = int.from_bytes(fh.read(4), "little") + 8
    end = min(declared, size)
    offset = 12
    for _ in range(MAX_CHUNKS):
        if offset + 8 > end:
            break
        fh.seek(offset)
        head = fh.read(8)
        kind, length = head[:4], int.from_bytes(head[4:8], "little")
        if kind == b"C2PA":
            scan.store = "RIFF C2PA chunk"
        elif kind in (b"XMP ", b"_PMX"):
            scan.xmp(fh.read(min(length, MAX_XMP)))
        offset += 8 + length + (length & 1)
    scan.complete = offset == declared <= size


# --- TIFF ------------------------------------------------------------------------------------


def _tiff(fh: BinaryIO, size: int, scan: _Scan) -> None:
    """Tag 0xCD41 (C2PA) and tag 700 (XMP) in the first IFD; BigTIFF is not walked."""
    fh.seek(0)
    head = fh.read(8)
    order: Literal["little", "big"] = "little" if head[:2] == b"II" else "big"
    if int.from_bytes(head[2:4], order) != 42:
        return
    fh.seek(int.from_bytes(head[4:8], order))
    raw_count = fh.read(2)
    count = int.from_bytes(raw_count, order)
    entries = fh.read(12 * count)  # at most 65535 entries: 768 KiB
    if len(raw_count) != 2 or len(entries) != 12 * count:
        return
    for start in range(0, len(entries), 12):
        entry = entries[start : start + 12]
        tag, length = int.from_bytes(entry[:2], order), int.from_bytes(entry[4:8], order)
        if tag == 0xCD41:
            scan.store = "TIFF tag 0xCD41"
        elif tag == 700 and length > 4:  # XMP (BYTE or UNDEFINED), stored at an offset
            fh.seek(int.from_bytes(entry[8:12], order))
            scan.xmp(fh.read(min(length, MAX_XMP)))
    scan.complete = True


# --- GIF -------------------------------------------------------------------------------------


def _gif(fh: BinaryIO, size: int, scan: _Scan) -> None:
    """Application extensions ``C2PA_GIF`` and ``XMP DataXMP``, up to the trailer."""
    fh.seek(10)
    fh.seek(13 + _colour_table(fh.read(1)[0]))
    while True:
        intro = fh.read(1)
        if intro == b";":
            scan.complete = True
            return
        if intro == b",":  # image: descriptor, local colour table, LZW code size, data
            descriptor = fh.read(9)
            fh.seek(_colour_table(descriptor[8]) + 1, 1)
            data = _sub_blocks(fh, scan)
        elif intro == b"!":
            data = _gif_extension(fh, scan)
        else:
            return
        if data is None:
            return


def _gif_extension(fh: BinaryIO, scan: _Scan) -> bytes | None:
    """Skip one extension, noting C2PA and XMP application extensions; None when it is cut."""
    label = fh.read(1)
    app = fh.read(fh.read(1)[0]) if label == b"\xff" else b""
    if app[:8] == b"C2PA_GIF":
        scan.store = "GIF C2PA_GIF application extension"
    if app != b"XMP DataXMP":
        return _sub_blocks(fh, scan)
    # Adobe writes the packet raw (its bytes doubling as sub-block sizes), others as proper
    # sub-blocks: look for the reference both ways.
    here = fh.tell()
    scan.xmp(fh.read(MAX_XMP))
    fh.seek(here)
    data = _sub_blocks(fh, scan, keep=True)
    scan.xmp(data or b"")
    return data


def _colour_table(flags: int) -> int:
    return 3 * (2 << (flags & 0x07)) if flags & 0x80 else 0


def _sub_blocks(fh: BinaryIO, scan: _Scan, *, keep: bool = False) -> bytes | None:
    """Read past a run of data sub-blocks (their bytes, up to MAX_XMP, if ``keep``)."""
    kept = bytearray()
    while scan.budget > 0:
        scan.budget -= 1
        length = fh.read(1)
        if not length:
            return None
        if length == b"\x00":
            return bytes(kept)
        if keep and len(kept) < MAX_XMP:
            kept += fh.read(length[0])
        else:
            fh.seek(length[0], 1)
    return None


_Walker = Callable[[BinaryIO, int, _Scan], None]
_WALKERS: dict[str, tuple[str, _Walker]] = {
    "jpeg": ("jpeg", _jpeg),
    "png": ("png", _png),
    "tiff": ("tiff", _tiff),
    "webp": ("riff", _riff),
    "avi": ("riff", _riff),
    "gif": ("gif", _gif),
    "heif": ("bmff", _bmff),
    "mp4": ("bmff", _bmff),
    "mov": ("bmff", _bmff),
}
