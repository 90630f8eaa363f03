"""Tests for verification/checks.py: one behaviour per test, one test (at least) per code."""

from __future__ import annotations

import ast
import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from verification import checks
from verification.checks import FINDING_CODES, CheckResult, render_findings_doc, run_checks
from verification.core.claims import Claims
from verification.core.config import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
SUBMITTED = datetime(2025, 4, 1, 12, 0, tzinfo=UTC)
NAIROBI = (-1.2921, 36.8219)
MOMBASA = (-4.0435, 39.6682)  # about 440 km from Nairobi
HASH_A = "0f" * 32
HASH_B = "f0" * 32  # every bit differs from HASH_A


@pytest.fixture
def settings() -> Settings:
    return load_settings(geocoder="offline")


def _gps(lat: float = NAIROBI[0], lon: float = NAIROBI[1], **extra: Any) -> dict[str, Any]:
    gps = {"lat": lat, "lon": lon, "alt": 1700.0, "time_utc": None, "source": "exif"}
    gps.update(extra)
    return gps


def _metadata(**overrides: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "make": "Canon",
        "model": "Canon EOS 80D",
        "software": "Firmware Version 1.0.2",
        "datetime_original": None,
        "datetime_original_raw": None,
        "create_date": None,
        "modify_date": None,
        "offset_time_original": None,
        "gps": None,
        "has_thumbnail": False,
        "thumbnail_pdq": None,
        "xmp": {"present": False, "creator_tool": None, "history": []},
        "container_creation_time": None,
        "metadata_stripped": False,
    }
    metadata.update(overrides)
    return metadata


def _run(
    settings: Settings,
    metadata: dict[str, Any] | None = None,
    claims: Claims | None = None,
    *,
    kind: str = "image",
    perceptual: dict[str, Any] | None = None,
    **kwargs: Any,
) -> CheckResult:
    return run_checks(
        {"kind": kind, "format": "JPEG", "width": 640, "height": 480},
        metadata if metadata is not None else _metadata(),
        perceptual or {"pdq": None, "pdq_dihedral": []},
        claims,
        SUBMITTED,
        settings,
        **kwargs,
    )


def _codes(result: CheckResult) -> list[str]:
    return [f.code for f in result.findings]


def _finding(result: CheckResult, code: str) -> Any:
    return next(f for f in result.findings if f.code == code)


def _claims(**kwargs: Any) -> Claims:
    return Claims("case-1", **kwargs)


# --- place -----------------------------------------------------------------------------------


def test_photo_taken_far_from_claimed_place_contradicts_claim(settings: Settings) -> None:
    """GPS in Nairobi vs a claim in Mombasa is critical; the message gives km, not degrees."""
    result = _run(settings, _metadata(gps=_gps()), _claims(lat=MOMBASA[0], lon=MOMBASA[1]))
    finding = _finding(result, "location-contradicts-claim")
    assert finding.severity == "critical"
    assert "km" in finding.message
    assert "1.29" not in finding.message
    assert "39.66" not in finding.message
    assert 400 < result.geolocation["distance_km"] < 500


def test_photo_taken_at_claimed_place_matches_claim(settings: Settings) -> None:
    """A GPS position 1 km from the claim is within the 5 km threshold."""
    result = _run(settings, _metadata(gps=_gps()), _claims(lat=-1.2831, lon=36.8219))
    assert "location-matches-claim" in _codes(result)
    assert result.geolocation["place"]["country_code"] == "KE"
    assert result.geolocation["timezone"] == "Africa/Nairobi"


def test_file_without_gps_reports_no_location(settings: Settings) -> None:
    """No GPS block gives an info finding and no observed position."""
    result = _run(settings, _metadata(), _claims(lat=MOMBASA[0], lon=MOMBASA[1]))
    assert "no-location-in-file" in _codes(result)
    assert result.geolocation["observed"] is None
    assert result.geolocation["claimed"] == {"lat": MOMBASA[0], "lon": MOMBASA[1]}


