"""Photos: normalised EXIF, XMP, hashes, thumbnail, and hostile files as findings."""

from __future__ import annotations

import hashlib
import io
import shutil
import struct
import subprocess
from fractions import Fraction
from pathlib import Path

import pytest
from PIL import Image

from verification.core.config import Settings
from verification.media import MEDIA_VERSION, analyse
from verification.media import exif as exif_norm
from verification.media.hashes import hamming

SETTINGS = Settings()


def _photo(size: tuple[int, int] = (320, 240)) -> Image.Image:
    """A gradient with a few shapes, so perceptual hashes have something to hold on to."""
    texture = Image.effect_mandelbrot((320, 240), (-2.0, -1.2, 1.0, 1.2), 64)
    image = Image.merge("RGB", (texture, Image.linear_gradient("L").resize((320, 240)), texture))
    for i, colour in enumerate(("red", "green", "blue")):
        box = (20 + i * 60, 30 + i * 20, 70 + i * 60, 90 + i * 20)
        image.paste(Image.new("RGB", (box[2] - box[0], box[3] - box[1]), colour), box)
    return image.resize(size, Image.Resampling.BICUBIC)


def _exif(orientation: int = 1) -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "TestCam"
    exif[0x0110] = "Model X"
    exif[0x0131] = "FirmWare 1.2"
    exif[0x0132] = "2024:03:02 10:00:00"
    exif[0x0112] = orientation
    ifd = exif.get_ifd(0x8769)
    ifd[0x9003] = "2024:03:01 12:34:56"
    ifd[0x9291] = "25"
    ifd[0x9011] = "+03:00"
    gps = exif.get_ifd(0x8825)
    gps[1] = "S"
    gps[2] = (Fraction(33), Fraction(51), Fraction(216, 10))
    gps[3] = "W"
    gps[4] = (Fraction(70), Fraction(30), Fraction(0))
    gps[5] = b"\x01"
    gps[6] = Fraction(1225, 10)
    gps[7] = (Fraction(14), Fraction(5), Fraction(30))
    gps[29] = "2024:03:01"
    gps[17] = Fraction(90)
    return exif


def _write(path: Path, image: Image.Image, fmt: str, **params: object) -> Path:
    image.save(path, fmt, **params)
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _assert_unreadable(path: Path, fmt: str, settings: Settings = SETTINGS) -> dict[str, str]:
    before = _sha(path)
    result = analyse(path, fmt, settings)
    assert _sha(path) == before
    codes = [f.code for f in result.findings]
    assert "unreadable" in codes
    finding = next(f for f in result.findings if f.code == "unreadable")
    assert set(finding.evidence) == {"stage", "error"}
    return dict(finding.evidence)


@pytest.fixture
def jpeg_with_exif(tmp_path: Path) -> Path:
    return _write(tmp_path / "photo.jpg", _photo(), "JPEG", exif=_exif(), quality=90)


def test_jpeg_camera_fields_are_normalised(jpeg_with_exif: Path) -> None:
    """Make, model and software come from IFD0, stripped."""
    meta = analyse(jpeg_with_exif, "jpeg", SETTINGS).metadata
    assert (meta["make"], meta["model"], meta["software"]) == ("TestCam", "Model X", "FirmWare 1.2")
    assert meta["metadata_stripped"] is False


def test_jpeg_capture_time_is_iso_with_subseconds_and_offset(jpeg_with_exif: Path) -> None:
    """DateTimeOriginal + SubSecTimeOriginal + OffsetTimeOriginal give one ISO 8601 string."""
    meta = analyse(jpeg_with_exif, "jpeg", SETTINGS).metadata
    assert meta["datetime_original"] == "2024-03-01T12:34:56.250000+03:00"
    assert meta["datetime_original_raw"] == "2024:03:01 12:34:56"
    assert meta["offset_time_original"] == "+03:00"
    assert meta["modify_date"] == "2024-03-02T10:00:00"


