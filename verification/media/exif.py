"""Normalise exifread tags into the record's metadata schema.

Pure functions over the tag dictionary exifread returns; no I/O here. Dates become ISO 8601
strings with the offset only when the file states one; GPS becomes signed decimal degrees.
"""

from __future__ import annotations

import logging
import math
import re
from datetime import datetime, timedelta
from typing import Any

from verification.media import gps

logger = logging.getLogger(__name__)

_DATE_RE = re.compile(r"^\s*(\d{4})[:\-/](\d{2})[:\-/](\d{2})[ T](\d{2}):(\d{2}):(\d{2})")
_OFFSET_RE = re.compile(r"^([+-])(\d{2}):(\d{2})$")
_SUBSEC_RE = re.compile(r"^\d{1,9}$")

# schema field -> exifread key
_TEXT_TAGS: dict[str, str] = {
    "make": "Image Make",
    "model": "Image Model",
    "lens": "EXIF LensModel",
    "body_serial": "EXIF BodySerialNumber",
    "software": "Image Software",
    "artist": "Image Artist",
    "copyright": "Image Copyright",
    "image_unique_id": "EXIF ImageUniqueID",
}

# schema prefix -> (date tag, sub-second tag, offset tag)
_DATE_TAGS: dict[str, tuple[str, str, str]] = {
    "datetime_original": (
        "EXIF DateTimeOriginal",
        "EXIF SubSecTimeOriginal",
        "EXIF OffsetTimeOriginal",
    ),
    "create_date": (
        "EXIF DateTimeDigitized",
        "EXIF SubSecTimeDigitized",
        "EXIF OffsetTimeDigitized",
    ),
    "modify_date": ("Image DateTime", "EXIF SubSecTime", "EXIF OffsetTime"),
}


def tag_text(tags: dict[str, Any], key: str) -> str | None:
    """The tag's printable value, stripped of padding; None when absent or blank."""
    tag = tags.get(key)
    if tag is None:
        return None
    text = _printable(tag).replace("\x00", "").strip()
    return text or None


def tag_raw(tags: dict[str, Any], key: str) -> str | None:
    """The tag's printable value exactly as exifread gives it (trailing NULs removed)."""
    tag = tags.get(key)
    if tag is None:
        return None
    return _printable(tag).rstrip("\x00")


def _printable(tag: Any) -> str:
    printable = getattr(tag, "printable", None)
    if printable is not None:
        return str(printable)
    if isinstance(tag, bytes):
        return f"<{len(tag)} bytes>"
    return str(tag)


def tag_values(tags: dict[str, Any], key: str) -> list[Any]:
    """The tag's value list (ints or ratios); empty when absent."""
    tag = tags.get(key)
    values = getattr(tag, "values", None)
    if isinstance(values, list):
        return values
    if isinstance(values, (int, float)):
        return [values]
    return []


def to_float(value: Any) -> float | None:
    """A ratio or number as a finite float; None for 0/0, x/0 and non-numbers."""
    try:
        num = getattr(value, "num", None)
        den = getattr(value, "den", None)
        result = float(num) / float(den) if num is not None and den is not None else float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return result if math.isfinite(result) else None


def parse_exif_datetime(raw: str | None, subsec: str | None, offset: str | None) -> str | None:
    """ISO 8601 from an EXIF date string plus optional sub-seconds and offset.

    Placeholders such as ``0000:00:00 00:00:00`` and anything unparsable give None.
    """
    if not raw:
        return None
    match = _DATE_RE.match(raw)
    if match is None:
        return None
    try:
        year, month, day_, hour, minute, second = (int(part) for part in match.groups())
        moment = datetime(year, month, day_, hour, minute, second)
    except ValueError:
        return None
    if subsec and _SUBSEC_RE.match(subsec):
        moment = moment.replace(microsecond=int(subsec[:6].ljust(6, "0")))
    iso = moment.isoformat()
    normalised = normalise_offset(offset)
    return iso + normalised if normalised else iso


def normalise_offset(offset: str | None) -> str | None:
    """``+HH:MM`` when the value is a plausible UTC offset, else None."""
    if not offset:
        return None
    match = _OFFSET_RE.match(offset.strip())
    if match is None:
        return None
    sign, hours, minutes = match.groups()
    if int(hours) > 14 or int(minutes) > 59:
        return None
    return f"{sign}{hours}:{minutes}"


