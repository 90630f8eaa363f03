"""GPS blocks: is the position a file carries usable, and how it is kept and shown.

A block that fails validation keeps no ``lat``/``lon`` (the values move to ``raw``), so no
reader (distance, map, export) can use them by accident. Coordinates are sensitive: no log line,
exception message or finding message here contains them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from verification.core.findings import Finding, Severity

if TYPE_CHECKING:
    pass


logger = logging.getLogger(__name__)

MIN_ALTITUDE_M = -500.0  # below the Dead Sea shore (-430 m) with margin
MAX_ALTITUDE_M = 9000.0  # above Everest: aircraft or a broken GPS fix

# Finding codes raised by validate_gps: severity, description, what the analyst should do.
# verification.checks.FINDING_CODES includes them, so docs/findings.md lists them too.
GPS_FINDING_CODES: dict[str, tuple[Severity, str, str]] = {
    "gps-invalid": (
        "warning",
        "The file's GPS block is unusable: a coordinate is missing, not a number, out of range, "
        "or a hemisphere reference is not N/S/E/W. The record marks it `valid: false` and keeps "
        "the values only under `gps.raw`: no distance, place, time zone or map point uses them.",
        "Look at the raw metadata (exiftool -G -a) to see what the device wrote; rely on "
        "visual geolocation instead of the embedded position.",
    ),
    "gps-ref-mismatch": (
        "warning",
        "The hemisphere reference (N/S, E/W) disagrees with the sign of the coordinate, so the "
        "position may be mirrored across the equator or the prime meridian.",
        "Check the raw GPSLatitudeRef/GPSLongitudeRef tags and consider the mirrored position.",
    ),
    "gps-null-island": (
        "warning",
        "The position is 0°, 0° ('Null Island'): a placeholder written by devices without a fix, "
        "not a real place. Marked `valid: false` like `gps-invalid` and used nowhere.",
        "Treat the file as having no embedded location.",
    ),
    "gps-placeholder": (
        "warning",
        "The position sits exactly on a pole or on the antimeridian, values written as "
        "placeholders by some software. Marked `valid: false` like `gps-invalid` and used "
        "nowhere.",
        "Treat the file as having no embedded location unless the claim says otherwise.",
    ),
    "gps-altitude-implausible": (
        "warning",
        f"GPS altitude below {MIN_ALTITUDE_M:.0f} m or above {MAX_ALTITUDE_M:.0f} m (or not a "
        "number): a bad fix, a unit error, or a photo taken from an aircraft.",
        "Check whether the scene could be aerial; otherwise treat the GPS fix as doubtful.",
    ),
}

# Findings after which the embedded position must not be used as the observed place.
UNUSABLE_POSITION_CODES = frozenset({"gps-invalid", "gps-null-island", "gps-placeholder"})

_LAT_REFS = frozenset({"N", "S"})
_LON_REFS = frozenset({"E", "W"})
_NULL_ISLAND_EPS = 1e-6


def _gps_finding(code: str, message: str, **evidence: Any) -> Finding:
    return Finding(code, GPS_FINDING_CODES[code][0], message, evidence)


def as_float(value: Any) -> float | None:
    """``value`` as a finite float, or None (booleans and non-numbers included)."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def validate_gps(gps: Mapping[str, Any] | None) -> list[Finding]:
    """Return findings about an extracted GPS block (empty when it looks sane or is absent).

    A finding whose code is in :data:`UNUSABLE_POSITION_CODES` means the position must not be
    treated as where the file was made. A block already marked by :func:`mark_validity` is
    judged on the values it keeps under ``raw``, so the findings are the same either way.
    """
    if gps is None:
        return []
    written = _written(gps)
    lat, lon = as_float(written.get("lat")), as_float(written.get("lon"))
    if lat is None or lon is None:
        return [
            _gps_finding("gps-invalid", "GPS latitude or longitude is missing or not a number.")
        ]
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        return [_gps_finding("gps-invalid", "GPS position is outside the valid range.")]
    findings = _ref_findings(gps, lat, lon)
    findings += _placeholder_findings(lat, lon)
    findings += _altitude_findings(gps.get("alt"))
    return findings


def _written(gps: Mapping[str, Any]) -> Mapping[str, Any]:
    """The coordinates as the file wrote them: under ``raw`` once marked invalid, else in place."""
    raw = gps.get("raw")
    return raw if isinstance(raw, Mapping) else gps