def test_null_island_gps_is_ignored_as_position(settings: Settings) -> None:
    """0,0 is flagged and not compared with the claim (no bogus 'contradicts')."""
    result = _run(settings, _metadata(gps=_gps(0, 0)), _claims(lat=MOMBASA[0], lon=MOMBASA[1]))
    codes = _codes(result)
    assert "gps-null-island" in codes
    assert "no-location-in-file" in codes
    assert "location-contradicts-claim" not in codes


def test_out_of_range_gps_is_invalid_and_ignored(settings: Settings) -> None:
    """An impossible latitude is gps-invalid and the position is not used."""
    result = _run(settings, _metadata(gps=_gps(123.0, 10.0)))
    assert {"gps-invalid", "no-location-in-file"} <= set(_codes(result))


@pytest.mark.parametrize(
    "gps", [_gps(123.0, 10.0), _gps(lat_ref="X"), _gps(0.0, 0.0)], ids=["lat-123", "ref-X", "0-0"]
)
def test_position_marked_invalid_gives_no_distance_place_or_time_zone(
    settings: Settings, gps: dict[str, Any]
) -> None:
    """A block marked valid false (as extraction writes it) is reported and used nowhere."""
    from verification.media.gps import mark_validity

    claims = _claims(lat=MOMBASA[0], lon=MOMBASA[1])
    meta = _metadata(gps=mark_validity(gps), datetime_original="2025-03-20T14:05:00")
    result = _run(settings, meta, claims)
    codes = _codes(result)
    assert {"no-location-in-file"} <= set(codes)
    assert {"gps-invalid", "gps-null-island"} & set(codes)
    assert not {"location-matches-claim", "location-contradicts-claim"} & set(codes)
    geolocation = result.geolocation
    assert geolocation["observed"] is None
    assert (geolocation["distance_km"], geolocation["place"], geolocation["timezone"]) == (
        None,
        None,
        None,
    )
    assert geolocation["capture_time_source"] == "exif-naive"  # no time zone from a bad place


def test_hemisphere_ref_against_sign_is_flagged(settings: Settings) -> None:
    """lat_ref N with a southern latitude gives gps-ref-mismatch."""
    result = _run(settings, _metadata(gps=_gps(lat_ref="N", lon_ref="E")))
    assert "gps-ref-mismatch" in _codes(result)


def test_pole_position_is_a_placeholder(settings: Settings) -> None:
    """Exactly 90° latitude is a placeholder, not a place."""
    result = _run(settings, _metadata(gps=_gps(90.0, 0.0)))
    assert {"gps-placeholder", "no-location-in-file"} <= set(_codes(result))


def test_gps_altitude_of_an_airliner_is_implausible(settings: Settings) -> None:
    """11 km altitude on a photo is a warning but the position stays usable."""
    result = _run(settings, _metadata(gps=_gps(alt=11_000.0)))
    assert "gps-altitude-implausible" in _codes(result)
    assert result.geolocation["observed"] is not None


# --- time ------------------------------------------------------------------------------------


def test_exif_time_with_offset_is_exact(settings: Settings) -> None:
    """DateTimeOriginal with OffsetTimeOriginal is used as is, converted to UTC."""
    meta = _metadata(datetime_original="2025-03-20T14:05:00+03:00")
    result = _run(settings, meta)
    assert result.geolocation["capture_time"] == "2025-03-20T11:05:00+00:00"
    assert result.geolocation["capture_time_source"] == "exif-offset"


def test_naive_exif_time_is_localised_with_the_gps_time_zone(settings: Settings) -> None:
    """A naive time in a Nairobi photo is read as EAT (UTC+3), and the inference is stated."""
    meta = _metadata(datetime_original="2025-03-20T14:05:00", gps=_gps())
    result = _run(settings, meta)
    assert result.geolocation["capture_time"] == "2025-03-20T11:05:00+00:00"
    assert result.geolocation["capture_time_source"] == "gps-timezone-inferred"
    assert "Africa/Nairobi" in result.geolocation["capture_time_inference"]


