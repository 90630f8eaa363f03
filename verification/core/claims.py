"""What a submitter claims about a file: case, place, time, source.

Claims travel as S3 user metadata (``case-id``, ``submitter``, ``claimed-lat``, ``claimed-lon``,
``claimed-time``, ``source-url``, ``note``) or as a ``<name>.claims.json`` sidecar.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

METADATA_KEYS = (
    "case-id",
    "submitter",
    "claimed-lat",
    "claimed-lon",
    "claimed-time",
    "source-url",
    "note",
)


class InvalidClaim(ValueError):
    """A claim value that cannot be parsed (the message never repeats coordinates)."""


@dataclass(frozen=True, slots=True)
class Claims:
    """Submitter's claims. ``time`` is timezone-aware (UTC when no offset was given)."""

    case_id: str
    submitter: str | None = None
    lat: float | None = None
    lon: float | None = None
    time: datetime | None = None
    source_url: str | None = None
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (time as ISO 8601)."""
        data = asdict(self)
        data["time"] = self.time.isoformat() if self.time else None
        return data

    def to_metadata(self) -> dict[str, str]:
        """S3 user-metadata form (ASCII-safe: non-ASCII is percent-encoded by the store layer)."""
        values = {
            "case-id": self.case_id,
            "submitter": self.submitter,
            "claimed-lat": None if self.lat is None else repr(self.lat),
            "claimed-lon": None if self.lon is None else repr(self.lon),
            "claimed-time": self.time.isoformat() if self.time else None,
            "source-url": self.source_url,
            "note": self.note,
        }
        return {k: v for k, v in values.items() if v is not None}


def parse_time(value: str) -> datetime:
    """Parse ISO 8601; a time without offset is taken as UTC."""
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        msg = f"claimed time is not ISO 8601: {value!r}"
        raise InvalidClaim(msg) from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_location(value: str) -> tuple[float, float]:
    """Parse ``LAT,LON`` in decimal degrees and range-check it."""
    parts = value.split(",")
    if len(parts) != 2:
        msg = "claimed location must be LAT,LON in decimal degrees"
        raise InvalidClaim(msg)
    try:
        lat, lon = float(parts[0]), float(parts[1])
    except ValueError as exc:
        msg = "claimed location must be two decimal numbers"
        raise InvalidClaim(msg) from exc
    check_coordinates(lat, lon)
    return lat, lon


def check_coordinates(lat: float, lon: float) -> None:
    """Raise :class:`InvalidClaim` for out-of-range or non-finite coordinates."""
    if not (math.isfinite(lat) and math.isfinite(lon)):
        msg = "claimed location is not a finite number"
        raise InvalidClaim(msg)
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        msg = "claimed location is out of range (latitude -90..90, longitude -180..180)"
        raise InvalidClaim(msg)


def claims_from_metadata(meta: Mapping[str, str], default_case: str) -> Claims:
    """Build claims from store metadata; unparsable values raise :class:`InvalidClaim`."""
    lat = meta.get("claimed-lat")
    lon = meta.get("claimed-lon")
    if (lat is None) != (lon is None):
        msg = "claimed location needs both claimed-lat and claimed-lon"
        raise InvalidClaim(msg)
    location = parse_location(f"{lat},{lon}") if lat is not None else (None, None)
    time = meta.get("claimed-time")
    return Claims(
        case_id=meta.get("case-id") or default_case,
        submitter=meta.get("submitter"),
        lat=location[0],
        lon=location[1],
        time=parse_time(time) if time else None,
        source_url=meta.get("source-url"),
        note=meta.get("note"),
    )
