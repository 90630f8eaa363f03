"""Videos: stream facts and keyframes (PyAV seeking to keyframes, isolated in a child process)
and container metadata (our own bounded MP4/MOV box reader, no external binary).

The file is never read into memory: the child seeks to a few keyframes through the container's
index and decodes only those, and the box reader seeks over media data. A child that crashes or outlives ``settings.video_timeout`` is killed and
becomes an ``unreadable`` finding; the parent carries on with the next item.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import signal
import struct
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from verification.core.findings import Finding
from verification.core.formats import MIME
from verification.media import boxes, exif, gps
from verification.media._model import (
    JPEG_MIME,
    MEDIA_VERSION,
    Derivative,
    MediaAnalysis,
    empty_media,
    empty_metadata,
    empty_perceptual,
    unreadable,
)
from verification.media.c2pa import library_version, read_c2pa

if TYPE_CHECKING:
    from verification.core.config import AnalysisOptions as Settings

logger = logging.getLogger(__name__)

BOX_FORMATS = frozenset({"mp4", "mov"})
THUMBNAIL_PX = 512
_PACKAGE_ROOT = Path(__file__).resolve().parents[2]
_MAX_STDOUT = 1 << 20

# Container tag -> schema field, first match wins.
_TEXT_SOURCES: dict[str, tuple[str, ...]] = {
    "make": ("keys.com.apple.quicktime.make", "udta.\xa9mak", "ilst.\xa9mak"),
    "model": ("keys.com.apple.quicktime.model", "udta.\xa9mod", "ilst.\xa9mod"),
    "software": ("keys.com.apple.quicktime.software", "udta.\xa9swr", "ilst.\xa9swr"),
    "artist": ("keys.com.apple.quicktime.author", "udta.\xa9ART", "ilst.\xa9ART"),
    "copyright": ("keys.com.apple.quicktime.copyright", "udta.\xa9cpy", "ilst.\xa9cpy"),
}
_LOCATION_SOURCES = (
    "keys.com.apple.quicktime.location.ISO6709",
    "udta.\xa9xyz",
    "ilst.\xa9xyz",
    "udta.loci",
)
_CREATION_SOURCES = ("keys.com.apple.quicktime.creationdate", "udta.\xa9day", "ilst.\xa9day")


class WorkerResult:
    """The decoded child output, or the finding explaining why there is none."""

    def __init__(self, data: dict[str, Any] | None, finding: Finding | None) -> None:
        self.data = data or {}
        self.finding = finding


def run_worker(path: Path, out_dir: Path, settings: Settings) -> WorkerResult:
    """Run the decoder child with the configured timeout; kill it on timeout."""
    argv = [sys.executable, "-m", "verification.media.video_worker", str(path), str(out_dir)]
    argv.append(str(settings.keyframes))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_PACKAGE_ROOT), env.get("PYTHONPATH")]))
    process = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, start_new_session=True
    )
    try:
        stdout, _ = process.communicate(timeout=settings.video_timeout)
    except subprocess.TimeoutExpired:
        _kill(process)
        reason = f"video decoder timed out after {settings.video_timeout:g} s"
        return WorkerResult(None, unreadable("decode", "TimeoutExpired", reason))
    return _interpret(process.returncode, stdout)


def _kill(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.communicate()


def _interpret(returncode: int, stdout: bytes) -> WorkerResult:
    if returncode < 0:
        name = signal.Signals(-returncode).name
        reason = f"video decoder crashed (signal {name})"
        return WorkerResult(None, unreadable("decode", f"Signal{name}", reason))
    if returncode > 0:
        reason = f"video decoder failed (exit status {returncode})"
        return WorkerResult(None, unreadable("decode", "WorkerError", reason))
    try:
        data = json.loads(stdout[:_MAX_STDOUT])
    except ValueError:
        return WorkerResult(None, unreadable("decode", "WorkerOutput", "video decoder output bad"))
    error = data.get("error") if isinstance(data, dict) else "WorkerOutput"
    if error:
        reason = f"video could not be decoded ({error})"
        return WorkerResult(data, unreadable("decode", str(error), reason))
    return WorkerResult(data, None)


def read_container(path: Path, fmt: str) -> tuple[boxes.MovieInfo, list[Finding]]:
    """MP4/MOV container metadata; other containers get an empty result."""
    if fmt not in BOX_FORMATS:
        return boxes.MovieInfo(), []
    try:
        with path.open("rb") as fh:
            return boxes.read_movie(fh), []
    except (boxes.BoxError, OSError, struct.error, ValueError) as error:
        logger.info("container boxes unreadable: %s", type(error).__name__)
        reason = f"container metadata could not be read ({type(error).__name__})"
        return boxes.MovieInfo(), [unreadable("container", error, reason)]


def _first(tags: dict[str, str], keys: tuple[str, ...]) -> str | None:
    return next((tags[key] for key in keys if tags.get(key)), None)


def container_gps(tags: dict[str, str]) -> dict[str, Any] | None:
    """GPS from the ISO 6709 location tag, in the same shape (validity marked) as EXIF GPS."""
    text = _first(tags, _LOCATION_SOURCES)
    parsed = boxes.parse_iso6709(text) if text else None
    if parsed is None:
        return None
    lat, lon, alt = parsed
    return gps.mark_validity(
        {
            "lat": lat,
            "lon": lon,
            "alt": alt,
            "time_utc": None,
            "img_direction": None,
            "lat_ref": "S" if lat < 0 else "N",
            "lon_ref": "W" if lon < 0 else "E",
            "source": "quicktime",
        }
    )


def _creation_date(text: str | None) -> str | None:
    """ISO 8601 from Apple's ``2021-04-11T15:47:53-0500`` style (offset kept when stated)."""
    if not text:
        return None
    head, offset = text[:19], text[19:].strip()
    if offset.endswith("Z"):
        offset = "+00:00"
    elif len(offset) == 5 and offset[0] in "+-" and offset[1:].isdigit():
        offset = f"{offset[:3]}:{offset[3:]}"
    return exif.parse_exif_datetime(head, None, offset or None)


