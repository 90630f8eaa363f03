"""A small, bounded, seek-based reader for ISO BMFF / QuickTime boxes (MP4, MOV, HEIF).

Only box headers are walked and only small, known boxes are read: ``mdat`` and other media
payloads are skipped by seeking. Depth, box count and payload size are capped, so a crafted
file cannot make the reader loop, recurse deeply or allocate much.
"""

from __future__ import annotations

import logging
import math
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, BinaryIO

logger = logging.getLogger(__name__)

MAX_DEPTH = 8
MAX_BOXES = 4096
MAX_PAYLOAD = 1 << 20
_EPOCH_1904 = datetime(1904, 1, 1, tzinfo=UTC)
_CONTAINERS = frozenset({"moov", "trak", "mdia", "udta", "edts", "minf"})
_ISO6709 = re.compile(r"^([+-])(\d+(?:\.\d*)?)([+-])(\d+(?:\.\d*)?)(?:([+-]\d+(?:\.\d*)?))?")


class BoxError(ValueError):
    """The box structure is malformed or exceeds the reader's limits."""


@dataclass(frozen=True, slots=True)
class Box:
    """One box header: its four-character type and where its payload lies in the file."""

    type: str
    start: int
    payload_start: int
    end: int

    @property
    def payload_size(self) -> int:
        """Bytes between the header and the end of the box."""
        return self.end - self.payload_start


@dataclass(slots=True)
class Budget:
    """Boxes left to visit; shared across one walk so the total is bounded."""

    remaining: int = MAX_BOXES

    def spend(self) -> None:
        """Count one box; raise once the budget is exhausted."""
        self.remaining -= 1
        if self.remaining < 0:
            msg = f"more than {MAX_BOXES} boxes"
            raise BoxError(msg)


def file_size(fh: BinaryIO) -> int:
    """Size of the open file, found by seeking to its end."""
    return fh.seek(0, 2)


def iter_boxes(fh: BinaryIO, start: int, end: int, budget: Budget) -> Iterator[Box]:
    """The boxes laid out between ``start`` and ``end``; stops at the first malformed header."""
    offset = start
    while offset + 8 <= end:
        budget.spend()
        fh.seek(offset)
        header = fh.read(8)
        if len(header) < 8:
            return
        size, kind = struct.unpack(">I4s", header)
        payload = offset + 8
        if size == 1:
            large = fh.read(8)
            if len(large) < 8:
                return
            size = struct.unpack(">Q", large)[0]
            payload += 8
        elif size == 0:
            size = end - offset
        if size < payload - offset or offset + size > end:
            logger.debug("box header out of bounds at offset %s", offset)
            return
        yield Box(kind.decode("latin-1"), offset, payload, offset + size)
        offset += size


def read_payload(fh: BinaryIO, box: Box, limit: int = MAX_PAYLOAD) -> bytes:
    """The box payload, refused when larger than ``limit``."""
    if box.payload_size > limit:
        msg = f"box {box.type!r} payload of {box.payload_size} bytes exceeds {limit}"
        raise BoxError(msg)
    fh.seek(box.payload_start)
    return fh.read(box.payload_size)


def children(fh: BinaryIO, box: Box, budget: Budget, skip: int = 0) -> list[Box]:
    """Direct children of a container box (``skip`` bytes of version/flags first)."""
    return list(iter_boxes(fh, box.payload_start + skip, box.end, budget))


def meta_skip(fh: BinaryIO, box: Box) -> int:
    """4 for an ISO ``meta`` full box, 0 for QuickTime's plain ``meta`` (hdlr comes first)."""
    fh.seek(box.payload_start + 4)
    return 0 if fh.read(4) == b"hdlr" else 4


# --- QuickTime / MP4 movie metadata ---------------------------------------------------------


@dataclass(slots=True)
class MovieInfo:
    """Container facts found in ``moov``: creation time, rotation and metadata strings."""

    creation_time: str | None = None
    rotation: int | None = None
    tags: dict[str, str] = field(default_factory=dict)


