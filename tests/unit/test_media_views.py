"""verification/media/views.py: a JPEG's metadata removed losslessly, other photos re-encoded
within the budget, and a WebM proxy of a video made by ffmpeg or OpenCV."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import exifread
import pytest
from PIL import Image

from tests.helpers import photo
from verification.media import samples, views

KYIV = (50.4501, 30.5234, 179.0)
XMP = (
    b'<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
    b'<rdf:RDF><rdf:Description GPSLatitude="50,27.006N"/></rdf:RDF></x:xmpmeta>'
)


def _loaded_jpeg(progressive: bool = False, mode: str = "RGB") -> bytes:
    """A photo with EXIF (GPS, camera), XMP, an ICC profile, a comment and bytes after EOI."""
    image = samples.scene(7, size=(800, 600))
    image = image.convert(mode) if mode != "RGB" else image
    out = io.BytesIO()
    image.save(
        out,
        "JPEG",
        quality=88,
        progressive=progressive,
        exif=samples.exif_bytes(gps=KYIV, taken="2024:03:14 11:20:05"),
        xmp=XMP,
        comment=b"shot by witness 7",
        icc_profile=_srgb() if mode == "RGB" else None,
    )
    return out.getvalue() + b"APPENDED-SECRET"


def _srgb() -> bytes:
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _strip(data: bytes) -> tuple[bytes, dict[str, object]]:
    sink = io.BytesIO()
    facts = views.strip_jpeg(io.BytesIO(data), sink)
    return sink.getvalue(), facts


@pytest.mark.parametrize("progressive", [False, True], ids=["baseline", "progressive"])
def test_stripped_jpeg_has_no_metadata_and_the_same_pixels(progressive: bool) -> None:
    """EXIF, GPS, XMP, ICC, the comment and the trailer are gone; every decoded pixel is equal."""
    data = _loaded_jpeg(progressive)
    stripped, facts = _strip(data)
    assert exifread.process_file(io.BytesIO(data), details=False)  # the original has EXIF
    assert exifread.process_file(io.BytesIO(stripped), details=False) == {}
    with Image.open(io.BytesIO(stripped)) as view, Image.open(io.BytesIO(data)) as original:
        assert not view.getexif()
        assert {"exif", "xmp", "icc_profile", "comment"}.isdisjoint(view.info)
        assert view.tobytes() == original.tobytes()
    for secret in (b"GPS", b"Fairphone", b"http://ns.adobe.com/xap", b"witness", b"SECRET"):
        assert secret not in stripped
    assert facts["width"] == 800 and facts["height"] == 600
    removed = facts["removed"]
    assert isinstance(removed, dict)
    assert {"Exif", "XMP", "ICC_PROFILE", "comment"} <= set(removed)
    assert removed["after end of image"] == len(b"APPENDED-SECRET")


def test_cmyk_jpeg_keeps_adobe_colour_flag_and_pixels() -> None:
    """Adobe's APP14 (how to read CMYK colours) is kept, so the pixels stay equal."""
    data = _loaded_jpeg(mode="CMYK")
    stripped, _ = _strip(data)
    with Image.open(io.BytesIO(stripped)) as view, Image.open(io.BytesIO(data)) as original:
        assert view.mode == original.mode == "CMYK"
        assert view.tobytes() == original.tobytes()


def test_markers_split_across_read_chunks_are_found(monkeypatch: pytest.MonkeyPatch) -> None:
    """Read 7 bytes at a time, the scans and markers still copy exactly."""
    data = _loaded_jpeg(progressive=True)
    whole, _ = _strip(data)
    monkeypatch.setattr(views, "CHUNK", 7)
    assert _strip(data)[0] == whole


def test_truncated_jpeg_is_refused_with_the_reason() -> None:
    """A file cut before its end-of-image marker gives no view, and says it is truncated."""
    with pytest.raises(views.ViewError, match="truncated"):
        _strip(photo(3)[:3000])


def test_non_jpeg_bytes_are_refused() -> None:
    """A file without a start-of-image marker is not treated as a JPEG."""
    with pytest.raises(views.ViewError, match="not a JPEG"):
        _strip(b"\x89PNG\r\n\x1a\n" + bytes(100))


def test_jpeg_view_keeps_the_orientation_for_the_page(tmp_path: Path) -> None:
    """The view records the EXIF orientation the page must apply (the file no longer has it)."""
    view = views.jpeg_view(io.BytesIO(photo(2)), tmp_path / "view.jpg", 6)
    assert (view.method, view.orientation, view.width, view.height) == ("stripped", 6, 640, 480)
    assert views.jpeg_view(io.BytesIO(photo(2)), tmp_path / "v2.jpg", None).orientation == 1