def build_metadata(info: boxes.MovieInfo) -> dict[str, Any]:
    """The normalised metadata schema from container tags."""
    metadata = empty_metadata()
    for name, sources in _TEXT_SOURCES.items():
        metadata[name] = _first(info.tags, sources)
    raw_date = _first(info.tags, _CREATION_SOURCES)
    metadata["datetime_original_raw"] = raw_date
    metadata["datetime_original"] = _creation_date(raw_date)
    offset = (metadata["datetime_original"] or "")[19:]
    metadata["offset_time_original"] = offset if offset.startswith(("+", "-")) else None
    metadata["gps"] = container_gps(info.tags)
    metadata["container_creation_time"] = info.creation_time
    metadata["metadata_stripped"] = not info.tags and info.creation_time is None
    return metadata


def _derivatives(out_dir: Path, data: dict[str, Any]) -> tuple[Derivative, ...]:
    tool = f"PyAV {data.get('pyav', '?')} + Pillow {data.get('pillow', '?')}"
    frames = []
    for entry in data.get("keyframes", []):
        name = str(entry.get("file", ""))
        if not name.startswith("frame-") or "/" in name:
            continue
        frames.append(Derivative(name, (out_dir / name).read_bytes(), JPEG_MIME, tool))
    thumbnail = _thumbnail(frames[0].data) if frames else None
    return ((thumbnail,) if thumbnail else ()) + tuple(frames)


def _thumbnail(keyframe: bytes) -> Derivative | None:
    from PIL import Image
    from PIL import __version__ as pil_version

    with Image.open(io.BytesIO(keyframe), formats=("JPEG",)) as image:
        image.draft("RGB", (THUMBNAIL_PX, THUMBNAIL_PX))
        image.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, "JPEG", quality=85)
    return Derivative("thumbnail.jpg", buffer.getvalue(), JPEG_MIME, f"Pillow {pil_version}")


def _media(fmt: str, data: dict[str, Any], info: boxes.MovieInfo) -> dict[str, Any]:
    media = empty_media("video", fmt)
    for key in ("width", "height", "duration_s", "fps", "frame_count", "codec"):
        media[key] = data.get(key)
    media["rotation"] = info.rotation
    return media


def _perceptual(data: dict[str, Any]) -> dict[str, Any]:
    perceptual = empty_perceptual()
    frames = [
        {k: entry.get(k) for k in ("index", "time_s", "pdq", "quality")}
        for entry in data.get("keyframes", [])
    ]
    perceptual["keyframes"] = frames
    if frames:
        perceptual["pdq"], perceptual["pdq_quality"] = frames[0]["pdq"], frames[0]["quality"]
    return perceptual


def _versions(data: dict[str, Any]) -> dict[str, str]:
    import pdqhash

    versions = {"pdqhash": str(pdqhash.__version__), "media": MEDIA_VERSION}
    for key in ("pyav", "pillow"):
        if data.get(key):
            versions[key] = str(data[key])
    c2pa = library_version()
    if c2pa:
        versions["c2pa-python"] = c2pa
    return versions


def analyse_video(path: Path, fmt: str, settings: Settings) -> MediaAnalysis:
    """Analyse one video; a crash, hang or undecodable file becomes a finding."""
    info, findings = read_container(path, fmt)
    with tempfile.TemporaryDirectory(prefix="evidence-video-") as tmp:
        result = run_worker(path, Path(tmp), settings)
        derivatives = _derivatives(Path(tmp), result.data)
    if result.finding:
        findings.append(result.finding)
    metadata = build_metadata(info)
    metadata["c2pa"] = read_c2pa(path, MIME.get(fmt, ""))
    return MediaAnalysis(
        media=_media(fmt, result.data, info),
        metadata=metadata,
        raw=boxes.movie_tags_summary(info),
        perceptual=_perceptual(result.data),
        findings=tuple(findings),
        derivatives=derivatives,
        extractors=_versions(result.data),
    )