def test_gps_is_signed_degrees_with_altitude_below_sea_level(jpeg_with_exif: Path) -> None:
    """South and west refs make negative degrees; GPSAltitudeRef 1 makes altitude negative."""
    gps = analyse(jpeg_with_exif, "jpeg", SETTINGS).metadata["gps"]
    assert gps["lat"] == pytest.approx(-(33 + 51 / 60 + 21.6 / 3600), abs=1e-9)
    assert gps["lon"] == pytest.approx(-70.5, abs=1e-9)
    assert gps["alt"] == pytest.approx(-122.5)
    assert gps["time_utc"] == "2024-03-01T14:05:30+00:00"
    assert gps["img_direction"] == pytest.approx(90.0)
    assert (gps["lat_ref"], gps["lon_ref"], gps["source"]) == ("S", "W", "exif")
    assert (gps["valid"], gps["invalid_reason"], gps["raw"]) == (True, None, None)


@pytest.mark.parametrize(
    ("tag", "value"),
    [(2, (Fraction(123), Fraction(0), Fraction(0))), (1, "X")],
    ids=["latitude-123", "hemisphere-X"],
)
def test_unusable_gps_is_marked_invalid_with_no_lat_lon(
    tmp_path: Path, tag: int, value: object
) -> None:
    """Latitude 123 or ref 'X': the block says valid false and the values sit only in raw."""
    exif = _exif()
    exif.get_ifd(0x8825)[tag] = value
    path = _write(tmp_path / "bad-gps.jpg", _photo(), "JPEG", exif=exif)
    gps = analyse(path, "jpeg", SETTINGS).metadata["gps"]
    assert (gps["lat"], gps["lon"]) == (None, None)
    assert (gps["valid"], gps["invalid_reason"]) == (False, "gps-invalid")
    assert gps["raw"]["lon"] == pytest.approx(-70.5)
    assert gps["alt"] == pytest.approx(-122.5)  # the rest of the block is kept as written


def test_media_facts_and_extractor_versions(jpeg_with_exif: Path) -> None:
    """Width/height are the stored size; extractors name every library and our version."""
    result = analyse(jpeg_with_exif, "jpeg", SETTINGS)
    assert result.media["kind"] == "image"
    assert (result.media["width"], result.media["height"]) == (320, 240)
    assert result.media["orientation"] == 1
    assert result.extractors["media"] == MEDIA_VERSION
    assert {"exifread", "Pillow", "pdqhash"} <= set(result.extractors)
    assert result.raw["Image Make"] == "TestCam"
    # Pillow wrote it with the standard tables under a camera's EXIF: only that info signal.
    assert [f.code for f in result.findings] == ["jpeg-software-tables"]


def test_perceptual_hashes_have_expected_shape(jpeg_with_exif: Path) -> None:
    """PDQ is 64 hex digits with a quality, eight dihedral hashes, pHash 16 hex digits."""
    perceptual = analyse(jpeg_with_exif, "jpeg", SETTINGS).perceptual
    assert len(perceptual["pdq"]) == 64
    assert 0 <= perceptual["pdq_quality"] <= 100
    assert len(perceptual["pdq_dihedral"]) == 8
    assert perceptual["pdq_dihedral"][0] == perceptual["pdq"]
    assert len(perceptual["phash"]) == 16


def test_rotated_copy_matches_one_dihedral_hash(tmp_path: Path) -> None:
    """A copy rotated by 90 degrees is close to one of the original's dihedral hashes."""
    original = _write(tmp_path / "a.png", _photo(), "PNG")
    rotated = _write(tmp_path / "b.png", _photo().transpose(Image.Transpose.ROTATE_90), "PNG")
    dihedral = analyse(original, "png", SETTINGS).perceptual["pdq_dihedral"]
    pdq = analyse(rotated, "png", SETTINGS).perceptual["pdq"]
    assert min(hamming(pdq, candidate) for candidate in dihedral) <= 16


