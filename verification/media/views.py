"""Views for the review pages: a metadata-free full-size photo and a browser-playable video proxy.

Made after intake, by their own step (:mod:`verification.pipeline.views`), never by the
extractor: a full decode or a transcode costs more than the whole analysis of a file.

* A JPEG's view is the original's own bytes minus its metadata (:func:`strip_jpeg`): every
  APPn segment but a minimal JFIF header and Adobe's colour-transform flag, every comment and
  anything after the end-of-image marker, streamed, never decoded, so its pixels are the
  original's. The EXIF orientation goes with the metadata; the page applies the recorded one.
* Other photos (PNG, WebP, HEIC, AVIF, TIFF, GIF's first frame) are decoded within the decode
  budget (:mod:`verification.media.budget`) and re-encoded as a JPEG of at most ``max_px`` on
  the long side, the orientation applied (:func:`reencode_image`).
* A video's proxy is a WebM (VP8, with Opus audio when the original has sound) of at most
  ``max_px`` on the long side, container metadata dropped, made by ffmpeg when it is on PATH,
  else by OpenCV's writer (no audio), in a child process killed after ``timeout`` seconds
  (:func:`make_proxy`).

Each raises :class:`ViewError` with a plain reason (never file content) when it cannot.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from verification.media import budget
from verification.media.image import transpose_method

VIEW_NAME = "view.jpg"
PROXY_NAME = "proxy.webm"
VIEW_MIME = "image/jpeg"
PROXY_MIME = "video/webm"
VIEW_QUALITY = 90
CHUNK = 1 << 20
_PACKAGE_ROOT = Path(__file__).resolve().parents[2]

_SOI, _EOI, _SOS = 0xD8, 0xD9, 0xDA
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM and RSTn carry no length
_SOF = frozenset({*range(0xC0, 0xC4), *range(0xC5, 0xC8), *range(0xC9, 0xCC), *range(0xCD, 0xD0)})
# A marker inside entropy-coded data: 0xFF followed by anything but a stuffed zero, a restart
# marker or another 0xFF (fill). One byte class, no repetition: ten times faster than
# ``\xff+[^...]`` on noisy photos, whose scans hold an 0xFF every few hundred bytes.
_SCAN_MARKER = re.compile(rb"\xff[\x01-\xcf\xd8-\xfe]")
_ORIENTATION = 0x0112


class Readable(Protocol):
    """What a view is read from: a file, a store's stream, or a reader wrapped around one."""

    def read(self, size: int = -1, /) -> bytes: ...


class ViewError(Exception):
    """A view or proxy could not be made; the message says why, without file content."""


@dataclass(frozen=True, slots=True)
class View:
    """A view or proxy written to a local file, and how it was made."""

    name: str
    mime: str
    tool: str
    method: str  # stripped, re-encoded or transcoded
    path: Path
    width: int | None = None
    height: int | None = None
    orientation: int = 1  # EXIF orientation the page must still apply (1: none)
    detail: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# JPEG: metadata removed from the original bytes


class _Source:
    """A byte stream read in chunks, with push-back for bytes read past a marker."""

    def __init__(self, raw: Readable) -> None:
        self._raw, self._pending = raw, b""

    def chunk(self) -> bytes:
        if self._pending:
            data, self._pending = self._pending, b""
            return data
        return self._raw.read(CHUNK)

    def unread(self, data: bytes) -> None:
        self._pending = data + self._pending

    def exact(self, count: int) -> bytes:
        parts, missing = [], count
        while missing:
            data = self.chunk()
            if not data:
                raise ViewError(_TRUNCATED)
            parts.append(data[:missing])
            self.unread(data[missing:])
            missing -= len(parts[-1])
        return b"".join(parts)


_TRUNCATED = "truncated: the JPEG ends before its end-of-image marker"