@pytest.mark.parametrize(
    ("fmt", "save"),
    [("png", "PNG"), ("webp", "WEBP"), ("tiff", "TIFF"), ("heif", "HEIF"), ("avif", "AVIF")],
)
def test_other_formats_are_reencoded_bounded_upright_and_bare(
    tmp_path: Path, fmt: str, save: str
) -> None:
    """A 1200x800 photo turned by EXIF orientation 6 becomes an upright JPEG within max_px,
    with no EXIF, XMP or ICC profile."""
    from verification.media.image import register_heif

    register_heif()
    source = tmp_path / f"in.{fmt}"
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "Fairphone"
    samples.scene(9, size=(1200, 800)).save(source, save, exif=exif.tobytes())
    out = tmp_path / "view.jpg"
    view = views.reencode_image(source, fmt, out, 600, 200_000_000, 512 * 2**20)
    assert (view.method, view.orientation) == ("re-encoded", 1)
    with Image.open(out) as image:
        assert image.format == "JPEG"
        assert image.size == (400, 600) == (view.width, view.height)  # turned, long side 600
        assert not image.getexif()
        assert {"exif", "xmp", "icc_profile"}.isdisjoint(image.info)
    assert b"Fairphone" not in out.read_bytes()


def test_reencode_refuses_an_image_over_the_decode_budget(tmp_path: Path) -> None:
    """The decode budget applies: over it, no view and a reason naming the budget."""
    source = tmp_path / "big.png"
    samples.scene(1, size=(1600, 1200)).save(source, "PNG")
    with pytest.raises(views.ViewError, match="budget"):
        views.reencode_image(source, "png", tmp_path / "v.jpg", 4096, 200_000_000, 2**20)


def test_reencode_of_an_undecodable_file_says_so(tmp_path: Path) -> None:
    """A corrupt PNG is a ViewError naming the decoder's error type, not a crash."""
    source = tmp_path / "bad.png"
    source.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    with pytest.raises(views.ViewError, match="could not be decoded"):
        views.reencode_image(source, "png", tmp_path / "v.jpg", 4096, 200_000_000, 2**28)


def _tagged_video(path: Path) -> Path:
    """An MP4 with sound and a location and comment in its container metadata (ffmpeg)."""
    subprocess.run(
        [
            *("ffmpeg", "-hide_banner", "-loglevel", "error", "-y"),
            *("-f", "lavfi", "-i", "testsrc=size=1920x1080:rate=10"),
            *("-f", "lavfi", "-i", "sine=frequency=440", "-t", "2"),
            *("-metadata", "location=+50.4501+030.5234/", "-metadata", "comment=SECRETNOTE"),
            *("-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac"),
            *("-movflags", "use_metadata_tags", str(path)),
        ],
        check=True,
    )
    return path


needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not on PATH")


@needs_ffmpeg
def test_ffmpeg_proxy_is_bounded_webm_without_container_metadata(tmp_path: Path) -> None:
    """A 1080p clip becomes a 1280x720 WebM with audio; the location and comment are gone."""
    source = _tagged_video(tmp_path / "tagged.mp4")
    assert b"50.4501" in source.read_bytes()
    out = tmp_path / "proxy.webm"
    view = views.make_proxy(source, out, 1280, 120)
    data = out.read_bytes()
    assert data[:4] == b"\x1a\x45\xdf\xa3"  # EBML: Matroska/WebM
    assert (view.width, view.height) == (1280, 720)
    assert view.tool.startswith("ffmpeg") and view.detail["frames"] == 3
    assert b"50.4501" not in data and b"SECRETNOTE" not in data
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_name", "-of", "csv=p=0", out],
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stdout.split() == ["vp8", "opus"]


def test_opencv_proxy_when_ffmpeg_is_absent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without ffmpeg on PATH, OpenCV writes the proxy (video only) from the demo's clip."""
    monkeypatch.setenv("PATH", "/nonexistent")
    views.ffmpeg_version.cache_clear()
    try:
        source = tmp_path / "clip.mp4"
        source.write_bytes(samples.video(1))
        view = views.make_proxy(source, tmp_path / "proxy.webm", 1280, 120)
    finally:
        views.ffmpeg_version.cache_clear()
    assert view.tool.startswith("OpenCV") and view.detail["audio"].startswith("none")
    assert (view.width, view.height) == (320, 240)
    assert (tmp_path / "proxy.webm").read_bytes()[:4] == b"\x1a\x45\xdf\xa3"


@pytest.mark.parametrize("ffmpeg", [True, False], ids=["ffmpeg", "opencv"])
def test_corrupt_video_gives_a_reason_not_a_proxy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ffmpeg: bool
) -> None:
    """A file that is not a decodable video is a ViewError saying the transcoder failed."""
    if not ffmpeg:
        monkeypatch.setenv("PATH", "/nonexistent")
    elif shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg not on PATH")
    views.ffmpeg_version.cache_clear()
    source = tmp_path / "bad.mp4"
    source.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(4000))
    try:
        with pytest.raises(views.ViewError, match="transcoder failed"):
            views.make_proxy(source, tmp_path / "proxy.webm", 1280, 120)
    finally:
        views.ffmpeg_version.cache_clear()


@needs_ffmpeg
def test_transcoder_past_its_timeout_is_killed(tmp_path: Path) -> None:
    """A transcode that outlives the timeout is killed and reported as timed out."""
    source = _tagged_video(tmp_path / "tagged.mp4")
    with pytest.raises(views.ViewError, match="timed out"):
        views.make_proxy(source, tmp_path / "proxy.webm", 1280, 0.05)