def test_thumbnail_applies_exif_orientation(tmp_path: Path) -> None:
    """Orientation 6 turns a landscape original into a portrait thumbnail of at most 512 px."""
    path = _write(tmp_path / "o.jpg", _photo((800, 400)), "JPEG", exif=_exif(orientation=6))
    result = analyse(path, "jpeg", SETTINGS)
    (thumb,) = result.derivatives
    assert (thumb.name, thumb.mime) == ("thumbnail.jpg", "image/jpeg")
    assert thumb.tool.startswith("Pillow ")
    with Image.open(io.BytesIO(thumb.data)) as image:
        assert image.width < image.height
        assert max(image.size) <= 512
    assert (result.media["width"], result.media["height"], result.media["orientation"]) == (
        800,
        400,
        6,
    )


def test_draft_decoded_pdq_is_close_to_full_decode(tmp_path: Path) -> None:
    """DCT-scaled decoding changes the PDQ hash by at most 16 bits."""
    from verification.media.hashes import pdq

    path = _write(tmp_path / "big.jpg", _photo((3000, 2000)), "JPEG", quality=90)
    ours = analyse(path, "jpeg", SETTINGS).perceptual["pdq"]
    with Image.open(path) as full:
        full.load()
        reference, _quality = pdq(full.convert("RGB"))
    assert hamming(ours, reference) <= 16


def _jpeg_with_exif_thumbnail(path: Path, thumbnail: bytes) -> Path:
    """A JPEG whose hand-built EXIF block has IFD0 (Make) and IFD1 pointing at a thumbnail."""
    ifd0 = (
        struct.pack(">H", 1)
        + struct.pack(">HHI4s", 0x010F, 2, 4, b"Cam\x00")
        + struct.pack(">I", 26)
    )
    ifd1 = (
        struct.pack(">H", 2)
        + struct.pack(">HHII", 0x0201, 4, 1, 56)
        + struct.pack(">HHII", 0x0202, 4, 1, len(thumbnail))
        + struct.pack(">I", 0)
    )
    block = b"MM\x00*" + struct.pack(">I", 8) + ifd0 + ifd1 + thumbnail
    app1 = b"\xff\xe1" + struct.pack(">H", 8 + len(block)) + b"Exif\x00\x00" + block
    main = io.BytesIO()
    _photo().save(main, "JPEG")
    path.write_bytes(main.getvalue()[:2] + app1 + main.getvalue()[2:])
    return path


def test_embedded_exif_thumbnail_is_hashed(tmp_path: Path) -> None:
    """A JPEG thumbnail inside EXIF is detected and hashed close to the main image's PDQ."""
    small = io.BytesIO()
    _photo((160, 120)).save(small, "JPEG")
    path = _jpeg_with_exif_thumbnail(tmp_path / "t.jpg", small.getvalue())
    result = analyse(path, "jpeg", SETTINGS)
    meta = result.metadata
    assert meta["make"] == "Cam"
    assert meta["has_thumbnail"] is True
    assert hamming(meta["thumbnail_pdq"], result.perceptual["pdq"]) <= 16


def test_broken_exif_thumbnail_is_an_info_finding(tmp_path: Path) -> None:
    """A thumbnail that does not decode is noted at info level; the photo stays readable."""
    path = _jpeg_with_exif_thumbnail(tmp_path / "t.jpg", b"\xff\xd8" + b"\x00" * 64)
    result = analyse(path, "jpeg", SETTINGS)
    codes = [f.code for f in result.findings if not f.code.startswith("jpeg-")]
    assert codes == ["embedded_thumbnail_unreadable"]
    assert result.metadata["thumbnail_pdq"] is None


def test_placeholder_date_keeps_raw_but_no_iso() -> None:
    """An all-zero EXIF date is a placeholder: raw kept, ISO value None."""
    assert exif_norm.parse_exif_datetime("0000:00:00 00:00:00", None, None) is None
    assert exif_norm.parse_exif_datetime("    :  :     :  :  ", None, None) is None
    assert exif_norm.parse_exif_datetime("2008:05:30 15:56:01", "5", "-05:00") == (
        "2008-05-30T15:56:01.500000-05:00"
    )
    assert exif_norm.parse_exif_datetime("2008:05:30 15:56:01", None, "garbage") == (
        "2008-05-30T15:56:01"
    )


