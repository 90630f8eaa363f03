"""Country borders and labels for the offline map, from data shipped in a Python package.

The ``countryinfo`` package carries, per country, its outline (Natural Earth, as GeoJSON), its
English name and capital with coordinates. Nothing is fetched: the files are read once from the
installed package and kept in memory (about 1.4 MB of JSON, ~170 countries with outlines).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

log = logging.getLogger(__name__)

SOURCE = "Natural Earth outlines, names and capitals from the countryinfo package (offline)"
LABEL_SHARE = 0.12
CAPITALS_SPAN_DEG = 20.0
Ring = tuple[tuple[float, float], ...]  # (lon, lat) pairs
Projector = Callable[[float, float], tuple[float, float]]


@dataclass(frozen=True, slots=True)
class Country:
    """One country as the map draws it: outline rings, bounding box, name and capital."""

    name: str
    rings: tuple[Ring, ...]
    south: float
    north: float
    west: float
    east: float
    label: tuple[float, float] | None
    capital: str | None
    capital_at: tuple[float, float] | None


@dataclass(frozen=True, slots=True)
class Layer:
    """What to draw under the points: country shapes as SVG paths, and labels."""

    shapes: tuple[tuple[str, str], ...]  # (name, SVG path)
    labels: tuple[tuple[str, float, float], ...]  # (text, x, y)
    capitals: tuple[tuple[str, float, float], ...]
    source: str = SOURCE


@lru_cache(maxsize=1)
def countries() -> tuple[Country, ...]:
    """Every country with an outline in the installed ``countryinfo`` data."""
    found = []
    for entry in sorted(resources.files("countryinfo").joinpath("data").iterdir(), key=str):
        if not entry.name.endswith(".json"):
            continue
        country = _country(json.loads(entry.read_text(encoding="utf-8")))
        if country is not None:
            found.append(country)
    log.debug("loaded %s country outlines", len(found))
    return tuple(found)


def layer(south: float, north: float, west: float, east: float, project: Projector) -> Layer:
    """Countries overlapping the box, projected; labels and capitals that fall inside it."""
    shapes, labels, capitals = [], [], []
    span = max(east - west, north - south)
    for country in countries():
        if country.north < south or country.south > north:
            continue
        if country.east < west or country.west > east:
            continue
        shapes.append((country.name, _path(country.rings, project)))
        size = max(country.east - country.west, country.north - country.south)
        # On a wide map only countries big enough to hold their name get one, and capitals
        # appear from regional scale down, so labels do not pile up.
        label, at = country.label, country.capital_at
        if label and size >= LABEL_SHARE * span and _inside(label, south, north, west, east):
            labels.append((country.name, *project(*label)))
        wanted = country.capital and at and span <= CAPITALS_SPAN_DEG
        if wanted and at and _inside(at, south, north, west, east):
            capitals.append((str(country.capital), *project(*at)))
    return Layer(tuple(shapes), tuple(labels), tuple(capitals))


def _country(data: dict[str, object]) -> Country | None:
    rings = tuple(_rings(data.get("geoJSON")))
    name = data.get("name")
    if not rings or not isinstance(name, str):
        return None
    lons = [lon for ring in rings for lon, _ in ring]
    lats = [lat for ring in rings for _, lat in ring]
    capital = data.get("capital")
    return Country(
        name=name,
        rings=rings,
        south=min(lats),
        north=max(lats),
        west=min(lons),
        east=max(lons),
        label=_lat_lon(data.get("latlng")),
        capital=capital if isinstance(capital, str) and capital else None,
        capital_at=_lat_lon(data.get("capital_latlng")),
    )


def _rings(geojson: object) -> Iterator[Ring]:
    if not isinstance(geojson, dict):
        return
    for feature in geojson.get("features") or []:
        geometry = (feature or {}).get("geometry") or {}
        polygons = geometry.get("coordinates") or []
        if geometry.get("type") == "Polygon":
            polygons = [polygons]
        elif geometry.get("type") != "MultiPolygon":
            continue
        for polygon in polygons:
            for ring in polygon:
                points = tuple((float(p[0]), float(p[1])) for p in ring if len(p) >= 2)
                if len(points) >= 3:
                    yield points


def _lat_lon(value: object) -> tuple[float, float] | None:
    if isinstance(value, Sequence) and len(value) == 2:
        lat, lon = value
        if isinstance(lat, int | float) and isinstance(lon, int | float):
            return float(lat), float(lon)
    return None


def _inside(
    point: tuple[float, float], south: float, north: float, west: float, east: float
) -> bool:
    return south <= point[0] <= north and west <= point[1] <= east


def _path(rings: Iterable[Ring], project: Projector) -> str:
    parts = []
    for ring in rings:
        coords = [project(lat, lon) for lon, lat in ring]
        parts.append("M" + "L".join(f"{x},{y}" for x, y in coords) + "Z")
    return "".join(parts)