def test_gps_time_is_used_when_exif_time_is_missing(settings: Settings) -> None:
    """GPS time (UTC) stands in when there is no DateTimeOriginal."""
    meta = _metadata(gps=_gps(time_utc="2025-03-20T11:05:00+00:00"))
    result = _run(settings, meta)
    assert result.geolocation["capture_time_source"] == "gps-time"


def test_video_container_time_is_used_without_exif(settings: Settings) -> None:
    """A QuickTime creation time (UTC) dates a video without EXIF."""
    meta = _metadata(container_creation_time="2025-03-20T11:05:00+00:00")
    result = _run(settings, meta, kind="video")
    assert result.geolocation["capture_time_source"] == "container"


def test_naive_exif_time_without_position_has_fourteen_hours_slack(settings: Settings) -> None:
    """Without offset or position, a 13 h gap to the claim is within tolerance."""
    meta = _metadata(datetime_original="2025-03-20T14:00:00")
    claim = _claims(time=datetime(2025, 3, 19, 1, 0, tzinfo=UTC))  # 37 h = 24 h + 13 h slack
    result = _run(settings, meta, claim)
    assert result.geolocation["capture_time_source"] == "exif-naive"
    assert result.geolocation["capture_time_slack_hours"] == 14.0
    assert "time-matches-claim" in _codes(result)


def test_capture_long_before_claimed_time_contradicts_claim(settings: Settings) -> None:
    """Three days between capture and claim is critical; the message gives hours."""
    meta = _metadata(datetime_original="2025-03-17T11:00:00+00:00")
    result = _run(settings, meta, _claims(time=datetime(2025, 3, 20, 11, 0, tzinfo=UTC)))
    finding = _finding(result, "time-contradicts-claim")
    assert finding.severity == "critical"
    assert "72.0 h" in finding.message


def test_capture_near_claimed_time_matches_claim(settings: Settings) -> None:
    """Two hours apart is within the 24 h tolerance."""
    meta = _metadata(datetime_original="2025-03-20T13:00:00+00:00")
    result = _run(settings, meta, _claims(time=datetime(2025, 3, 20, 11, 0, tzinfo=UTC)))
    assert "time-matches-claim" in _codes(result)


def test_capture_after_submission_is_in_the_future(settings: Settings) -> None:
    """A capture time a day after the submission is critical."""
    meta = _metadata(datetime_original="2025-04-02T12:00:00+00:00")
    result = _run(settings, meta)
    assert _finding(result, "capture-time-in-future").severity == "critical"


def test_capture_minutes_after_submission_is_clock_drift_not_future(settings: Settings) -> None:
    """A clock two minutes fast is within the grace period."""
    meta = _metadata(datetime_original="2025-04-01T12:02:00+00:00")
    assert "capture-time-in-future" not in _codes(_run(settings, meta))


@pytest.mark.parametrize(
    "overrides",
    [
        {"datetime_original_raw": "0000:00:00 00:00:00"},
        {
            "datetime_original": "1970-01-01T00:00:00",
            "datetime_original_raw": "1970:01:01 00:00:00",
        },
        {"datetime_original": "1980-01-01T00:00:00"},
        {"datetime_original": "2000-01-01T00:00:00+09:00"},
        {"container_creation_time": "1904-01-01T00:00:00+00:00"},
    ],
    ids=["zeros", "unix-epoch", "1980-default", "2000-default", "quicktime-epoch"],
)
def test_camera_default_date_is_a_placeholder(settings: Settings, overrides: dict) -> None:
    """Placeholder dates are flagged and not used as the capture time."""
    result = _run(settings, _metadata(**overrides))
    assert _finding(result, "placeholder-date").severity == "warning"
    assert result.geolocation["capture_time"] is None
    assert "no-capture-time" in _codes(result)