def test_png_exif_chunk_is_read(tmp_path: Path) -> None:
    """PNG files carry EXIF in an eXIf chunk; it is read like a JPEG's."""
    path = _write(tmp_path / "p.png", _photo(), "PNG", exif=_exif())
    result = analyse(path, "png", SETTINGS)
    assert result.metadata["make"] == "TestCam"
    assert result.metadata["gps"]["lat"] < 0
    assert result.perceptual["pdq"] is not None


def test_webp_exif_is_read(tmp_path: Path) -> None:
    """WebP's EXIF chunk is read and the image is hashed."""
    path = _write(tmp_path / "w.webp", _photo(), "WEBP", exif=_exif())
    result = analyse(path, "webp", SETTINGS)
    assert result.metadata["model"] == "Model X"
    assert (result.media["width"], result.media["height"]) == (320, 240)


def test_heif_exif_is_read(tmp_path: Path) -> None:
    """HEIC written by pillow-heif is decoded and keeps make, model and capture time."""
    pillow_heif = pytest.importorskip("pillow_heif")
    pillow_heif.register_heif_opener()
    path = tmp_path / "h.heic"
    try:
        _photo().save(path, "HEIF", exif=_exif())
    except (KeyError, OSError, ValueError) as error:
        pytest.skip(f"pillow-heif cannot encode HEIF here: {error}")
    result = analyse(path, "heif", SETTINGS)
    meta = result.metadata
    assert (meta["make"], meta["model"]) == ("TestCam", "Model X")
    assert meta["datetime_original"] == "2024-03-01T12:34:56.250000+03:00"
    assert (result.media["width"], result.media["height"]) == (320, 240)
    assert result.findings == ()


def _avif(path: Path, image: Image.Image, **params: object) -> Path:
    """Write an AVIF with Pillow's own encoder, or skip saying why it cannot here."""
    from PIL import features

    if not features.check("avif"):
        pytest.skip("this Pillow was built without libavif, so it can neither read nor write AVIF")
    try:
        image.save(path, "AVIF", **params)
    except (KeyError, OSError, ValueError) as error:
        pytest.skip(f"Pillow's libavif has no AV1 encoder here: {error}")
    return path


def test_avif_is_identified_decoded_and_hashed(tmp_path: Path) -> None:
    """An AVIF photo is identified by its brand, decoded, hashed and thumbnailed."""
    from verification.core.formats import describe

    path = _avif(tmp_path / "a.avif", _photo())
    info = describe(path.read_bytes()[:64], path.name)
    assert (info.format, info.mime, info.extension_mismatch) == ("avif", "image/avif", False)
    result = analyse(path, info.format, SETTINGS)
    assert result.findings == ()
    assert result.media["readable"] is True
    assert (result.media["kind"], result.media["width"], result.media["height"]) == (
        "image",
        320,
        240,
    )
    assert len(result.perceptual["pdq"]) == 64
    assert [d.name for d in result.derivatives] == ["thumbnail.jpg"]
    assert "libavif" in result.extractors


def test_avif_exif_keeps_make_model_and_capture_time(tmp_path: Path) -> None:
    """The EXIF item of an AVIF is read like a HEIC's."""
    path = _avif(tmp_path / "e.avif", _photo(), exif=_exif())
    meta = analyse(path, "avif", SETTINGS).metadata
    assert (meta["make"], meta["model"]) == ("TestCam", "Model X")
    assert meta["datetime_original"] == "2024-03-01T12:34:56.250000+03:00"
    assert meta["gps"]["lat"] < 0


def test_avif_close_to_the_same_photo_as_png(tmp_path: Path) -> None:
    """The AVIF's PDQ is near the lossless original's, so re-encodes still match."""
    png = _write(tmp_path / "p.png", _photo(), "PNG")
    avif = _avif(tmp_path / "p.avif", _photo(), quality=90)
    ours = analyse(avif, "avif", SETTINGS).perceptual["pdq"]
    assert hamming(ours, analyse(png, "png", SETTINGS).perceptual["pdq"]) <= 24