def read_movie(fh: BinaryIO) -> MovieInfo:
    """Walk the top level to ``moov`` and collect what the record needs."""
    info = MovieInfo()
    budget = Budget()
    end = file_size(fh)
    for box in iter_boxes(fh, 0, end, budget):
        if box.type == "moov":
            _walk_moov(fh, box, budget, info, depth=1)
            break
    return info


def _walk_moov(fh: BinaryIO, parent: Box, budget: Budget, info: MovieInfo, depth: int) -> None:
    if depth > MAX_DEPTH:
        msg = "boxes nested too deeply"
        raise BoxError(msg)
    for box in children(fh, parent, budget):
        if box.type == "mvhd":
            info.creation_time = _mvhd_creation(read_payload(fh, box, 4096))
        elif box.type == "trak":
            _walk_trak(fh, box, budget, info)
        elif box.type == "udta":
            _walk_udta(fh, box, budget, info)
        elif box.type == "meta":
            _walk_meta(fh, box, budget, info)


def _walk_trak(fh: BinaryIO, trak: Box, budget: Budget, info: MovieInfo) -> None:
    rotation = None
    is_video = False
    for box in children(fh, trak, budget):
        if box.type == "tkhd":
            rotation = tkhd_rotation(read_payload(fh, box, 4096))
        elif box.type == "mdia":
            is_video = _handler_of(fh, box, budget) == "vide"
    if is_video and info.rotation is None:
        info.rotation = rotation


def _handler_of(fh: BinaryIO, mdia: Box, budget: Budget) -> str | None:
    for box in children(fh, mdia, budget):
        if box.type == "hdlr":
            payload = read_payload(fh, box, 4096)
            return payload[8:12].decode("latin-1") if len(payload) >= 12 else None
    return None


def _walk_udta(fh: BinaryIO, udta: Box, budget: Budget, info: MovieInfo) -> None:
    for box in children(fh, udta, budget):
        if box.type == "meta":
            _walk_meta(fh, box, budget, info)
        elif box.type == "loci":
            value = loci_iso6709(read_payload(fh, box, 64 * 1024))
            if value is not None:
                info.tags.setdefault("udta.loci", value)
        elif box.type.startswith("\xa9"):
            value = _udta_string(fh, box, budget)
            if value is not None:
                info.tags.setdefault(f"udta.{box.type}", value)


def loci_iso6709(payload: bytes) -> str | None:
    """A 3GPP ``loci`` box (what ffmpeg writes in MP4) as an ISO 6709 string."""
    name_end = payload.find(b"\x00", 6)
    fixed = name_end + 2
    if name_end < 0 or len(payload) < fixed + 12:
        return None
    lon, lat, alt = (v / 65536 for v in struct.unpack(">iii", payload[fixed : fixed + 12]))
    if abs(lat) > 90 or abs(lon) > 180:
        return None
    return f"{_signed(lat, 8)}{_signed(lon, 9)}{_signed(alt, 0)}/"


def _signed(value: float, width: int) -> str:
    sign = "-" if value < 0 else "+"
    return f"{sign}{abs(value):0{width}.5f}" if width else f"{sign}{abs(value):.3f}"


def _udta_string(fh: BinaryIO, box: Box, budget: Budget) -> str | None:
    payload = read_payload(fh, box, 64 * 1024)
    if len(payload) >= 16 and payload[4:8] == b"data":
        return _data_value(payload[8 : struct.unpack(">I", payload[:4])[0]])
    if len(payload) < 4:
        return None
    length = struct.unpack(">H", payload[:2])[0]
    return _text(payload[4 : 4 + length])


def _walk_meta(fh: BinaryIO, meta: Box, budget: Budget, info: MovieInfo) -> None:
    keys: list[str] = []
    for box in children(fh, meta, budget, skip=meta_skip(fh, meta)):
        if box.type == "keys":
            keys = parse_keys(read_payload(fh, box))
        elif box.type == "ilst":
            _walk_ilst(fh, box, budget, keys, info)


