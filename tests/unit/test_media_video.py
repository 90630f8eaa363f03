"""Videos: stream facts, keyframes, container metadata, and decoder failures as findings."""

from __future__ import annotations

import hashlib
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from verification.core.config import Settings
from verification.media import analyse, boxes
from verification.media.video_worker import FAULT_ENV

SETTINGS = Settings(video_timeout=60)
FFMPEG = shutil.which("ffmpeg")
needs_ffmpeg = pytest.mark.skipif(FFMPEG is None, reason="ffmpeg not installed; skipping tests")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _opencv_video(path: Path, frames: int = 30, size: tuple[int, int] = (160, 120)) -> Path:
    """A short mp4v video of a moving square, written by OpenCV."""
    import cv2
    import numpy as np

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, size)
    for i in range(frames):
        frame = np.full((size[1], size[0], 3), 40, dtype=np.uint8)
        x = 5 + i * 3
        frame[20:60, x : x + 40] = (0, 200, 255)
        frame[70:110, :] = (i * 8) % 255
        writer.write(frame)
    writer.release()
    return path


def _ffmpeg_video(path: Path, *metadata: str) -> Path:
    args = [FFMPEG or "ffmpeg", "-v", "error", "-y", "-f", "lavfi"]
    args += ["-i", "testsrc=size=160x120:rate=10", "-t", "1", "-c:v", "mpeg4"]
    for item in metadata:
        args += ["-metadata", item]
    subprocess.run([*args, str(path)], check=True, timeout=60)
    return path


@pytest.fixture
def video(tmp_path: Path) -> Path:
    return _opencv_video(tmp_path / "clip.mp4")


def test_video_stream_facts_come_from_the_container(video: Path) -> None:
    """Size, fps, frame count, duration and codec are reported."""
    result = analyse(video, "mp4", SETTINGS)
    media = result.media
    assert result.findings == ()
    assert (media["kind"], media["width"], media["height"]) == ("video", 160, 120)
    assert media["frame_count"] == 30
    assert media["fps"] == pytest.approx(10.0)
    assert media["duration_s"] == pytest.approx(3.0)
    assert media["codec"] in {"mp4v", "FMP4"}
    assert {"pyav", "pillow"} <= set(result.extractors)


def _intra_video(tmp_path: Path, source: Path) -> Path:
    """The same video re-encoded with every frame a keyframe (GOP of 1)."""
    path = tmp_path / "intra.mp4"
    args = [FFMPEG or "ffmpeg", "-v", "error", "-y", "-i", str(source)]
    subprocess.run([*args, "-c:v", "mpeg4", "-g", "1", "-q:v", "2", str(path)], check=True)
    return path


def _band(jpeg: bytes) -> int:
    """Mean grey of the band whose value encodes the frame number (8 per frame)."""
    import io

    from PIL import Image, ImageStat

    with Image.open(io.BytesIO(jpeg)) as image:
        return round(ImageStat.Stat(image.convert("L").crop((0, 75, 160, 105))).mean[0])


@needs_ffmpeg
def test_keyframes_are_evenly_spaced_with_derivatives(tmp_path: Path, video: Path) -> None:
    """With a keyframe on every frame, settings.keyframes evenly spaced frames are kept as JPEG
    derivatives, each with a PDQ hash."""
    result = analyse(_intra_video(tmp_path, video), "mp4", SETTINGS)
    keyframes = result.perceptual["keyframes"]
    assert [k["index"] for k in keyframes] == [0, 3, 7, 11, 15, 18, 22, 26]
    assert keyframes[1]["time_s"] == pytest.approx(0.3)
    assert all(len(k["pdq"]) == 64 for k in keyframes)
    names = [d.name for d in result.derivatives]
    assert names == ["thumbnail.jpg"] + [f"frame-{i:02d}.jpg" for i in range(8)]
    assert all(d.data.startswith(b"\xff\xd8") for d in result.derivatives)
    assert result.perceptual["pdq"] == keyframes[0]["pdq"]
    assert "pyav" in result.extractors
    assert [_band(d.data) for d in result.derivatives[1:]] == pytest.approx(
        [k["index"] * 8 for k in keyframes], abs=4
    )


