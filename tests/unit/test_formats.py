"""Format identification uses magic bytes and records extension mismatches."""

from __future__ import annotations

import pytest

from verification.core.formats import describe, identify

HEADS = {
    "jpeg": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00",
    "png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
    "tiff": b"II*\x00\x08\x00\x00\x00",
    "webp": b"RIFF\x24\x00\x00\x00WEBPVP8 ",
    "avi": b"RIFF\x24\x00\x00\x00AVI LIST",
    "gif": b"GIF89a\x01\x00",
    "heif": b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic",
    "mp4": b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41",
    "mov": b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00qt  ",
    "mkv": b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x88matroska",
    "webm": b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm",
}


@pytest.mark.parametrize(("expected", "head"), HEADS.items(), ids=list(HEADS))
def test_magic_bytes_identify_the_format(expected: str, head: bytes) -> None:
    """Each supported container is recognised from its first bytes."""
    assert identify(head) == expected


def test_heif_with_mif1_major_brand_is_heif() -> None:
    """HEIF files whose major brand is mif1 (many Android phones) are still HEIF."""
    assert identify(b"\x00\x00\x00\x1cftypmif1\x00\x00\x00\x00mif1heic") == "heif"


def test_old_quicktime_without_ftyp_is_mov() -> None:
    """QuickTime files that start with a moov box are MOV."""
    assert identify(b"\x00\x00\x00\x08moov") == "mov"


def test_garbage_is_unknown() -> None:
    """Bytes of no known format are 'unknown', never guessed from the name."""
    assert identify(b"hello world, not an image") == "unknown"
    assert identify(b"\x00" * 16) == "unknown"


def test_jpeg_named_png_is_a_mismatch() -> None:
    """A JPEG uploaded as .png is identified as JPEG and flagged."""
    info = describe(HEADS["jpeg"], "photo.PNG")
    assert (info.format, info.extension, info.extension_mismatch) == ("jpeg", ".png", True)


def test_matching_extension_is_not_a_mismatch() -> None:
    """Upper-case and alternative extensions of the right format are fine."""
    assert not describe(HEADS["jpeg"], "IMG_0001.JPEG").extension_mismatch
    assert not describe(HEADS["mov"], "clip.mov").extension_mismatch
    assert not describe(HEADS["jpeg"], "no-extension").extension_mismatch


def test_unknown_bytes_with_media_extension_is_a_mismatch() -> None:
    """A '.jpg' that is not an image is mislabeled."""
    assert describe(b"MZ\x90\x00 executable", "holiday.jpg").extension_mismatch


def test_empty_head_is_empty_not_unknown() -> None:
    """No bytes at all is its own answer: an empty file has no format to recognise."""
    info = describe(b"", "photo.jpg")
    assert (info.format, info.mime, info.kind) == ("empty", "application/x-empty", "unknown")
    assert info.extension_mismatch is False  # no bytes contradict the name


@pytest.mark.parametrize(
    "head",
    [
        b"\x00\x00\x00\x20ftypavif\x00\x00\x00\x00avifmif1miafMA1B",
        b"\x00\x00\x00\x1cftypmif1\x00\x00\x00\x00mif1avifmiaf",
        b"\x00\x00\x00\x1cftypavis\x00\x00\x00\x00avismsf1miaf",
    ],
    ids=["major-avif", "mif1-with-avif", "sequence-avis"],
)
def test_avif_brands_identify_avif(head: bytes) -> None:
    """AVIF (major brand avif/avis, or mif1 listing avif without an HEVC brand) is avif."""
    info = describe(head, "photo.avif")
    assert (info.format, info.mime, info.kind, info.extension_mismatch) == (
        "avif",
        "image/avif",
        "image",
        False,
    )


def test_heic_listing_avif_too_stays_heif() -> None:
    """A HEIF file that also lists avif but carries an HEVC brand is decoded as HEIF."""
    assert identify(b"\x00\x00\x00\x20ftypmif1\x00\x00\x00\x00mif1heicavifmiaf") == "heif"


def test_heic_named_avif_is_a_mismatch() -> None:
    """.avif now belongs to AVIF only."""
    assert describe(HEADS["heif"], "photo.avif").extension_mismatch