def test_exif_and_gps_times_disagreeing_are_flagged(settings: Settings) -> None:
    """A camera clock 2 h off the GPS time (after the offset) is a warning."""
    meta = _metadata(
        datetime_original="2025-03-20T14:05:00+03:00",
        gps=_gps(time_utc="2025-03-20T09:05:00+00:00"),
    )
    finding = _finding(_run(settings, meta), "exif-gps-time-disagree")
    assert finding.evidence["minutes"] == 120.0


def test_exif_and_gps_times_agreeing_are_not_flagged(settings: Settings) -> None:
    """A naive time localised to EAT agrees with GPS time within a minute."""
    meta = _metadata(
        datetime_original="2025-03-20T14:05:00", gps=_gps(time_utc="2025-03-20T11:05:40Z")
    )
    assert "exif-gps-time-disagree" not in _codes(_run(settings, meta))


def test_file_modified_by_editor_after_capture_is_flagged(settings: Settings) -> None:
    """ModifyDate a day after capture with Photoshop in Software is a warning."""
    meta = _metadata(
        software="Adobe Photoshop 25.0 (Windows)",
        datetime_original="2025-03-20T14:05:00",
        modify_date="2025-03-21T09:00:00",
    )
    assert "modified-after-capture" in _codes(_run(settings, meta))


def test_camera_modify_date_equal_to_capture_is_not_modification(settings: Settings) -> None:
    """Cameras write ModifyDate = DateTimeOriginal; firmware is not an editor."""
    meta = _metadata(datetime_original="2025-03-20T14:05:00", modify_date="2025-03-20T14:05:00")
    assert "modified-after-capture" not in _codes(_run(settings, meta))


def test_file_without_any_time_reports_no_capture_time(settings: Settings) -> None:
    """No date field at all gives an info finding."""
    result = _run(settings, _metadata())
    assert _finding(result, "no-capture-time").severity == "info"


# --- day / night -----------------------------------------------------------------------------


def test_bright_image_at_night_is_implausible(settings: Settings) -> None:
    """A bright frame at 23:00 in Nairobi (sun far below) is a warning."""
    meta = _metadata(datetime_original="2025-03-20T23:00:00+03:00", gps=_gps())
    result = _run(settings, meta, mean_brightness=180.0)
    finding = _finding(result, "daylight-implausible")
    assert finding.evidence["place_basis"] == "observed"
    assert result.geolocation["sun_elevation"] < -12


def test_dark_image_at_noon_at_claimed_place_is_implausible(settings: Settings) -> None:
    """Without GPS or time in the file, the claimed place and time are used."""
    claim = _claims(lat=NAIROBI[0], lon=NAIROBI[1], time=datetime(2025, 3, 20, 9, 30, tzinfo=UTC))
    result = _run(settings, _metadata(), claim, mean_brightness=10.0)
    finding = _finding(result, "daylight-implausible")
    assert (finding.evidence["place_basis"], finding.evidence["time_basis"]) == (
        "claimed",
        "claimed",
    )


def test_brightness_is_measured_from_the_thumbnail(settings: Settings) -> None:
    """A white thumbnail JPEG at night is implausible without a mean_brightness argument."""
    buffer = io.BytesIO()
    Image.new("RGB", (160, 120), (250, 250, 250)).save(buffer, "JPEG")
    meta = _metadata(datetime_original="2025-03-20T23:00:00+03:00", gps=_gps())
    result = _run(settings, meta, thumbnail=buffer.getvalue())
    assert "daylight-implausible" in _codes(result)


def test_daylight_check_is_skipped_without_place(settings: Settings) -> None:
    """Unknown place: no sun elevation and no finding."""
    meta = _metadata(datetime_original="2025-03-20T23:00:00+03:00")
    result = _run(settings, meta, mean_brightness=250.0)
    assert result.geolocation["sun_elevation"] is None
    assert "daylight-implausible" not in _codes(result)