def parse_keys(payload: bytes) -> list[str]:
    """Key names of a QuickTime ``keys`` box (index 1 is the first)."""
    if len(payload) < 8:
        return []
    count = struct.unpack(">I", payload[4:8])[0]
    keys: list[str] = []
    offset = 8
    while len(keys) < min(count, 1024) and offset + 8 <= len(payload):
        size = struct.unpack(">I", payload[offset : offset + 4])[0]
        if size < 8 or offset + size > len(payload):
            break
        keys.append(payload[offset + 8 : offset + size].decode("utf-8", errors="replace"))
        offset += size
    return keys


def _walk_ilst(fh: BinaryIO, ilst: Box, budget: Budget, keys: list[str], info: MovieInfo) -> None:
    for item in children(fh, ilst, budget):
        name = _ilst_name(item, keys)
        if name is None:
            continue
        for data in children(fh, item, budget):
            if data.type == "data":
                value = _data_value(read_payload(fh, data, 64 * 1024))
                if value is not None:
                    info.tags.setdefault(name, value)
                break


def _ilst_name(item: Box, keys: list[str]) -> str | None:
    if item.type.startswith("\xa9"):
        return f"ilst.{item.type}"
    index = struct.unpack(">I", item.type.encode("latin-1"))[0]
    if 1 <= index <= len(keys):
        return f"keys.{keys[index - 1]}"
    return None


def _data_value(payload: bytes) -> str | None:
    """Value of an ``ilst``/``udta`` ``data`` atom when it is text (type 1) or a small int."""
    if len(payload) < 8:
        return None
    kind = struct.unpack(">I", payload[:4])[0] & 0xFFFFFF
    value = payload[8:]
    if kind in {1, 2}:
        return _text(value, "utf-16-be" if kind == 2 else "utf-8")
    if kind in {21, 22} and 1 <= len(value) <= 8:
        return str(int.from_bytes(value, "big", signed=kind == 21))
    return None


def _text(data: bytes, encoding: str = "utf-8") -> str | None:
    text = data.decode(encoding, errors="replace").replace("\x00", "").strip()
    return text[:2000] or None


def _mvhd_creation(payload: bytes) -> str | None:
    if len(payload) < 12:
        return None
    if payload[0] == 1:
        if len(payload) < 20:
            return None
        seconds = struct.unpack(">Q", payload[4:12])[0]
    else:
        seconds = struct.unpack(">I", payload[4:8])[0]
    return time_1904(seconds)


def time_1904(seconds: int) -> str | None:
    """ISO 8601 UTC for seconds since 1904-01-01; None for 0 (unset) or out of range."""
    if seconds <= 0:
        return None
    try:
        return (_EPOCH_1904 + timedelta(seconds=seconds)).isoformat()
    except OverflowError:
        return None


def tkhd_rotation(payload: bytes) -> int | None:
    """Clockwise display rotation (0/90/180/270) from the track header matrix."""
    matrix_at = 4 + (32 if payload[:1] == b"\x01" else 20) + 16
    if len(payload) < matrix_at + 36:
        return None
    a, b = struct.unpack(">ii", payload[matrix_at : matrix_at + 8])
    if a == 0 and b == 0:
        return None
    angle = math.degrees(math.atan2(b, a))
    return round(angle / 90.0) % 4 * 90


def parse_iso6709(text: str) -> tuple[float, float, float | None] | None:
    """(lat, lon, alt) from an ISO 6709 string such as ``+48.8584+002.2945+035.0/``."""
    match = _ISO6709.match(text.strip())
    if match is None:
        return None
    lat_sign, lat, lon_sign, lon, alt = match.groups()
    latitude = _sexagesimal(lat, 2)
    longitude = _sexagesimal(lon, 3)
    if latitude is None or longitude is None or latitude > 90 or longitude > 180:
        return None
    latitude = -latitude if lat_sign == "-" else latitude
    longitude = -longitude if lon_sign == "-" else longitude
    return latitude, longitude, float(alt) if alt else None