def normalise_dates(tags: dict[str, Any]) -> dict[str, Any]:
    """The three EXIF dates as ISO strings plus their raw forms and the original's offset."""
    out: dict[str, Any] = {}
    for name, (date_key, subsec_key, offset_key) in _DATE_TAGS.items():
        raw = tag_raw(tags, date_key)
        out[f"{name}_raw"] = raw
        out[name] = parse_exif_datetime(
            tag_text(tags, date_key), tag_text(tags, subsec_key), tag_text(tags, offset_key)
        )
    out["offset_time_original"] = normalise_offset(tag_text(tags, "EXIF OffsetTimeOriginal"))
    return out


def normalise_text(tags: dict[str, Any]) -> dict[str, str | None]:
    """Camera, software and rights strings, stripped; None when absent or blank."""
    return {name: tag_text(tags, key) for name, key in _TEXT_TAGS.items()}


def orientation(tags: dict[str, Any]) -> int | None:
    """IFD0 orientation 1-8, or None when absent or out of range."""
    values = tag_values(tags, "Image Orientation")
    if not values or not isinstance(values[0], int):
        return None
    return values[0] if 1 <= values[0] <= 8 else None


def _dms(values: list[Any]) -> float | None:
    parts = [to_float(value) for value in values[:3]]
    if not parts or any(part is None for part in parts):
        return None
    degrees = 0.0
    for part, scale in zip(parts, (1.0, 60.0, 3600.0), strict=False):
        degrees += part / scale  # type: ignore[operator]
    return degrees


def _ref(tags: dict[str, Any], key: str) -> str | None:
    text = tag_text(tags, key)
    return text[:1].upper() if text else None


def normalise_gps(tags: dict[str, Any]) -> dict[str, Any] | None:
    """Signed decimal degrees, altitude, GPS time and direction; None without coordinates.

    The block states its validity (:func:`verification.media.gps.mark_validity`): an out-of-range
    latitude or an unknown hemisphere letter leaves ``lat``/``lon`` empty, ``valid`` false.
    """
    lat = _dms(tag_values(tags, "GPS GPSLatitude"))
    lon = _dms(tag_values(tags, "GPS GPSLongitude"))
    if lat is None or lon is None:
        return None
    lat_ref, lon_ref = _ref(tags, "GPS GPSLatitudeRef"), _ref(tags, "GPS GPSLongitudeRef")
    if lat_ref == "S":
        lat = -lat
    if lon_ref == "W":
        lon = -lon
    return gps.mark_validity(
        {
            "lat": lat,
            "lon": lon,
            "alt": _altitude(tags),
            "time_utc": _gps_time(tags),
            "img_direction": _first_float(tags, "GPS GPSImgDirection"),
            "lat_ref": lat_ref,
            "lon_ref": lon_ref,
            "source": "exif",
        }
    )


def _first_float(tags: dict[str, Any], key: str) -> float | None:
    values = tag_values(tags, key)
    return to_float(values[0]) if values else None


def _altitude(tags: dict[str, Any]) -> float | None:
    alt = _first_float(tags, "GPS GPSAltitude")
    if alt is None:
        return None
    ref = tag_values(tags, "GPS GPSAltitudeRef")
    below = bool(ref) and ref[0] == 1
    return -abs(alt) if below else alt


def _gps_time(tags: dict[str, Any]) -> str | None:
    # exifread names tag 0x001D "GPSDate"; the EXIF spec calls it GPSDateStamp.
    date = tag_text(tags, "GPS GPSDate") or tag_text(tags, "GPS GPSDateStamp")
    parts = [to_float(value) for value in tag_values(tags, "GPS GPSTimeStamp")[:3]]
    if not date or len(parts) != 3 or any(part is None for part in parts):
        return None
    match = re.match(r"^(\d{4})[:\-](\d{2})[:\-](\d{2})$", date)
    if match is None:
        return None
    hours, minutes, seconds = parts
    try:
        year, month, mday = (int(part) for part in match.groups())
        day = datetime(year, month, mday)
        moment = day + timedelta(hours=hours, minutes=minutes, seconds=seconds)  # type: ignore[arg-type]
    except (ValueError, OverflowError):
        return None
    if moment.date() != day.date():
        return None
    return f"{moment.isoformat()}+00:00"


def raw_strings(tags: dict[str, Any], limit: int = 2000) -> dict[str, str]:
    """Every tag as a printable string for analysts, thumbnails left out, long values cut."""
    out: dict[str, str] = {}
    for key, tag in tags.items():
        if key in {"JPEGThumbnail", "TIFFThumbnail"}:
            continue
        out[key] = _printable(tag)[:limit]
    return out