def mark_validity(gps: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The GPS block as the record keeps it: ``valid``, ``invalid_reason`` and ``raw`` added.

    An unusable position (see :data:`UNUSABLE_POSITION_CODES`) keeps no ``lat``/``lon``: the
    values the file wrote move to ``raw``, so no reader (distance, map, export) can use them
    by accident; ``invalid_reason`` is the finding code that says why. Idempotent.
    """
    if gps is None:
        return None
    block = dict(gps)
    unusable = [f.code for f in validate_gps(gps) if f.code in UNUSABLE_POSITION_CODES]
    if not unusable:
        block.update(valid=True, invalid_reason=None, raw=None)
        return block
    written = _written(gps)
    raw = {"lat": as_float(written.get("lat")), "lon": as_float(written.get("lon"))}
    block.update(lat=None, lon=None, valid=False, invalid_reason=unusable[0], raw=raw)
    return block


def usable_position(gps: Mapping[str, Any] | None) -> tuple[float, float] | None:
    """``(lat, lon)`` when a GPS block may be taken as where the file was made, else None.

    The one test every reader of ``metadata.gps`` (checks, reports, exports, the map) applies:
    a block marked ``valid: false`` is never a position, and neither is an unmarked one (a
    record made before the marker) that :func:`validate_gps` finds unusable.
    """
    if not gps or gps.get("valid") is False:
        return None
    if any(f.code in UNUSABLE_POSITION_CODES for f in validate_gps(gps)):
        return None
    lat, lon = as_float(gps.get("lat")), as_float(gps.get("lon"))
    return None if lat is None or lon is None else (lat, lon)


def gps_text(gps: Mapping[str, Any] | None) -> str | None:
    """How reports show a GPS block: ``lat, lon (source)``; for an unusable one only why not.

    None when the file has no GPS block. The values of an unusable block are never shown.
    """
    if not gps:
        return None
    source = gps.get("source")
    position = usable_position(gps)
    if position is not None:
        return f"{position[0]:.6f}, {position[1]:.6f} ({source})"
    reason = gps.get("invalid_reason") or next(
        (f.code for f in validate_gps(gps) if f.code in UNUSABLE_POSITION_CODES), "gps-invalid"
    )
    return f"unusable, not used ({reason}; {source})"


def _ref_findings(gps: Mapping[str, Any], lat: float, lon: float) -> list[Finding]:
    findings: list[Finding] = []
    for field, value, allowed, negative in (
        ("lat_ref", lat, _LAT_REFS, "S"),
        ("lon_ref", lon, _LON_REFS, "W"),
    ):
        ref = gps.get(field)
        if ref is None:
            continue
        ref = str(ref).strip().upper()
        if ref not in allowed:
            message = f"GPS {field} is {ref!r}, expected one of {sorted(allowed)}."
            findings.append(_gps_finding("gps-invalid", message, field=field, ref=ref))
        elif value != 0 and (value < 0) != (ref == negative):
            message = f"GPS {field} {ref!r} disagrees with the sign of the coordinate."
            findings.append(_gps_finding("gps-ref-mismatch", message, field=field, ref=ref))
    return findings


def _placeholder_findings(lat: float, lon: float) -> list[Finding]:
    if abs(lat) <= _NULL_ISLAND_EPS and abs(lon) <= _NULL_ISLAND_EPS:
        message = "GPS position is 0°, 0° (Null Island), a placeholder for 'no fix'."
        return [_gps_finding("gps-null-island", message)]
    if abs(lat) == 90.0 or abs(lon) == 180.0:
        message = "GPS position lies exactly on a pole or the antimeridian, a placeholder value."
        return [_gps_finding("gps-placeholder", message)]
    return []


def _altitude_findings(alt: Any) -> list[Finding]:
    if alt is None:
        return []
    value = as_float(alt)
    if value is not None and MIN_ALTITUDE_M <= value <= MAX_ALTITUDE_M:
        return []
    shown = "not a number" if value is None else f"{value:.0f} m"
    message = (
        f"GPS altitude is {shown}, outside {MIN_ALTITUDE_M:.0f}..{MAX_ALTITUDE_M:.0f} m "
        "expected for a photo taken on the ground."
    )
    return [_gps_finding("gps-altitude-implausible", message, altitude_m=value)]