def _sexagesimal(value: str, degree_digits: int) -> float | None:
    """Decimal degrees from ISO 6709's D, DM or DMS forms, told apart by integer digits."""
    whole, _, fraction = value.partition(".")
    frac = float(f"0.{fraction}") if fraction else 0.0
    digits = len(whole)
    if digits == degree_digits:
        return int(whole) + frac
    if digits == degree_digits + 2:
        return int(whole[:degree_digits]) + (int(whole[degree_digits:]) + frac) / 60
    if digits == degree_digits + 4:
        minutes = int(whole[degree_digits : degree_digits + 2])
        seconds = int(whole[degree_digits + 2 :]) + frac
        return int(whole[:degree_digits]) + minutes / 60 + seconds / 3600
    return None


# --- HEIF ----------------------------------------------------------------------------------


def heif_primary_size(fh: BinaryIO) -> tuple[int, int] | None:
    """Stored (width, height) of a HEIF's primary item from its ``ispe``, before ``irot``."""
    budget = Budget()
    for box in iter_boxes(fh, 0, file_size(fh), budget):
        if box.type == "meta":
            return _heif_meta_size(fh, box, budget)
    return None


def _heif_meta_size(fh: BinaryIO, meta: Box, budget: Budget) -> tuple[int, int] | None:
    primary: int | None = None
    properties: list[Box] = []
    associations: dict[int, list[int]] = {}
    for box in children(fh, meta, budget, skip=4):
        if box.type == "pitm":
            payload = read_payload(fh, box, 64)
            primary = _pitm(payload)
        elif box.type == "iprp":
            for sub in children(fh, box, budget):
                if sub.type == "ipco":
                    properties = children(fh, sub, budget)
                elif sub.type == "ipma":
                    associations.update(parse_ipma(read_payload(fh, sub)))
    for index in associations.get(primary or -1, []):
        if 1 <= index <= len(properties) and properties[index - 1].type == "ispe":
            payload = read_payload(fh, properties[index - 1], 64)
            if len(payload) >= 12:
                width, height = struct.unpack(">II", payload[4:12])
                return width, height
    return None


def _pitm(payload: bytes) -> int | None:
    if len(payload) >= 8 and payload[0] == 1:
        return int(struct.unpack(">I", payload[4:8])[0])
    if len(payload) >= 6:
        return int(struct.unpack(">H", payload[4:6])[0])
    return None


def parse_ipma(payload: bytes) -> dict[int, list[int]]:
    """Item id -> 1-based property indices from an ``ipma`` box payload."""
    if len(payload) < 8:
        return {}
    version, flags = payload[0], int.from_bytes(payload[1:4], "big")
    count = struct.unpack(">I", payload[4:8])[0]
    out: dict[int, list[int]] = {}
    offset = 8
    id_size = 4 if version >= 1 else 2
    wide = bool(flags & 1)
    for _ in range(min(count, 65536)):
        if offset + id_size + 1 > len(payload):
            break
        item = int.from_bytes(payload[offset : offset + id_size], "big")
        n = payload[offset + id_size]
        offset += id_size + 1
        indices, offset = _ipma_indices(payload, offset, n, wide)
        out[item] = indices
    return out


def _ipma_indices(payload: bytes, offset: int, n: int, wide: bool) -> tuple[list[int], int]:
    indices: list[int] = []
    step = 2 if wide else 1
    mask = 0x7FFF if wide else 0x7F
    for _ in range(n):
        if offset + step > len(payload):
            break
        indices.append(int.from_bytes(payload[offset : offset + step], "big") & mask)
        offset += step
    return indices, offset


def movie_tags_summary(info: MovieInfo) -> dict[str, Any]:
    """The raw container tags as strings (for the analysts' raw view)."""
    raw = {f"QuickTime:{key}": value for key, value in info.tags.items()}
    if info.creation_time:
        raw["QuickTime:mvhd.creation_time"] = info.creation_time
    if info.rotation is not None:
        raw["QuickTime:tkhd.rotation"] = str(info.rotation)
    return raw
