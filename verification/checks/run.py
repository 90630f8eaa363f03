"""Claimed-vs-observed checks: place, time, day/night, editing and provenance.

Pure functions over what the media step extracted. The result is a set of findings (signals
for an analyst, never verdicts) and a geolocation summary for the verification record.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from verification.checks import geo
from verification.checks.base import CaptureTime, CheckContext, CheckResult, Position
from verification.checks.catalogue import (
    BRIGHT_MEAN,
    DARK_MEAN,
    DAY_SUN_DEG,
    NIGHT_SUN_DEG,
    THUMBNAIL_PDQ_THRESHOLD,
)
from verification.checks.editors import editor_name
from verification.checks.timing import check_time
from verification.core.findings import Finding
from verification.media.gps import usable_position, validate_gps

if TYPE_CHECKING:
    from verification.core.claims import Claims
    from verification.core.config import AnalysisOptions as Settings

logger = logging.getLogger(__name__)


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
    ctx = CheckContext(settings, readable=media.get("readable") is not False)
    observed = _check_place(ctx, metadata, claims)
    capture = check_time(ctx, media, metadata, claims, submitted_at, observed)
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
    ctx: CheckContext, metadata: Mapping[str, Any], claims: Claims | None
) -> Position | None:
    gps = metadata.get("gps")
    ctx.findings.extend(validate_gps(gps))
    position = usable_position(gps)
    observed = Position(*position) if position else None
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


def _observed_dict(position: Position, gps: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "lat": position.lat,
        "lon": position.lon,
        "alt": gps.get("alt"),
        "source": gps.get("source"),
    }


def _claimed_position(claims: Claims | None) -> Position | None:
    if claims is None or claims.lat is None or claims.lon is None:
        return None
    return Position(claims.lat, claims.lon)


def _compare_place(ctx: CheckContext, observed: Position, claimed: Position) -> None:
    km = geo.distance_km((observed.lat, observed.lon), (claimed.lat, claimed.lon))
    ctx.geolocation["distance_km"] = round(km, 3)
    threshold = ctx.settings.distance_threshold_km
    evidence = {"distance_km": round(km, 3), "threshold_km": threshold}
    code = "location-contradicts-claim" if km > threshold else "location-matches-claim"
    ctx.add(code, f"The file's GPS position is {km:.1f} km from the claimed place.", **evidence)


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
    ctx: CheckContext,
    brightness: float | None,
    observed: Position | None,
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


def _check_editing(ctx: CheckContext, metadata: Mapping[str, Any]) -> None:
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
    ctx: CheckContext,
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


def _check_thumbnail(ctx: CheckContext, thumb: Any, perceptual: Mapping[str, Any]) -> None:
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


def _check_c2pa(ctx: CheckContext, c2pa: Mapping[str, Any] | None) -> None:
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