def test_keyframes_are_the_decoded_keyframes_not_the_requested_times(video: Path) -> None:
    """OpenCV's writer puts a keyframe every 12 frames: the 8 requested times land on 3
    keyframes, each kept once, with the time and frame number of the frame actually decoded
    (the picture's grey band, 8 levels per frame, proves which frame it is)."""
    result = analyse(video, "mp4", SETTINGS)
    keyframes = result.perceptual["keyframes"]
    assert [k["index"] for k in keyframes] == [0, 12, 24]
    assert [k["time_s"] for k in keyframes] == pytest.approx([0.0, 1.2, 2.4])
    frames = [d for d in result.derivatives if d.name.startswith("frame-")]
    assert [d.name for d in frames] == ["frame-00.jpg", "frame-01.jpg", "frame-02.jpg"]
    assert [_band(d.data) for d in frames] == pytest.approx([0, 96, 192], abs=4)


@needs_ffmpeg
@pytest.mark.parametrize("gop", ["closed", "open"])
def test_keyframe_times_are_those_ffprobe_lists(tmp_path: Path, gop: str) -> None:
    """On an H.264 clip with B-frames and a keyframe every second (closed GOPs, or open ones
    whose leading frames refer back across the keyframe), the recorded times are exactly the
    presentation times of the packets ffprobe lists as keyframes."""
    path = tmp_path / "gop.mp4"
    args = [FFMPEG or "ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i"]
    args += ["testsrc=size=320x240:rate=25", "-t", "4", "-c:v", "libx264", "-g", "25"]
    args += ["-x264-params", f"open-gop={int(gop == 'open')}", "-sc_threshold", "0", "-bf", "3"]
    subprocess.run([*args, str(path)], check=True, timeout=60)
    ffprobe = shutil.which("ffprobe") or "ffprobe"
    query = ["-select_streams", "v:0", "-show_entries", "packet=pts_time,flags"]
    probe = subprocess.run(
        [ffprobe, "-v", "error", *query, "-of", "csv=p=0", str(path)],
        check=True,
        capture_output=True,
        text=True,
    )
    rows = [line.split(",") for line in probe.stdout.split()]
    listed = sorted(float(pts) for pts, flags, *_ in rows if flags.startswith("K"))
    start = listed[0]
    keyframes = analyse(path, "mp4", SETTINGS).perceptual["keyframes"]
    assert [k["time_s"] for k in keyframes] == pytest.approx([t - start for t in listed])
    assert [k["index"] for k in keyframes] == [0, 25, 50, 75]


@needs_ffmpeg
def test_keyframe_count_follows_settings(tmp_path: Path, video: Path) -> None:
    """Fewer keyframes are taken when the settings ask for fewer."""
    result = analyse(_intra_video(tmp_path, video), "mp4", Settings(keyframes=3, video_timeout=60))
    assert [k["index"] for k in result.perceptual["keyframes"]] == [0, 10, 20]