def strip_jpeg(source: Readable, sink: BinaryIO) -> dict[str, Any]:
    """Copy a JPEG from ``source`` to ``sink`` without its metadata; what was removed.

    Kept: the frame, tables, scans (byte for byte), a JFIF header reduced to version and
    density (no thumbnail), and Adobe's APP14 flag, which says how to read the colours. Removed:
    every other APPn (EXIF, XMP, ICC profile, maker data, MPF), comments, and anything after the
    end-of-image marker (an MPO's second picture, appended data). Raises :class:`ViewError` for
    a file that is not a complete JPEG.
    """
    stream = _Source(source)
    if stream.exact(2) != b"\xff\xd8":
        msg = "not a JPEG: no start-of-image marker"
        raise ViewError(msg)
    sink.write(b"\xff\xd8")
    removed: Counter[str] = Counter()
    facts: dict[str, Any] = {"width": None, "height": None}
    marker = _next_marker(stream)
    while marker != _EOI:
        if marker in _STANDALONE:
            sink.write(bytes((0xFF, marker)))
            marker = _next_marker(stream)
            continue
        (length,) = struct.unpack(">H", stream.exact(2))
        if length < 2:
            msg = "malformed JPEG: a segment length under 2"
            raise ViewError(msg)
        payload = stream.exact(length - 2)
        kept = _kept_segment(marker, payload, removed, facts)
        if kept is not None:
            sink.write(bytes((0xFF, marker)) + struct.pack(">H", len(kept) + 2) + kept)
        if marker in _SOF and len(payload) >= 5:
            facts["height"], facts["width"] = struct.unpack(">HH", payload[1:5])
        marker = _copy_scan(stream, sink) if marker == _SOS else _next_marker(stream)
    sink.write(b"\xff\xd9")
    if facts["width"] is None:
        msg = "malformed JPEG: no frame header"
        raise ViewError(msg)
    trailing = _drain(stream)
    if trailing:
        removed["after end of image"] += trailing
    return {**facts, "removed": dict(sorted(removed.items()))}


def _kept_segment(
    marker: int, payload: bytes, removed: Counter[str], facts: dict[str, Any]
) -> bytes | None:
    """The payload to write for this segment (None: drop it, counted in ``removed``)."""
    if marker == 0xE0 and payload.startswith(b"JFIF\x00") and not facts.get("jfif"):
        facts["jfif"] = True
        if len(payload) > 14:
            removed["JFIF thumbnail"] += 1
        return payload[:12].ljust(12, b"\x00") + b"\x00\x00"  # no thumbnail
    if marker == 0xEE and payload.startswith(b"Adobe") and len(payload) == 12:
        return payload  # colour transform flag: without it CMYK and RGB JPEGs decode wrong
    if 0xE0 <= marker <= 0xEF:
        removed[_app_name(marker, payload)] += 1
        return None
    if marker == 0xFE:
        removed["comment"] += 1
        return None
    return payload


def _app_name(marker: int, payload: bytes) -> str:
    label = payload[:30].split(b"\x00", 1)[0]
    if label.startswith(b"http://ns.adobe.com/xap"):
        return "XMP"
    if label in {b"Exif", b"ICC_PROFILE", b"MPF", b"Photoshop 3.0", b"JFIF", b"JFXX"}:
        return label.decode()
    return f"APP{marker - 0xE0}"


def _next_marker(stream: _Source) -> int:
    """The next marker byte between segments (fill 0xFF bytes skipped)."""
    if stream.exact(1) != b"\xff":
        msg = "malformed JPEG: data where a marker should be"
        raise ViewError(msg)
    byte = stream.exact(1)[0]
    while byte == 0xFF:
        byte = stream.exact(1)[0]
    return byte


def _copy_scan(stream: _Source, sink: BinaryIO) -> int:
    """Copy entropy-coded data up to the next marker; that marker's byte."""
    carry = b""
    while True:
        data = stream.chunk()
        if not data:
            raise ViewError(_TRUNCATED)
        buffer = carry + data
        found = _SCAN_MARKER.search(buffer)
        if found:
            sink.write(buffer[: found.start()].rstrip(b"\xff"))  # fill bytes before the marker
            stream.unread(buffer[found.end() :])
            return buffer[found.start() + 1]
        tail = len(buffer) - len(buffer.rstrip(b"\xff"))  # a marker may straddle chunks
        sink.write(buffer[: len(buffer) - tail])
        carry = buffer[len(buffer) - tail :]


def _drain(stream: _Source) -> int:
    count = 0
    while data := stream.chunk():
        count += len(data)
    return count