def test_xmp_creator_tool_and_history_are_summarised(tmp_path: Path) -> None:
    """The XMP packet's CreatorTool and edit history are summarised."""
    packet = (
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        b'<rdf:Description xmlns:xmp="http://ns.adobe.com/xap/1.0/" '
        b'xmlns:xmpMM="http://ns.adobe.com/xap/1.0/mm/" '
        b'xmlns:stEvt="http://ns.adobe.com/xap/1.0/sType/ResourceEvent#" '
        b'xmp:CreatorTool="Editor 9"><xmpMM:History><rdf:Seq>'
        b'<rdf:li stEvt:action="saved" stEvt:softwareAgent="Editor 9"/>'
        b"</rdf:Seq></xmpMM:History></rdf:Description></rdf:RDF></x:xmpmeta>"
    )
    path = _write(tmp_path / "x.jpg", _photo(), "JPEG", xmp=packet)
    xmp = analyse(path, "jpeg", SETTINGS).metadata["xmp"]
    assert xmp == {
        "present": True,
        "creator_tool": "Editor 9",
        "history": ["action=saved softwareAgent=Editor 9"],
    }


def test_xmp_with_entities_is_not_expanded() -> None:
    """A packet declaring entities is read by pattern only, so nothing is expanded."""
    from verification.media.xmp import summarise

    bomb = b'<!DOCTYPE x [<!ENTITY a "aaaa">]><x:xmpmeta xmp:CreatorTool="&a;"></x:xmpmeta>'
    assert summarise(bomb)["creator_tool"] == "&a;"


def test_file_without_metadata_is_marked_stripped(tmp_path: Path) -> None:
    """No EXIF and no XMP: metadata_stripped is true and every schema key is present."""
    path = _write(tmp_path / "plain.png", _photo(), "PNG")
    meta = analyse(path, "png", SETTINGS).metadata
    assert meta["metadata_stripped"] is True
    assert meta["gps"] is None
    assert meta["datetime_original"] is None


