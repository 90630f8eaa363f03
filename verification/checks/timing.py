"""Capture time: resolve it (EXIF offset, GPS time zone, GPS clock, container) and compare it
with the claim, the submission time and the file's own dates."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from verification.checks.base import CaptureTime, CheckContext, Position
from verification.checks.catalogue import (
    FUTURE_GRACE,
    GPS_TIME_DISAGREE_MINUTES,
    UNKNOWN_OFFSET_SLACK_HOURS,
)
from verification.checks.editors import editor_name

if TYPE_CHECKING:
    from verification.core.claims import Claims


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


def _dates(ctx: CheckContext, metadata: Mapping[str, Any]) -> dict[str, datetime]:
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


def check_time(
    ctx: CheckContext,
    media: Mapping[str, Any],
    metadata: Mapping[str, Any],
    claims: Claims | None,
    submitted_at: datetime,
    observed: Position | None,
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


def _check_gps_time(ctx: CheckContext, capture: CaptureTime, dates: Mapping[str, datetime]) -> None:
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


def _check_future(ctx: CheckContext, capture: CaptureTime, submitted_at: datetime) -> None:
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


def _compare_time(ctx: CheckContext, capture: CaptureTime, claimed: datetime) -> None:
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
    ctx: CheckContext, metadata: Mapping[str, Any], dates: Mapping[str, datetime]
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