def jpeg_view(source: Readable, out: Path, orientation: int | None) -> View:
    """The JPEG's view in ``out``: its bytes without metadata; the page applies ``orientation``."""
    with out.open("wb") as sink:
        facts = strip_jpeg(source, sink)
    return View(
        VIEW_NAME,
        VIEW_MIME,
        "evidence JPEG segment filter",
        "stripped",
        out,
        facts["width"],
        facts["height"],
        orientation if orientation and 1 <= orientation <= 8 else 1,
        {"removed": facts["removed"]},
    )


# ---------------------------------------------------------------------------------------------
# Other photos: decoded within the budget and re-encoded


def reencode_image(
    path: Path, fmt: str, out: Path, max_px: int, max_pixels: int, budget_bytes: int
) -> View:
    """A JPEG of at most ``max_px`` on the long side, orientation applied, no metadata at all."""
    from PIL import Image, __version__

    from verification.media.image import PILLOW_FORMATS, bomb_guard, register_heif

    register_heif()
    Image.init()
    with path.open("rb") as fh:
        _refuse_large_webp(fh, fmt, max_pixels, budget_bytes)
        fh.seek(0)
        try:
            with bomb_guard(None):
                image = Image.open(fh, formats=PILLOW_FORMATS.get(fmt))
            buffers = path.stat().st_size if fmt in budget.FILE_READ_WHOLE else 0
            refusal = budget.check(
                fmt, image.mode, image.size, image.size, max_pixels, buffers, budget=budget_bytes
            )
            if refusal is not None:
                raise ViewError(refusal.message.replace("image not decoded", "no view made"))
            with bomb_guard(max_pixels):
                image.load()
                # read after loading: Pillow turns TIFFs itself while loading (and drops the tag)
                orientation = image.getexif().get(_ORIENTATION)
                small = _bounded_rgb(image, max_px, orientation)
        except ViewError:
            raise
        except MemoryError:
            raise
        except Exception as error:  # hostile input of any shape: a reason, not a crash
            msg = f"the image could not be decoded ({type(error).__name__})"
            raise ViewError(msg) from None
    small.info = {}  # nothing of the original's info (EXIF, ICC, XMP, comments) is written
    small.save(out, "JPEG", quality=VIEW_QUALITY)
    return View(
        VIEW_NAME, VIEW_MIME, f"Pillow {__version__}", "re-encoded", out, small.width, small.height
    )


def _refuse_large_webp(fh: BinaryIO, fmt: str, max_pixels: int, budget_bytes: int) -> None:
    """Pillow's WebP decoder allocates on open: judge the canvas from the header first."""
    if fmt != "webp":
        return
    canvas = budget.webp_canvas(fh.read(30))
    if canvas is None:
        return
    size = fh.seek(0, io.SEEK_END)
    refusal = budget.check("webp", "RGB", canvas, canvas, max_pixels, size, budget=budget_bytes)
    if refusal is not None:
        raise ViewError(refusal.message.replace("image not decoded", "no view made"))


def _bounded_rgb(image: Any, max_px: int, orientation: object) -> Any:
    from PIL import Image

    converted = budget.CONVERTED_BEFORE_SCALING.get(image.mode)
    small = image.convert(converted) if converted else image
    small.thumbnail((max_px, max_px), Image.Resampling.LANCZOS)
    method = transpose_method(orientation)
    if method is not None:
        small = small.transpose(method)
    return small if small.mode == "RGB" else small.convert("RGB")


# ---------------------------------------------------------------------------------------------
# Videos: a WebM proxy