@needs_ffmpeg
def test_file_without_video_stream_becomes_unreadable_finding(tmp_path: Path) -> None:
    """An MP4 holding only sound has no keyframe to take: an unreadable finding says why."""
    path = tmp_path / "sound.mp4"
    args = [FFMPEG or "ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "sine=duration=1"]
    subprocess.run([*args, "-c:a", "aac", str(path)], check=True, timeout=60)
    result = analyse(path, "mp4", SETTINGS)
    (finding,) = [f for f in result.findings if f.code == "unreadable"]
    assert finding.message == "video could not be decoded (NoVideoStream)"
    assert result.derivatives == ()


def test_opencv_file_without_metadata_is_marked_stripped(video: Path) -> None:
    """An OpenCV-written MP4 has no camera tags; the metadata says so."""
    meta = analyse(video, "mp4", SETTINGS).metadata
    assert meta["gps"] is None
    assert meta["make"] is None


def test_garbage_mp4_becomes_unreadable_finding(tmp_path: Path) -> None:
    """Bytes that are not a video, named .mp4, end as an unreadable finding."""
    path = tmp_path / "garbage.mp4"
    path.write_bytes(bytes(range(256)) * 100)
    before = _sha(path)
    result = analyse(path, "mp4", SETTINGS)
    assert _sha(path) == before
    assert [f.code for f in result.findings] == ["unreadable"]
    assert result.derivatives == ()


def test_decoder_timeout_becomes_unreadable_finding(video: Path) -> None:
    """A decoder slower than the timeout is killed and reported.

    A 1 ms timeout is shorter than any Python interpreter start, so the child is always still
    running when the parent's wait expires; no sleep hook is needed.
    """
    before = _sha(video)
    result = analyse(video, "mp4", Settings(video_timeout=0.001))
    assert _sha(video) == before
    (finding,) = result.findings
    assert finding.code == "unreadable"
    assert finding.message == "video decoder timed out after 0.001 s"


@pytest.mark.parametrize(("fault", "signal_name"), [("abort", "SIGABRT"), ("kill", "SIGKILL")])
def test_decoder_crash_becomes_unreadable_finding_and_batch_continues(
    video: Path, monkeypatch: pytest.MonkeyPatch, fault: str, signal_name: str
) -> None:
    """A decoder that dies by a signal is reported, and the next file is analysed normally."""
    before = _sha(video)
    monkeypatch.setenv(FAULT_ENV, fault)
    crashed = analyse(video, "mp4", SETTINGS)
    monkeypatch.delenv(FAULT_ENV)
    following = analyse(video, "mp4", SETTINGS)
    assert _sha(video) == before
    (finding,) = crashed.findings
    assert finding.code == "unreadable"
    assert finding.message == f"video decoder crashed (signal {signal_name})"
    assert following.findings == ()


def test_box_flood_becomes_unreadable_finding(tmp_path: Path) -> None:
    """A moov stuffed with more boxes than the reader allows is refused, not walked."""
    flood = struct.pack(">I4s", 8, b"free") * (boxes.MAX_BOXES + 10)
    path = tmp_path / "flood.mp4"
    path.write_bytes(struct.pack(">I4s", 8 + len(flood), b"moov") + flood)
    result = analyse(path, "mp4", SETTINGS)
    stages = [f.evidence["stage"] for f in result.findings]
    assert "container" in stages


def test_tkhd_matrix_gives_clockwise_rotation() -> None:
    """The display matrix of a portrait phone video (a=0, b=1) means rotate 90 degrees."""
    one = 0x10000
    head = b"\x00" * (4 + 20 + 16)
    matrix = struct.pack(">9i", 0, one, 0, -one, 0, 0, 0, 0, 0x40000000)
    assert boxes.tkhd_rotation(head + matrix + b"\x00" * 8) == 90
    identity = struct.pack(">9i", one, 0, 0, 0, one, 0, 0, 0, 0x40000000)
    assert boxes.tkhd_rotation(head + identity + b"\x00" * 8) == 0


def test_iso6709_forms_are_parsed() -> None:
    """Degrees, degrees-minutes and altitude forms of ISO 6709 give signed decimals."""
    assert boxes.parse_iso6709("+48.8584+002.2945/") == (48.8584, 2.2945, None)
    lat, lon, alt = boxes.parse_iso6709("-3351.36-07030.00+012.5/") or (0, 0, 0)
    assert (lat, lon, alt) == pytest.approx((-33.856, -70.5, 12.5))
    assert boxes.parse_iso6709("garbage") is None


def test_null_island_location_is_marked_invalid() -> None:
    """A container location of 0,0 (no fix) keeps no lat/lon, like an unusable EXIF block."""
    from verification.media.video import container_gps

    gps = container_gps({"udta.\xa9xyz": "+00.0000+000.0000/"})
    assert gps is not None
    assert (gps["lat"], gps["lon"], gps["valid"]) == (None, None, False)
    assert gps["invalid_reason"] == "gps-null-island"
    usable = container_gps({"udta.\xa9xyz": "+48.8584+002.2945/"})
    assert usable is not None and usable["valid"] is True


@needs_ffmpeg
def test_mov_location_and_creation_time_are_read(tmp_path: Path) -> None:
    """ffmpeg's ©xyz location, ©mak/©mod and mvhd creation time are read from a MOV."""
    path = _ffmpeg_video(
        tmp_path / "clip.mov",
        "location=+48.8584+002.2945/",
        "creation_time=2024-05-01T10:20:30Z",
        "make=Acme",
        "model=Cam 1",
    )
    meta = analyse(path, "mov", SETTINGS).metadata
    assert meta["gps"]["lat"] == pytest.approx(48.8584)
    assert meta["gps"]["lon"] == pytest.approx(2.2945)
    assert meta["gps"]["source"] == "quicktime"
    assert meta["container_creation_time"] == "2024-05-01T10:20:30+00:00"
    assert (meta["make"], meta["model"]) == ("Acme", "Cam 1")
    assert meta["metadata_stripped"] is False


@needs_ffmpeg
def test_mp4_location_from_3gpp_loci_is_read(tmp_path: Path) -> None:
    """In MP4 ffmpeg stores the location in a 3GPP loci box (16.16 fixed point)."""
    path = _ffmpeg_video(tmp_path / "clip.mp4", "location=-33.8560-070.5000/")
    gps = analyse(path, "mp4", SETTINGS).metadata["gps"]
    assert gps["lat"] == pytest.approx(-33.856, abs=1e-4)
    assert gps["lon"] == pytest.approx(-70.5, abs=1e-4)
    assert (gps["lat_ref"], gps["lon_ref"]) == ("S", "W")
