"""Claimed-vs-observed checks: place, time, day/night, editing and provenance.

Pure functions over what the media step extracted. The result is a set of findings (signals
for an analyst, never verdicts) and a geolocation summary for the verification record.
Finding codes are a public contract: each is declared once in :data:`FINDING_CODES`, and
docs/findings.md is generated from it by :func:`render_findings_doc`.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from verification import geo
from verification.findings import Finding, Severity

if TYPE_CHECKING:
    from verification.claims import Claims
    from verification.config import AnalysisOptions as Settings

logger = logging.getLogger(__name__)

UNKNOWN_OFFSET_SLACK_HOURS = 14.0  # UTC-12 .. UTC+14: any offset a naive clock may be in
GPS_TIME_DISAGREE_MINUTES = 10.0
FUTURE_GRACE = timedelta(minutes=5)  # device clocks drift; a few minutes fast is not a finding
THUMBNAIL_PDQ_THRESHOLD = 40
BRIGHT_MEAN, DARK_MEAN = 120.0, 25.0
NIGHT_SUN_DEG, DAY_SUN_DEG = -12.0, 20.0  # nautical dusk; sun well above the horizon

# code -> (severity, what it means, what the analyst should do)
FINDING_CODES: dict[str, tuple[Severity, str, str]] = {
    # Emitted by the extract and record steps (verification/media, verification/pipeline.py):
    # declared here so that this catalogue, and docs/findings.md, cover every code.
    "unreadable": (
        "warning",
        "The file, or one part of it (stage in the evidence: exif, decode, container ...), "
        "could not be read; the item's status becomes 'unreadable'.",
        "Open the original with another tool (exiftool, ffprobe); a truncated or corrupt "
        "upload may need to be submitted again.",
    ),
    "embedded_thumbnail_unreadable": (
        "info",
        "The EXIF thumbnail could not be decoded, so it was not compared with the image.",
        "None usually; compare the thumbnail by hand (exiftool -b -ThumbnailImage) if editing "
        "is suspected.",
    ),
    "claims-invalid": (
        "warning",
        "The submitter's claims (object metadata or .claims.json sidecar) could not be read; "
        "claimed place and time are left out of the checks.",
        "Ask the submitter for the claims again; fix the sidecar and resubmit.",
    ),
    "exact-duplicate": (
        "warning",
        "The same bytes (same SHA-256) were submitted more than once; all submissions are in "
        "the evidence.",
        "Compare the submissions' claims: the same file told as different events is a signal.",
    ),
    "near-duplicate": (
        "warning",
        "The item looks like other items (perceptual hash distance within the threshold); the "
        "earliest copy, and whether it is older than this submission, are in the evidence.",
        "Compare with the earliest copy: an older copy suggests recycled content.",
    ),
    **geo.GPS_FINDING_CODES,
    "location-contradicts-claim": (
        "critical",
        "The file's GPS position is farther from the claimed place than the configured "
        "threshold (distance_threshold_km).",
        "Geolocate the content visually; check whether the device could have kept a stale fix "
        "or whether the file was re-shared from elsewhere.",
    ),
    "location-matches-claim": (
        "info",
        "The file's GPS position is within the threshold of the claimed place.",
        "None; embedded GPS can be edited, so corroborate with visual geolocation.",
    ),
    "no-location-in-file": (
        "info",
        "The file carries no usable GPS position (common: most apps strip it).",
        "Geolocate the content visually if the place matters.",
    ),
    "time-contradicts-claim": (
        "critical",
        "The capture time differs from the claimed time by more than the tolerance "
        "(time_tolerance_hours), after allowing for an unknown UTC offset when there is one.",
        "Check the device clock (other files from the same source), the time-zone inference, "
        "and whether the content predates the claimed event.",
    ),
    "time-matches-claim": (
        "info",
        "The capture time is within the tolerance of the claimed time.",
        "None; capture times can be edited, so corroborate (shadows, weather, other sources).",
    ),
    "capture-time-in-future": (
        "critical",
        "The capture time is later than the moment the file was submitted.",
        "The device clock was wrong or the metadata was edited; do not rely on the capture time.",
    ),
    "placeholder-date": (
        "warning",
        "A date field holds a placeholder (0000:00:00, the Unix epoch, or a camera default such "
        "as 1980-01-01/2000-01-01 00:00:00, or the QuickTime epoch 1904-01-01); it is ignored.",
        "Treat the capture time as unknown; the device clock was probably never set.",
    ),
    "exif-gps-time-disagree": (
        "warning",
        f"The camera clock and the GPS time differ by more than {GPS_TIME_DISAGREE_MINUTES:.0f} "
        "minutes after correcting for the UTC offset.",
        "The camera clock or the inferred time zone may be wrong, or the GPS fix is stale; "
        "prefer the GPS time if the fix is fresh.",
    ),
    "modified-after-capture": (
        "warning",
        "The file's modification date is later than its capture date and the software tag "
        "names an editing application.",
        "Ask the submitter for the camera original; compare with other copies.",
    ),
    "no-capture-time": (
        "info",
        "No usable capture time in the file.",
        "Establish the time from content (shadows, weather, events) or other sources.",
    ),
    "daylight-implausible": (
        "warning",
        f"The image is bright (mean > {BRIGHT_MEAN:.0f}) while the sun was below "
        f"{NIGHT_SUN_DEG:.0f}° at the place and time used, or dark (mean < {DARK_MEAN:.0f}) "
        f"while the sun was above {DAY_SUN_DEG:.0f}°.",
        "Check whether it is indoors, artificial light or an exposure effect; otherwise the "
        "place or time (observed or claimed) is doubtful.",
    ),
    "editing-software": (
        "warning",
        "The Software tag or XMP CreatorTool/history names an editing application.",
        "Editing is not falsification (crops, exposure); ask for the original and compare.",
    ),
    "thumbnail-differs": (
        "warning",
        f"The embedded EXIF thumbnail differs from the main image (PDQ distance > "
        f"{THUMBNAIL_PDQ_THRESHOLD}, in every orientation): the image may have been edited "
        "without regenerating the thumbnail.",
        "Extract the thumbnail (exiftool -b -ThumbnailImage) and compare it with the image.",
    ),
    "metadata-stripped": (
        "info",
        "The file carries almost no metadata, typical of messaging apps and social networks; "
        "not suspicious in itself.",
        "Look for an earlier copy with metadata (ask the submitter, reverse image search).",
    ),
    "extension-mismatch": (
        "warning",
        "The file name's extension does not match the format detected from its bytes.",
        "Usually a renamed or re-exported file; note it and check the file's history.",
    ),
    "image-too-large": (
        "warning",
        "The image was not decoded: decoding it would take more memory than the decode budget "
        "(estimated from its size, mode and bit depth) or it has more pixels than "
        "max_image_pixels. Its metadata was read; there are no perceptual hashes, thumbnail or "
        "brightness for it.",
        "Open the preserved original on a workstation with enough memory; a small file with "
        "huge dimensions is a decompression bomb.",
    ),
    "metadata-malformed": (
        "warning",
        "The EXIF structure is malformed (an IFD loop, an offset outside the EXIF block, a "
        "pointer of the wrong type, or a parser failure); values read through the malformed "
        "part are not used. The image itself was analysed.",
        "Read the metadata with another tool (exiftool -validate -warning) and treat what the "
        "file claims with caution; cameras and editors do not write such structures.",
    ),
    "c2pa-manifest": (
        "info",
        "The file carries a C2PA (Content Credentials) manifest that the SDK read; the message "
        "says whether it is intact with a signer on no configured trust list ('valid') or "
        "signed by a trusted signer ('trusted'); signer and validation codes are in the "
        "evidence.",
        "Inspect the manifest (c2patool) to read its claimed history; an untrusted signer's "
        "identity is not vouched for by anyone.",
    ),
    "c2pa-manifest-invalid": (
        "warning",
        "The file carries a C2PA manifest (found in its container: JPEG APP11, PNG caBX, "
        "ISO BMFF uuid box, RIFF C2PA chunk, TIFF tag, GIF extension) that did not validate "
        "(changed after signing, a broken signature) or that the SDK could not read (corrupt, "
        "an unknown algorithm, prerelease content); the SDK's error text is in the evidence.",
        "Inspect the manifest's validation errors (c2patool); the file changed after signing, "
        "the credentials are forged, or the manifest was made by a tool the SDK does not know.",
    ),
    "c2pa-manifest-remote": (
        "info",
        "The file points to a C2PA manifest kept online (XMP dcterms:provenance); it was not "
        "fetched (offline by design), so nothing about it is validated. The URL is in the "
        "evidence.",
        "Fetching it tells the URL's owner that someone is examining this file: do so only "
        "from a machine and network that may be seen, then validate it with c2patool.",
    ),
}

# Case-insensitive names of editing applications as they appear in Software / CreatorTool /
# XMP history. Camera firmware strings ("Ver.1.01", "HDR+ 1.0", "17.1.2") never match.
_EDITORS: tuple[tuple[str, str], ...] = (
    ("Photoshop", r"photoshop"),
    ("Lightroom", r"lightroom"),
    ("Adobe Express", r"adobe express"),
    ("Adobe Premiere", r"premiere (?:pro|rush)"),
    ("After Effects", r"after effects"),
    ("GIMP", r"\bgimp\b"),
    ("Snapseed", r"snapseed"),
    ("Affinity Photo", r"\baffinity\b"),
    ("Pixelmator", r"pixelmator"),
    ("PicsArt", r"picsart"),
    ("Canva", r"\bcanva\b"),
    ("FaceApp", r"faceapp"),
    ("Facetune", r"facetune"),
    ("Paint.NET", r"paint\.net"),
    ("PhotoScape", r"photoscape"),
    ("Luminar", r"\bluminar\b"),
    ("Capture One", r"capture one"),
    ("DxO", r"\bdxo\b"),
    ("darktable", r"darktable"),
    ("RawTherapee", r"rawtherapee"),
    ("PaintShop Pro", r"paintshop"),
    ("Fotor", r"\bfotor\b"),
    ("VSCO", r"\bvsco\b"),
    ("Meitu", r"\bmeitu\b"),
    ("Remini", r"\bremini\b"),
    ("Photopea", r"photopea"),
    ("Krita", r"\bkrita\b"),
    ("Picasa", r"picasa"),
    ("PhotoDirector", r"photodirector"),
    ("Lensa", r"\blensa\b"),
    ("CapCut", r"capcut"),
    ("InShot", r"\binshot\b"),
    ("KineMaster", r"kinemaster"),
    ("Filmora", r"filmora"),
    ("Final Cut", r"final cut"),
    ("DaVinci Resolve", r"davinci resolve"),
    ("iMovie", r"\bimovie\b"),
)
_EDITOR_PATTERNS = tuple((name, re.compile(rx, re.IGNORECASE)) for name, rx in _EDITORS)


@dataclass(frozen=True, slots=True)
class CheckResult:
    """Geolocation summary (JSON-ready dict) and the findings of the check step."""

    geolocation: dict[str, Any]
    findings: tuple[Finding, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "geolocation": self.geolocation,
            "findings": [f.to_dict() for f in self.findings],
        }


@dataclass(frozen=True, slots=True)
class CaptureTime:
    """Resolved capture time in UTC; ``slack_hours`` > 0 when the UTC offset is unknown."""

    when: datetime
    source: str  # exif-offset | gps-timezone-inferred | gps-time | container | exif-naive
    slack_hours: float = 0.0
    inference: str | None = None


@dataclass(frozen=True, slots=True)
class _Position:
    lat: float
    lon: float


@dataclass(slots=True)
class _Context:
    """Mutable scratch state of one run_checks call (never escapes it)."""

    settings: Settings
    readable: bool = True
    findings: list[Finding] = field(default_factory=list)
    geolocation: dict[str, Any] = field(default_factory=dict)

    def add(self, code: str, message: str, **evidence: Any) -> None:
        self.findings.append(Finding(code, FINDING_CODES[code][0], message, evidence))

    def add_absence(self, code: str, message: str) -> None:
        """A finding about something the file lacks; it says nothing if the file is unreadable."""
        if self.readable:
            self.add(code, message)


def run_checks(
    media: Mapping[str, Any] | None,
    metadata: Mapping[str, Any] | None,
    perceptual: Mapping[str, Any] | None,
    claims: Claims | None,
    submitted_at: datetime,
    settings: Settings,
    *,
    extension_mismatch: bool = False,
    mean_brightness: float | None = None,
    thumbnail: bytes | None = None,
    c2pa: Mapping[str, Any] | None = None,
) -> CheckResult:
    """Compare what the file says with what is claimed; return findings and a geolocation dict.

    When ``media["readable"]`` is False (the extract step could not read the file), findings
    about what the file lacks (no location, no capture time, stripped metadata) are left out:
    they would only restate that it is unreadable. What was read is still checked.
    ``thumbnail`` (JPEG bytes) is used for the day/night check only when ``mean_brightness``
    is not given. ``c2pa`` is the C2PA summary made by the extract step
    (:func:`verification.media.c2pa.read_c2pa`): ``{"present", "signer", "validation_state", ...}``
    or None.
    """
    if submitted_at.tzinfo is None:
        msg = "submitted_at must be timezone-aware"
        raise ValueError(msg)
    media, metadata, perceptual = media or {}, metadata or {}, perceptual or {}
    ctx = _Context(settings, readable=media.get("readable") is not False)
    observed = _check_place(ctx, metadata, claims)
    capture = _check_time(ctx, media, metadata, claims, submitted_at, observed)
    brightness = mean_brightness if mean_brightness is not None else _brightness(thumbnail)
    _check_daylight(ctx, brightness, observed, capture, claims)
    _check_editing(ctx, metadata)
    _check_provenance(ctx, metadata, perceptual, extension_mismatch, c2pa)
    logger.debug("checks produced %d findings: %s", len(ctx.findings), _codes(ctx.findings))
    return CheckResult(geolocation=ctx.geolocation, findings=tuple(ctx.findings))


def _codes(findings: Iterable[Finding]) -> str:
    return ",".join(f.code for f in findings)


# --- place -----------------------------------------------------------------------------------


def _check_place(
    ctx: _Context, metadata: Mapping[str, Any], claims: Claims | None
) -> _Position | None:
    gps = metadata.get("gps")
    ctx.findings.extend(geo.validate_gps(gps))
    position = geo.usable_position(gps)
    observed = _Position(*position) if position else None
    claimed = _claimed_position(claims)
    ctx.geolocation.update(
        observed=_observed_dict(observed, gps) if observed and gps else None,
        claimed={"lat": claimed.lat, "lon": claimed.lon} if claimed else None,
        place=None,
        timezone=None,
        distance_km=None,
    )
    if observed is None:
        reason = "absent" if gps is None else "unusable"
        ctx.add_absence("no-location-in-file", f"The file has no usable GPS position ({reason}).")
        return None
    place = geo.reverse_geocode(observed.lat, observed.lon, ctx.settings)
    ctx.geolocation["place"] = place.to_dict() if place else None
    ctx.geolocation["timezone"] = geo.timezone_at(observed.lat, observed.lon)
    if claimed is not None:
        _compare_place(ctx, observed, claimed)
    return observed


def _observed_dict(position: _Position, gps: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "lat": position.lat,
        "lon": position.lon,
        "alt": gps.get("alt"),
        "source": gps.get("source"),
    }


def _claimed_position(claims: Claims | None) -> _Position | None:
    if claims is None or claims.lat is None or claims.lon is None:
        return None
    return _Position(claims.lat, claims.lon)


def _compare_place(ctx: _Context, observed: _Position, claimed: _Position) -> None:
    km = geo.distance_km((observed.lat, observed.lon), (claimed.lat, claimed.lon))
    ctx.geolocation["distance_km"] = round(km, 3)
    threshold = ctx.settings.distance_threshold_km
    evidence = {"distance_km": round(km, 3), "threshold_km": threshold}
    code = "location-contradicts-claim" if km > threshold else "location-matches-claim"
    ctx.add(code, f"The file's GPS position is {km:.1f} km from the claimed place.", **evidence)


# --- time ------------------------------------------------------------------------------------


def _parse_iso(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None


def _placeholder_reason(value: datetime) -> str | None:
    """Why a parsed date is a placeholder, judged on its wall-clock value (offset ignored)."""
    wall = value.replace(tzinfo=None)
    if abs(wall - datetime(1970, 1, 1)) <= timedelta(hours=UNKNOWN_OFFSET_SLACK_HOURS):
        return "Unix epoch"
    if wall in (datetime(1980, 1, 1), datetime(2000, 1, 1)):
        return "camera default date"
    if wall.date() == datetime(1904, 1, 1).date():
        return "QuickTime epoch"
    return None


def _raw_is_placeholder(raw: Any) -> bool:
    if not isinstance(raw, str):
        return False
    return raw.strip().startswith(("0000:00:00", "0000-00-00", "    :  :"))


def _dates(ctx: _Context, metadata: Mapping[str, Any]) -> dict[str, datetime]:
    """Parsed date fields with placeholders removed (each placeholder becomes a finding)."""
    found: dict[str, datetime] = {}
    if _raw_is_placeholder(metadata.get("datetime_original_raw")):
        raw = str(metadata["datetime_original_raw"]).strip()
        ctx.add("placeholder-date", f"DateTimeOriginal is {raw!r}.", field="datetime_original")
    gps_time = (metadata.get("gps") or {}).get("time_utc")
    fields = {
        "datetime_original": metadata.get("datetime_original"),
        "create_date": metadata.get("create_date"),
        "modify_date": metadata.get("modify_date"),
        "container_creation_time": metadata.get("container_creation_time"),
        "gps_time_utc": gps_time,
    }
    for name, value in fields.items():
        parsed = _parse_iso(value)
        if parsed is None:
            continue
        reason = _placeholder_reason(parsed)
        if reason:
            message = f"{name} is {parsed.isoformat()}, a placeholder ({reason})."
            ctx.add("placeholder-date", message, field=name, value=parsed.isoformat())
            continue
        found[name] = parsed
    return found


def _as_utc(value: datetime) -> datetime:
    """Aware datetimes converted to UTC; naive ones taken as UTC (GPS and QuickTime times are)."""
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def resolve_capture_time(
    dates: Mapping[str, datetime], timezone: str | None, kind: str
) -> CaptureTime | None:
    """Best capture time from the parsed (placeholder-free) date fields, or None.

    Order: EXIF time with offset; naive EXIF time localised in the GPS position's time zone;
    GPS time; container creation time (videos); naive EXIF time with an unknown offset.
    """
    original = dates.get("datetime_original")
    if original is not None and original.tzinfo is not None:
        return CaptureTime(original.astimezone(UTC), "exif-offset")
    if original is not None and timezone:
        localised = _localise(original, timezone)
        if localised is not None:
            inference = (
                f"EXIF time has no UTC offset; interpreted in {timezone}, the time zone at the "
                "file's GPS position."
            )
            return CaptureTime(localised, "gps-timezone-inferred", inference=inference)
    if "gps_time_utc" in dates:
        return CaptureTime(_as_utc(dates["gps_time_utc"]), "gps-time")
    container = dates.get("container_creation_time")
    if container is not None and (kind == "video" or original is None):
        return CaptureTime(_as_utc(container), "container")
    if original is not None:
        inference = "EXIF time has no UTC offset and no position; compared with ±14 h slack."
        return CaptureTime(
            original.replace(tzinfo=UTC), "exif-naive", UNKNOWN_OFFSET_SLACK_HOURS, inference
        )
    return None


def _localise(naive: datetime, timezone: str) -> datetime | None:
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return None
    return naive.replace(tzinfo=zone).astimezone(UTC)


def _check_time(
    ctx: _Context,
    media: Mapping[str, Any],
    metadata: Mapping[str, Any],
    claims: Claims | None,
    submitted_at: datetime,
    observed: _Position | None,
) -> CaptureTime | None:
    dates = _dates(ctx, metadata)
    timezone = ctx.geolocation.get("timezone") if observed else None
    capture = resolve_capture_time(dates, timezone, str(media.get("kind", "unknown")))
    ctx.geolocation.update(
        capture_time=capture.when.isoformat() if capture else None,
        capture_time_source=capture.source if capture else None,
        capture_time_slack_hours=capture.slack_hours if capture else None,
        capture_time_inference=capture.inference if capture else None,
    )
    _check_modified(ctx, metadata, dates)
    if capture is None:
        ctx.add_absence("no-capture-time", "The file has no usable capture time.")
        return None
    _check_gps_time(ctx, capture, dates)
    _check_future(ctx, capture, submitted_at)
    if claims is not None and claims.time is not None:
        _compare_time(ctx, capture, claims.time)
    return capture


def _check_gps_time(ctx: _Context, capture: CaptureTime, dates: Mapping[str, datetime]) -> None:
    gps_time = dates.get("gps_time_utc")
    if gps_time is None or capture.source not in ("exif-offset", "gps-timezone-inferred"):
        return
    minutes = abs((capture.when - _as_utc(gps_time)).total_seconds()) / 60
    if minutes > GPS_TIME_DISAGREE_MINUTES:
        message = (
            f"Camera time ({capture.source}) and GPS time differ by {minutes:.0f} minutes "
            f"({minutes / 60:.1f} h)."
        )
        ctx.add(
            "exif-gps-time-disagree",
            message,
            minutes=round(minutes, 1),
            camera_time_source=capture.source,
        )


def _check_future(ctx: _Context, capture: CaptureTime, submitted_at: datetime) -> None:
    earliest = capture.when - timedelta(hours=capture.slack_hours)
    if earliest > submitted_at + FUTURE_GRACE:
        hours = (earliest - submitted_at).total_seconds() / 3600
        message = f"The capture time is {hours:.1f} h after the file was submitted."
        ctx.add(
            "capture-time-in-future",
            message,
            hours_after_submission=round(hours, 2),
            capture_time_source=capture.source,
        )


def _compare_time(ctx: _Context, capture: CaptureTime, claimed: datetime) -> None:
    hours = abs((capture.when - claimed.astimezone(UTC)).total_seconds()) / 3600
    beyond = max(0.0, hours - capture.slack_hours)
    tolerance = ctx.settings.time_tolerance_hours
    evidence = {
        "difference_hours": round(hours, 2),
        "slack_hours": capture.slack_hours,
        "tolerance_hours": tolerance,
        "capture_time_source": capture.source,
    }
    slack = f" (allowing ±{capture.slack_hours:.0f} h for an unknown offset)"
    note = slack if capture.slack_hours else ""
    code = "time-contradicts-claim" if beyond > tolerance else "time-matches-claim"
    ctx.add(code, f"The capture time is {hours:.1f} h from the claimed time{note}.", **evidence)


def _check_modified(
    ctx: _Context, metadata: Mapping[str, Any], dates: Mapping[str, datetime]
) -> None:
    original, modified = dates.get("datetime_original"), dates.get("modify_date")
    editor = editor_name(metadata.get("software"))
    if original is None or modified is None or editor is None:
        return
    if (original.tzinfo is None) != (modified.tzinfo is None):
        # Same camera clock: compare wall-clock values when only one carries an offset.
        original, modified = original.replace(tzinfo=None), modified.replace(tzinfo=None)
    if modified > original:
        hours = (modified - original).total_seconds() / 3600
        message = f"Modified {hours:.1f} h after capture by software naming {editor}."
        ctx.add("modified-after-capture", message, hours=round(hours, 2), editor=editor)


# --- day / night -----------------------------------------------------------------------------


def mean_brightness_of(jpeg: bytes) -> float | None:
    """Mean luma (0..255) of an encoded image, e.g. a thumbnail; None when it cannot be read."""
    from PIL import Image, ImageStat, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(jpeg)) as image:
            image.draft("L", (256, 256))  # JPEG DCT scaling: cheap on big inputs
            return float(ImageStat.Stat(image.convert("L")).mean[0])
    except (UnidentifiedImageError, OSError, ValueError):
        logger.warning("could not read the thumbnail to measure brightness")
        return None


def _brightness(thumbnail: bytes | None) -> float | None:
    return mean_brightness_of(thumbnail) if thumbnail else None


def _check_daylight(
    ctx: _Context,
    brightness: float | None,
    observed: _Position | None,
    capture: CaptureTime | None,
    claims: Claims | None,
) -> None:
    position, place_basis = observed, "observed"
    if position is None:
        position, place_basis = _claimed_position(claims), "claimed"
    when, time_basis = None, None
    if capture is not None and capture.slack_hours == 0:
        when, time_basis = capture.when, "capture"
    elif claims is not None and claims.time is not None:
        when, time_basis = claims.time.astimezone(UTC), "claimed"
    ctx.geolocation["sun_elevation"] = None
    if position is None or when is None:
        return
    elevation = round(geo.sun_elevation(position.lat, position.lon, when), 2)
    ctx.geolocation["sun_elevation"] = elevation
    ctx.geolocation["sun_basis"] = {"place": place_basis, "time": time_basis}
    if brightness is None:
        return
    night = brightness > BRIGHT_MEAN and elevation < NIGHT_SUN_DEG
    day = brightness < DARK_MEAN and elevation > DAY_SUN_DEG
    if night or day:
        state = "bright" if night else "dark"
        message = (
            f"The image is {state} (mean brightness {brightness:.0f}) but the sun was at "
            f"{elevation:.0f}° at the {place_basis} place and {time_basis} time."
        )
        ctx.add(
            "daylight-implausible",
            message,
            mean_brightness=round(brightness, 1),
            sun_elevation=elevation,
            place_basis=place_basis,
            time_basis=time_basis,
        )


# --- editing and provenance ------------------------------------------------------------------


def editor_name(text: Any) -> str | None:
    """Name of the editing application mentioned in a metadata string, or None."""
    if not isinstance(text, str) or not text.strip():
        return None
    return next((name for name, rx in _EDITOR_PATTERNS if rx.search(text)), None)


def _check_editing(ctx: _Context, metadata: Mapping[str, Any]) -> None:
    xmp = metadata.get("xmp") or {}
    sources: list[tuple[str, Any]] = [
        ("software", metadata.get("software")),
        ("xmp.creator_tool", xmp.get("creator_tool")),
    ]
    sources += [("xmp.history", entry) for entry in xmp.get("history") or ()]
    hits: dict[str, list[str]] = {}
    for where, text in sources:
        name = editor_name(text)
        if name is not None:
            hits.setdefault(name, [])
            if where not in hits[name]:
                hits[name].append(where)
    for name, fields in hits.items():
        message = f"{', '.join(fields)} names the editing application {name}."
        ctx.add("editing-software", message, editor=name, fields=fields)


def _check_provenance(
    ctx: _Context,
    metadata: Mapping[str, Any],
    perceptual: Mapping[str, Any],
    extension_mismatch: bool,
    c2pa: Mapping[str, Any] | None,
) -> None:
    _check_thumbnail(ctx, metadata.get("thumbnail_pdq"), perceptual)
    if metadata.get("metadata_stripped"):
        message = "The file carries almost no metadata (typical of messaging apps)."
        ctx.add_absence("metadata-stripped", message)
    if extension_mismatch:
        message = "The file name's extension does not match the detected format."
        ctx.add("extension-mismatch", message)
    _check_c2pa(ctx, c2pa)


def _check_thumbnail(ctx: _Context, thumb: Any, perceptual: Mapping[str, Any]) -> None:
    from verification.duplicates import PDQHash

    main = perceptual.get("pdq")
    if not thumb or not main:
        return
    try:
        thumb_hash = PDQHash.from_hex(thumb)
        # The thumbnail may be stored unrotated while the image is displayed rotated, so the
        # smallest distance over the image's eight dihedral hashes counts.
        candidates = [PDQHash.from_hex(h) for h in [main, *(perceptual.get("pdq_dihedral") or [])]]
    except ValueError:
        logger.warning("thumbnail check skipped: a PDQ hash is not 64 hex digits")
        return
    distance = min(thumb_hash - c for c in candidates)
    if distance > THUMBNAIL_PDQ_THRESHOLD:
        message = f"The embedded thumbnail differs from the image (PDQ distance {distance})."
        ctx.add("thumbnail-differs", message, pdq_distance=distance)


def _check_c2pa(ctx: _Context, c2pa: Mapping[str, Any] | None) -> None:
    # The summary is verification.media.c2pa.read_c2pa's (metadata["c2pa"]); without one, or
    # when the container holds no C2PA data (a file the SDK merely failed to parse), nothing
    # is said.
    if not c2pa or not c2pa.get("present", True):
        return
    state = _c2pa_state(c2pa)
    evidence = _c2pa_evidence(c2pa, state)
    if state == "not-fetched":
        url = str(c2pa.get("remote_url") or "an address the file does not state plainly")
        message = f"Remote manifest, not fetched (offline): the file points to {url[:200]}."
        ctx.add("c2pa-manifest-remote", message, **evidence)
    elif state == "unreadable":
        detail = c2pa.get("error_text") or c2pa.get("error")
        where = f" in its {c2pa['found_in']}" if c2pa.get("found_in") else ""
        message = f"The file carries a C2PA manifest{where} that could not be read: {detail}."
        ctx.add("c2pa-manifest-invalid", message, **evidence)
    elif state in ("invalid", "failed", "error"):
        signer = c2pa.get("signer") or "an unknown signer"
        codes = ", ".join(evidence["validation_errors"][:5]) or "no code given"
        message = f"C2PA manifest signed by {signer} did not validate ({codes})."
        ctx.add("c2pa-manifest-invalid", message, **evidence)
    else:
        ctx.add("c2pa-manifest", _c2pa_message(c2pa, state), **evidence)


def _c2pa_evidence(c2pa: Mapping[str, Any], state: str) -> dict[str, Any]:
    return {
        "signer": c2pa.get("signer"),
        "validation_state": state,
        "claim_generator": c2pa.get("claim_generator"),
        "validation_errors": [str(code) for code in c2pa.get("validation_errors") or []],
        "error": c2pa.get("error"),
        "error_text": c2pa.get("error_text"),
        "found_in": c2pa.get("found_in"),
        "remote_url": c2pa.get("remote_url"),
    }


def _c2pa_state(c2pa: Mapping[str, Any]) -> str:
    """The validation state, or why there is none: ``not-fetched`` (remote), ``unreadable``."""
    error = str(c2pa.get("error") or "")
    remote_kind = error.removeprefix("C2paError.") in ("Remote", "RemoteManifest")
    if error and not c2pa.get("found_in") and (c2pa.get("remote_url") or remote_kind):
        return "not-fetched"
    if error:
        return "unreadable"
    return str(c2pa.get("validation_state") or "unknown").lower()


def _c2pa_message(c2pa: Mapping[str, Any], state: str) -> str:
    signer = c2pa.get("signer") or "an unknown signer"
    if state == "valid":
        return (
            f"C2PA manifest signed by {signer}: intact, but the signer is not on a configured "
            "trust list, so who signed is not vouched for (validation state valid)."
        )
    if state == "trusted":
        return f"C2PA manifest signed by {signer}, on a configured trust list (trusted)."
    return f"C2PA manifest signed by {signer}; validation state {state}."


# --- documentation ---------------------------------------------------------------------------


def render_findings_doc() -> str:
    """Markdown for docs/findings.md, generated from :data:`FINDING_CODES`."""
    lines = [
        "# Findings",
        "",
        "<!-- Generated from verification/checks.py FINDING_CODES; do not edit by hand. Regenerate:",
        "python -c 'from verification.checks import render_findings_doc as r; "
        'open("docs/findings.md", "w").write(r())\' -->',
        "",
        "Findings are signals for an analyst, never verdicts. `critical` means a claim is "
        "contradicted, `warning` needs a look, `info` is context. An item's status is derived "
        "from its findings (`verification.findings.derive_status`).",
        "",
        "| Code | Severity | Meaning | What to do |",
        "| --- | --- | --- | --- |",
    ]
    for code, (severity, meaning, action) in FINDING_CODES.items():
        lines.append(f"| `{code}` | {severity} | {_cell(meaning)} | {_cell(action)} |")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")