@cache
def ffmpeg_version() -> str | None:
    """``ffmpeg <version>`` when ffmpeg is on PATH and runs, else None."""
    binary = shutil.which("ffmpeg")
    if binary is None:
        return None
    try:
        done = subprocess.run(
            [binary, "-hide_banner", "-version"], capture_output=True, timeout=20, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    words = done.stdout.decode("utf-8", "replace").split()
    return f"ffmpeg {words[2]}" if done.returncode == 0 and len(words) > 2 else None


def make_proxy(path: Path, out: Path, max_px: int, timeout: float) -> View:
    """A WebM proxy of the video at ``path`` in ``out``; ffmpeg when present, else OpenCV."""
    version = ffmpeg_version()
    if version is not None:
        argv = ffmpeg_argv(path, out, max_px)
        tool, audio = f"{version} (libvpx VP8, libopus)", "the first track, if any"
    else:
        argv = [sys.executable, "-m", "verification.media.views", str(path), str(out), str(max_px)]
        tool, audio = _opencv_tool(), "none (OpenCV writes video only)"
    _run(argv, timeout)
    width, height, frames = _probe(out)
    if not frames:
        msg = "the proxy holds no frame: the video could not be decoded"
        raise ViewError(msg)
    detail = {"frames": frames, "audio": audio, "max_px": max_px}
    return View(PROXY_NAME, PROXY_MIME, tool, "transcoded", out, width, height, 1, detail)


def ffmpeg_argv(path: Path, out: Path, max_px: int) -> list[str]:
    """ffmpeg's arguments: first video and audio streams, long side at most ``max_px``, VP8
    (realtime: a proxy is for watching), Opus, no metadata, chapters, subtitles or data."""
    even = f"trunc(min({max_px},{{}})/2)*2"
    scale = (
        f"scale=w='if(gte(iw,ih),{even.format('iw')},-2)':h='if(gte(iw,ih),-2,{even.format('ih')})'"
    )
    return [
        shutil.which("ffmpeg") or "ffmpeg",
        *("-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i", str(path)),
        *("-map", "0:v:0", "-map", "0:a:0?", "-map_metadata", "-1", "-map_chapters", "-1"),
        *("-sn", "-dn", "-vf", scale, "-pix_fmt", "yuv420p"),
        *("-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "1500k"),
        *("-c:a", "libopus", "-b:a", "64k", "-threads", "2"),
        *("-fflags", "+bitexact", "-flags:v", "+bitexact", "-flags:a", "+bitexact"),
        *("-f", "webm", str(out)),
    ]


def _opencv_tool() -> str:
    import cv2

    return f"OpenCV {cv2.__version__} (VP8, no audio)"


def _run(argv: list[str], timeout: float) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_PACKAGE_ROOT), env.get("PYTHONPATH")]))
    process = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,
    )
    try:
        _, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        msg = f"the transcoder timed out after {timeout:g} s"
        raise ViewError(msg) from None
    if process.returncode < 0:
        msg = f"the transcoder crashed (signal {signal.Signals(-process.returncode).name})"
        raise ViewError(msg)
    if process.returncode > 0:
        # ffmpeg's last line names the problem (e.g. "Invalid data found when processing
        # input"); it may quote the file name but never its content.
        lines = stderr.decode("utf-8", "replace").strip().splitlines() or ["no message"]
        reason = lines[-1].rsplit(": ", 1)[-1][:200]
        msg = f"the transcoder failed (exit status {process.returncode}: {reason})"
        raise ViewError(msg)


def _probe(path: Path) -> tuple[int | None, int | None, int]:
    """Width, height and decodable frames of the proxy (at most 3 counted: it plays or not)."""
    import cv2

    if not path.exists() or path.stat().st_size == 0:
        return None, None, 0
    capture = cv2.VideoCapture(str(path))
    try:
        width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH) or 0) or None
        height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0) or None
        frames = 0
        while frames < 3 and capture.read()[0]:
            frames += 1
    finally:
        capture.release()
    return width, height, frames


def opencv_transcode(source: Path, out: Path, max_px: int) -> int:
    """Write a VP8 WebM of ``source`` with OpenCV (no audio, no metadata); frames written."""
    import cv2

    capture = cv2.VideoCapture(str(source))
    writer = None
    frames = 0
    try:
        fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
        fps = fps if 0 < fps <= 240 else 25.0
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            height, width = frame.shape[:2]
            scale = min(1.0, max_px / max(width, height))
            size = (max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2))
            if writer is None:
                writer = cv2.VideoWriter(str(out), cv2.VideoWriter.fourcc(*"VP80"), fps, size)
                if not writer.isOpened():
                    return 0
            writer.write(cv2.resize(frame, size, interpolation=cv2.INTER_AREA))
            frames += 1
    finally:
        capture.release()
        if writer is not None:
            writer.release()
    return frames


if __name__ == "__main__":  # the OpenCV child of make_proxy: a decoder crash costs only it
    written = opencv_transcode(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]))
    if not written:
        sys.stderr.write("error: no frame could be decoded and written\n")
    sys.exit(0 if written else 3)