# --- editing and provenance ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("software", "Adobe Photoshop Lightroom Classic 13.1 (Windows)"),
        ("software", "GIMP 2.10.36"),
        ("software", "Snapseed 2.0"),
        ("creator_tool", "Affinity Photo 2"),
        ("history", "saved by PicsArt"),
        ("software", "Canva"),
        ("software", "FaceApp"),
    ],
)
def test_editing_application_in_metadata_is_flagged(
    settings: Settings, field: str, value: str
) -> None:
    """Software, XMP CreatorTool or XMP history naming an editor gives a warning."""
    xmp = {"present": True, "creator_tool": None, "history": []}
    meta = _metadata()
    if field == "software":
        meta["software"] = value
    elif field == "creator_tool":
        meta["xmp"] = {**xmp, "creator_tool": value}
    else:
        meta["xmp"] = {**xmp, "history": [value]}
    assert _finding(_run(settings, meta), "editing-software").severity == "warning"


@pytest.mark.parametrize(
    "software",
    ["Ver.1.01", "HDR+ 1.0.612318852z", "17.4.1", "Firmware Version 1.0.2", "Canvas 4K camera"],
)
def test_camera_firmware_is_not_an_editor(settings: Settings, software: str) -> None:
    """Camera firmware strings do not count as editing software."""
    assert "editing-software" not in _codes(_run(settings, _metadata(software=software)))


def test_thumbnail_of_another_picture_differs(settings: Settings) -> None:
    """A thumbnail whose PDQ is far from the image's in every orientation is a warning."""
    perceptual = {"pdq": HASH_A, "pdq_dihedral": [HASH_A] * 8}
    result = _run(settings, _metadata(thumbnail_pdq=HASH_B), perceptual=perceptual)
    assert _finding(result, "thumbnail-differs").evidence["pdq_distance"] == 256


def test_unrotated_thumbnail_is_not_reported_as_different(settings: Settings) -> None:
    """A thumbnail matching one of the dihedral hashes (stored unrotated) is fine."""
    perceptual = {"pdq": HASH_A, "pdq_dihedral": [HASH_A, HASH_B, *[HASH_A] * 6]}
    result = _run(settings, _metadata(thumbnail_pdq=HASH_B), perceptual=perceptual)
    assert "thumbnail-differs" not in _codes(result)


def test_stripped_metadata_is_info_only(settings: Settings) -> None:
    """Messaging apps strip metadata: an info finding, not a warning."""
    result = _run(settings, _metadata(metadata_stripped=True))
    assert _finding(result, "metadata-stripped").severity == "info"


def test_extension_mismatch_is_reported(settings: Settings) -> None:
    """The media step's extension verdict becomes a warning."""
    result = _run(settings, _metadata(), extension_mismatch=True)
    assert _finding(result, "extension-mismatch").severity == "warning"


def test_valid_c2pa_manifest_is_reported_with_signer(settings: Settings) -> None:
    """A C2PA summary passed in becomes an info finding with signer and state."""
    c2pa = {"present": True, "signer": "Example News", "validation_state": "valid"}
    finding = _finding(_run(settings, _metadata(), c2pa=c2pa), "c2pa-manifest")
    assert finding.evidence["signer"] == "Example News"


def test_invalid_c2pa_manifest_is_a_warning(settings: Settings) -> None:
    """A manifest that failed validation is a warning."""
    c2pa = {"present": True, "signer": "Example News", "validation_state": "invalid"}
    result = _run(settings, _metadata(), c2pa=c2pa)
    assert _finding(result, "c2pa-manifest-invalid").severity == "warning"


def test_no_c2pa_reading_says_nothing(settings: Settings) -> None:
    """Without a C2PA reading no C2PA finding is made."""
    assert not any(code.startswith("c2pa") for code in _codes(_run(settings, _metadata())))