def test_truncated_jpeg_becomes_unreadable_finding(jpeg_with_exif: Path) -> None:
    """A JPEG cut short is unreadable and says truncated; its EXIF (before the cut) is kept."""
    data = jpeg_with_exif.read_bytes()
    jpeg_with_exif.write_bytes(data[: len(data) * 2 // 3])
    evidence = _assert_unreadable(jpeg_with_exif, "jpeg")
    assert evidence == {"stage": "decode", "error": "TruncatedFile"}
    result = analyse(jpeg_with_exif, "jpeg", SETTINGS)
    assert result.findings[0].message == (
        "truncated: the file ends before the image data is complete"
    )
    assert result.metadata["make"] == "TestCam"
    assert result.media["readable"] is False


@pytest.mark.parametrize("fmt", ["jpeg", "png"])
def test_zero_byte_file_says_empty_file(tmp_path: Path, fmt: str) -> None:
    """An empty file is unreadable with the message 'empty file (0 bytes)', whatever its label."""
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    assert _assert_unreadable(path, fmt) == {"stage": "identify", "error": "EmptyFile"}
    result = analyse(path, "empty", SETTINGS)
    assert [(f.code, f.message) for f in result.findings] == [
        ("unreadable", "empty file (0 bytes)")
    ]
    assert (result.media["kind"], result.media["readable"]) == ("unknown", False)


def test_mislabeled_garbage_becomes_unreadable_finding(tmp_path: Path) -> None:
    """Bytes that are not a JPEG, labelled jpeg, are refused by the JPEG decoder."""
    path = tmp_path / "garbage.jpg"
    path.write_bytes(bytes(range(256)) * 64)
    assert _assert_unreadable(path, "jpeg")["error"] == "UnidentifiedImageError"


def test_png_labelled_jpeg_becomes_unreadable_finding(tmp_path: Path) -> None:
    """Only the decoder for the identified format may open the file."""
    path = _write(tmp_path / "real.png", _photo(), "PNG")
    _assert_unreadable(path, "jpeg")


def test_tiff_ifd_loop_becomes_metadata_malformed_finding(tmp_path: Path) -> None:
    """A TIFF whose IFD chain points back to itself is reported; its first page is analysed."""
    buffer = io.BytesIO()
    _photo((64, 48)).save(buffer, "TIFF")
    data = bytearray(buffer.getvalue())
    ifd0 = struct.unpack("<I", data[4:8])[0]
    count = struct.unpack("<H", data[ifd0 : ifd0 + 2])[0]
    link = ifd0 + 2 + 12 * count
    data[link : link + 4] = struct.pack("<I", ifd0)
    path = tmp_path / "loop.tiff"
    path.write_bytes(bytes(data))
    before = _sha(path)
    result = analyse(path, "tiff", SETTINGS)
    assert _sha(path) == before
    assert [f.code for f in result.findings] == ["metadata-malformed"]
    finding = result.findings[0]
    assert finding.severity == "warning"
    assert finding.evidence["problems"] == [
        "IFD loop: the next-IFD link of Image leads back to Image"
    ]
    assert result.metadata["metadata_stripped"] is False
    assert result.raw == {}  # every tag came from the looping IFD
    assert result.perceptual["pdq"] is not None


def test_jpeg_garbage_segments_becomes_unreadable_finding(tmp_path: Path) -> None:
    """A JPEG whose marker segments are garbage is unreadable, not a crash."""
    buffer = io.BytesIO()
    _photo().save(buffer, "JPEG")
    data = buffer.getvalue()
    path = tmp_path / "segments.jpg"
    path.write_bytes(data[:2] + b"\xff\xe3\xff\xff" + b"\x00" * 50 + data[2:])
    _assert_unreadable(path, "jpeg")


def test_decompression_bomb_becomes_image_too_large_finding(tmp_path: Path) -> None:
    """An image far over the pixel limit is refused from its header, before decoding."""
    path = _write(tmp_path / "bomb.png", _photo((200, 200)), "PNG")
    result = analyse(path, "png", Settings(max_image_pixels=10_000))
    assert [f.code for f in result.findings] == ["image-too-large"]
    assert result.findings[0].evidence["pixels"] == 40_000
    assert result.perceptual["pdq"] is None


def test_image_just_over_pixel_limit_becomes_image_too_large_finding(tmp_path: Path) -> None:
    """Just over the limit is over it too (Pillow would only have warned)."""
    path = _write(tmp_path / "near.png", _photo((200, 200)), "PNG")
    result = analyse(path, "png", Settings(max_image_pixels=39_999))
    assert [f.code for f in result.findings] == ["image-too-large"]
    assert result.findings[0].evidence["max_pixels"] == 39_999


def test_missing_file_becomes_unreadable_finding(tmp_path: Path) -> None:
    """A path that does not exist still yields a result with an unreadable finding."""
    result = analyse(tmp_path / "nope.jpg", "jpeg", SETTINGS)
    assert [f.code for f in result.findings] == ["unreadable"]


def test_unknown_format_is_not_decoded(tmp_path: Path) -> None:
    """Formats we do not handle are reported with kind unknown."""
    path = tmp_path / "file.bin"
    path.write_bytes(b"\x00" * 10)
    result = analyse(path, "unknown", SETTINGS)
    assert result.media["kind"] == "unknown"
    assert result.findings[0].code == "unreadable"


# --- compression history (issue 14) -----------------------------------------------------------


def _compression(path: Path) -> tuple[dict[str, object], list[str]]:
    result = analyse(path, "jpeg", SETTINGS)
    codes = [f.code for f in result.findings if f.code.startswith("jpeg-")]
    return result.media["compression"], codes


def _camera_tables() -> list[list[int]]:
    from verification.media.compression import STANDARD_CHROMINANCE, STANDARD_LUMINANCE

    return [
        [max(1, v * 3 // 10 + i % 3) for i, v in enumerate(t)]
        for t in (STANDARD_LUMINANCE, STANDARD_CHROMINANCE)
    ]


@pytest.mark.parametrize("quality", [55, 75, 92])
def test_pillow_resave_of_a_camera_file_has_standard_tables_at_its_quality(
    tmp_path: Path, quality: int
) -> None:
    """A camera-like original re-saved by Pillow with its EXIF: the standard libjpeg tables,
    the quality estimated exactly, and an info finding naming the camera."""
    original = _write(tmp_path / "o.jpg", _photo(), "JPEG", qtables=_camera_tables(), exif=_exif())
    with Image.open(original) as image:
        resaved = _write(tmp_path / "r.jpg", image, "JPEG", quality=quality, exif=_exif())
    compression, codes = _compression(resaved)
    assert (compression["family"], compression["quality"], compression["deviation"]) == (
        "libjpeg-standard",
        quality,
        0.0,
    )
    assert codes == ["jpeg-software-tables"]
    finding = next(
        f for f in analyse(resaved, "jpeg", SETTINGS).findings if f.code == "jpeg-software-tables"
    )
    assert finding.severity == "info"
    assert finding.evidence["camera"] == "TestCam Model X"
    assert f"quality {quality}" in finding.message


def test_camera_like_original_has_its_own_tables_and_no_finding(tmp_path: Path) -> None:
    """Tables of the encoder's own are 'custom', with the nearest quality and how far off."""
    original = _write(tmp_path / "o.jpg", _photo(), "JPEG", qtables=_camera_tables(), exif=_exif())
    compression, codes = _compression(original)
    assert compression["family"] == "custom"
    assert compression["deviation"] > 0
    assert compression["tables"]["0"][:3] == _camera_tables()[0][:3]
    assert codes == []


def test_standard_tables_without_a_camera_are_not_a_finding(tmp_path: Path) -> None:
    """A file that names no camera (a screenshot, an export) is only described."""
    plain = _write(tmp_path / "p.jpg", _photo(), "JPEG", quality=80)
    compression, codes = _compression(plain)
    assert (compression["family"], compression["quality"]) == ("libjpeg-standard", 80)
    assert codes == []


@pytest.mark.skipif(
    shutil.which("ffmpeg") is None, reason="ffmpeg is not installed: it makes the file"
)
def test_frame_written_by_ffmpeg_is_identified(tmp_path: Path) -> None:
    """ffmpeg's MJPEG tables (and its comment) name the encoder, with the qscale."""
    source = _write(tmp_path / "s.png", _photo(), "PNG")
    target = tmp_path / "f.jpg"
    subprocess.run(
        [
            "ffmpeg",
            "-hide_banner",
            "-loglevel",
            "error",
            "-i",
            str(source),
            "-q:v",
            "4",
            str(target),
        ],
        check=True,
    )
    compression, codes = _compression(target)
    assert (compression["family"], compression["ffmpeg_qscale"]) == ("ffmpeg", 4)
    assert compression["encoder"] == "ffmpeg (libavcodec)"
    assert codes == ["jpeg-encoder-identified"]


def test_gd_comment_names_the_encoder(tmp_path: Path) -> None:
    """A 'CREATOR: gd-jpeg' comment (PHP's GD re-encoding) is reported as the encoder."""
    path = _write(
        tmp_path / "g.jpg",
        _photo(),
        "JPEG",
        quality=90,
        comment=b"CREATOR: gd-jpeg v1.0 (using IJG JPEG v62), quality = 90",
    )
    compression, codes = _compression(path)
    assert compression["encoder"] == "libgd (gd-jpeg)"
    assert codes == ["jpeg-encoder-identified"]


def test_exif_thumbnail_tables_are_reported(tmp_path: Path) -> None:
    """The EXIF thumbnail's table family and quality are kept beside the main image's."""
    small = io.BytesIO()
    _photo((160, 120)).save(small, "JPEG", qtables=_camera_tables())
    path = _jpeg_with_exif_thumbnail(tmp_path / "t.jpg", small.getvalue())
    compression, codes = _compression(path)
    assert (compression["family"], compression["thumbnail_family"]) == (
        "libjpeg-standard",
        "custom",
    )
    assert codes == ["jpeg-software-tables"]


def test_png_has_no_compression_history(tmp_path: Path) -> None:
    """Only JPEGs are described; other formats keep compression None."""
    path = _write(tmp_path / "p.png", _photo(), "PNG")
    assert analyse(path, "png", SETTINGS).media["compression"] is None