# --- contract --------------------------------------------------------------------------------


def test_naive_submission_time_is_refused(settings: Settings) -> None:
    """submitted_at without an offset is a caller error."""
    with pytest.raises(ValueError, match="timezone-aware"):
        run_checks({}, {}, {}, None, datetime(2025, 1, 1), settings)


def test_result_is_json_ready(settings: Settings) -> None:
    """CheckResult.to_dict gives plain JSON types."""
    import json

    meta = _metadata(datetime_original="2025-03-20T14:05:00", gps=_gps())
    data = _run(settings, meta, _claims(lat=MOMBASA[0], lon=MOMBASA[1])).to_dict()
    assert json.loads(json.dumps(data)) == data


def test_every_finding_code_has_a_test() -> None:
    """Each code in FINDING_CODES is asserted in a unit test (by its quoted name)."""
    text = "".join(path.read_text() for path in Path(__file__).parent.glob("test_*.py"))
    missing = [code for code in FINDING_CODES if f'"{code}"' not in text]
    assert missing == []


class _Emissions(ast.NodeVisitor):
    """Finding codes constructed in one module, found by reading its source (never running it).

    A finding is made by ``Finding(code, severity, ...)`` (or ``Finding(code=...)``) or by a
    helper that passes one of its own parameters on as the code (``_gps_finding(code, ...)``,
    ``ctx.add(code, ...)``): such helpers are learnt from their bodies, so a new helper is
    followed without listing it here. A code must be a literal, an ``a if c else b`` of
    literals, or a local variable assigned those; anything else is reported as unresolved.
    """

    def __init__(self, module: str, helpers: dict[str, tuple[int, str | None]]) -> None:
        self.module, self.helpers = module, helpers
        self.codes: dict[str, list[str]] = {}
        self.severities: list[tuple[str, str, str]] = []  # (code, literal severity, where)
        self.unresolved: list[str] = []
        self.new_helpers: dict[str, tuple[int, str | None]] = {}
        self._function: ast.FunctionDef | None = None
        self._in_class = False

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        outer, self._in_class = self._in_class, True
        self.generic_visit(node)
        self._in_class = outer

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        outer, self._function = self._function, node
        self.generic_visit(node)
        self._function = outer

    def visit_Call(self, node: ast.Call) -> None:
        self.generic_visit(node)
        func = node.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
        helper = self.helpers.get(name or "")
        if helper is None:
            return
        index, owner = helper  # owner: the package of a method helper (ctx.add), called there
        in_package = owner is not None and self.module.startswith(owner + "/")
        if owner is not None and (not in_package or not isinstance(func, ast.Attribute)):
            return
        where = f"{self.module}:{node.lineno}"
        arg = node.args[index] if len(node.args) > index else None
        arg = next((k.value for k in node.keywords if k.arg == "code"), arg)
        if arg is None:
            self.unresolved.append(where)
            return
        parameter = self._parameter_index(arg)
        if parameter is not None:  # a helper handing its own parameter on: learn it
            assert self._function is not None
            owner = self.module.rsplit("/", 1)[0] if self._in_class else None
            self.new_helpers[self._function.name] = (parameter, owner)
            return
        codes = self._resolve(arg)
        if not codes:
            self.unresolved.append(where)
        for code in codes:
            self.codes.setdefault(code, []).append(where)
        if name != "Finding":  # helpers take the severity from the catalogue
            return
        severity = node.args[1] if len(node.args) > 1 else None
        severity = next((k.value for k in node.keywords if k.arg == "severity"), severity)
        if isinstance(severity, ast.Constant) and isinstance(severity.value, str):
            self.severities += [(code, severity.value, where) for code in codes]

    def _parameter_index(self, arg: ast.expr) -> int | None:
        if self._function is None or not isinstance(arg, ast.Name):
            return None
        names = [a.arg for a in self._function.args.args]
        if arg.id not in names:
            return None
        index = names.index(arg.id)
        return index - 1 if self._in_class and names[0] == "self" else index

    def _resolve(self, node: ast.expr) -> list[str]:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return [node.value]
        if isinstance(node, ast.IfExp):
            body, orelse = self._resolve(node.body), self._resolve(node.orelse)
            return body + orelse if body and orelse else []
        if isinstance(node, ast.Name) and self._function is not None:
            values = [
                statement.value
                for statement in ast.walk(self._function)
                if isinstance(statement, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == node.id for t in statement.targets)
            ]
            resolved = [self._resolve(value) for value in values]
            return [code for codes in resolved for code in codes] if all(resolved) else []
        return []


def _emitted_finding_codes() -> _Emissions:
    """Every finding code constructed under verification/, with where; helpers to a fixpoint."""
    trees = {
        path.relative_to(ROOT).as_posix(): ast.parse(path.read_text(encoding="utf-8"))
        for path in sorted((ROOT / "verification").rglob("*.py"))
    }
    helpers: dict[str, tuple[int, str | None]] = {"Finding": (0, None)}
    while True:
        total = _Emissions("", {})
        for module, tree in trees.items():
            visitor = _Emissions(module, helpers)
            visitor.visit(tree)
            for code, where in visitor.codes.items():
                total.codes.setdefault(code, []).extend(where)
            total.severities += visitor.severities
            total.unresolved += visitor.unresolved
            total.new_helpers.update(visitor.new_helpers)
        if total.new_helpers.keys() <= helpers.keys():
            return total
        helpers.update(total.new_helpers)


def test_scanner_finds_the_codes_made_through_helpers() -> None:
    """Control: codes made directly, via unreadable(), _gps_finding() and ctx.add() are seen."""
    emitted = _emitted_finding_codes().codes
    assert {"unreadable", "gps-null-island", "location-matches-claim", "near-duplicate"} <= set(
        emitted
    )
    assert any(where.startswith("verification/pipeline/") for where in emitted["unreadable"])


def test_every_emitted_finding_code_is_in_the_catalogue() -> None:
    """Each code any module under verification/ can emit is in FINDING_CODES (and the docs)."""
    emitted = _emitted_finding_codes()
    assert emitted.unresolved == [], "finding codes that are not literals"
    missing = {code: where for code, where in emitted.codes.items() if code not in FINDING_CODES}
    assert missing == {}, "emitted but not in FINDING_CODES"


def test_every_catalogued_finding_code_is_emitted_somewhere() -> None:
    """FINDING_CODES holds no code that nothing under verification/ emits."""
    emitted = _emitted_finding_codes().codes
    assert [code for code in FINDING_CODES if code not in emitted] == []


def test_literal_severities_agree_with_the_catalogue() -> None:
    """Finding("code", "severity", ...) written out by hand uses the catalogue's severity."""
    wrong = [
        (code, severity, where)
        for code, severity, where in _emitted_finding_codes().severities
        if code in FINDING_CODES and FINDING_CODES[code][0] != severity
    ]
    assert wrong == []


def test_every_code_has_severity_description_and_action() -> None:
    """The public contract is complete for every code."""
    for code, (severity, meaning, action) in FINDING_CODES.items():
        assert severity in ("info", "warning", "critical"), code
        assert meaning and action, code


def test_committed_findings_doc_matches_the_codes() -> None:
    """docs/findings.md equals render_findings_doc(); regenerate it when codes change."""
    committed = (ROOT / "docs" / "findings.md").read_text(encoding="utf-8")
    assert committed == render_findings_doc()


def test_thresholds_are_declared_once() -> None:
    """The descriptions quote the module constants they depend on."""
    assert str(checks.THUMBNAIL_PDQ_THRESHOLD) in FINDING_CODES["thumbnail-differs"][1]
