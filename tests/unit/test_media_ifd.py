"""Malformed EXIF structure is its own finding; the values it lends are dropped, the image kept."""

from __future__ import annotations

import hashlib
import io
import struct
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image

from verification.core.config import Settings
from verification.core.findings import derive_status
from verification.media import MediaAnalysis, analyse, ifd

SETTINGS = Settings()
CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "exif-samples"
ASCII, LONG = 2, 4


def _entry(tag: int, kind: int, count: int, value: bytes) -> bytes:
    return struct.pack(">HHI", tag, kind, count) + value.ljust(4, b"\x00")


def _ifd(entries: list[bytes], next_ifd: int = 0) -> bytes:
    return struct.pack(">H", len(entries)) + b"".join(entries) + struct.pack(">I", next_ifd)


def _ifd_size(count: int) -> int:
    return 2 + 12 * count + 4


def _camera(make: bytes = b"Cam", model: bytes = b"M1") -> list[bytes]:
    return [
        _entry(0x010F, ASCII, len(make) + 1, make),
        _entry(0x0110, ASCII, len(model) + 1, model),
    ]


def _pointer(tag: int, offset: int) -> bytes:
    return _entry(tag, LONG, 1, struct.pack(">I", offset))


def _jpeg(path: Path, block: bytes) -> Path:
    """A real photo with ``block`` (a big-endian TIFF structure) as its EXIF APP1 segment."""
    app1 = b"\xff\xe1" + struct.pack(">H", 8 + len(block)) + b"Exif\x00\x00" + block
    buffer = io.BytesIO()
    Image.effect_mandelbrot((160, 120), (-2.0, -1.2, 1.0, 1.2), 64).convert("RGB").save(
        buffer, "JPEG"
    )
    data = buffer.getvalue()
    path.write_bytes(data[:2] + app1 + data[2:])
    return path


def _tiff_header() -> bytes:
    return b"MM\x00*" + struct.pack(">I", 8)


# How the test JPEGs were encoded (Pillow's tables under a camera's EXIF) is reported too; it is
# not what these tests are about.
COMPRESSION = {"jpeg-software-tables", "jpeg-encoder-identified"}


def _malformed(result: MediaAnalysis) -> dict[str, object]:
    """The one structural finding must be metadata-malformed; the image is still analysed."""
    structural = [f for f in result.findings if f.code not in COMPRESSION]
    assert [f.code for f in structural] == ["metadata-malformed"]
    finding = structural[0]
    assert finding.severity == "warning"
    assert finding.message.startswith("EXIF metadata is malformed: ")
    assert finding.message.endswith(".")
    assert result.media["readable"] is True
    assert result.perceptual["pdq"] is not None
    assert [d.name for d in result.derivatives] == ["thumbnail.jpg"]
    assert derive_status(result.findings)[0] == "needs-review"
    return dict(finding.evidence)


def test_exif_pointer_back_to_ifd0_becomes_metadata_malformed_finding(tmp_path: Path) -> None:
    """An Exif IFD pointer aimed at its own IFD is a loop: make and model are not trusted."""
    block = _tiff_header() + _ifd([*_camera(), _pointer(0x8769, 8)])
    path = _jpeg(tmp_path / "self.jpg", block)
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    result = analyse(path, "jpeg", SETTINGS)
    evidence = _malformed(result)
    assert evidence == {
        "problems": ["IFD loop: the EXIF pointer in Image leads back to Image"],
        "distrusted_groups": ["EXIF", "Image"],
        "dropped_tags": 6,
    }
    assert result.findings[0].message == (
        "EXIF metadata is malformed: IFD loop: the EXIF pointer in Image leads back to Image; "
        "6 tag values read through it are not used (EXIF, Image)."
    )
    assert (result.metadata["make"], result.metadata["model"]) == (None, None)
    assert result.metadata["metadata_stripped"] is False
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


def test_ifd_chain_loop_drops_both_ifds(tmp_path: Path) -> None:
    """IFD0 -> IFD1 -> IFD0: everything read from the two IFDs on the loop is dropped."""
    ifd0 = _ifd(_camera(), next_ifd=8 + _ifd_size(2))
    ifd1 = _ifd([_entry(0x0103, 3, 1, b"\x00\x06")], next_ifd=8)
    result = analyse(_jpeg(tmp_path / "chain.jpg", _tiff_header() + ifd0 + ifd1), "jpeg", SETTINGS)
    evidence = _malformed(result)
    assert evidence["problems"] == ["IFD loop: the next-IFD link of Thumbnail leads back to Image"]
    assert evidence["distrusted_groups"] == ["IFD 2", "Image", "Thumbnail"]
    assert result.metadata["make"] is None


def test_gps_pointer_outside_the_block_drops_only_gps(tmp_path: Path) -> None:
    """A GPS pointer past the end of the EXIF block would read image data as GPS: dropped."""
    block = _tiff_header() + _ifd([*_camera(), _pointer(0x8825, 60_000)])
    result = analyse(_jpeg(tmp_path / "gps.jpg", block), "jpeg", SETTINGS)
    evidence = _malformed(result)
    assert evidence["problems"] == [
        f"the GPS pointer in Image points outside the block (offset 60000, size {len(block)})"
    ]
    assert evidence["distrusted_groups"] == ["GPS"]
    assert result.metadata["gps"] is None
    assert (result.metadata["make"], result.metadata["model"]) == ("Cam", "M1")


def test_value_outside_the_block_drops_only_that_tag(tmp_path: Path) -> None:
    """A Model string whose offset lies past the block is dropped; Make (inline) is kept."""
    model = _entry(0x0110, ASCII, 20, struct.pack(">I", 50_000))
    block = _tiff_header() + _ifd([_entry(0x010F, ASCII, 4, b"Cam"), model])
    result = analyse(_jpeg(tmp_path / "value.jpg", block), "jpeg", SETTINGS)
    evidence = _malformed(result)
    assert evidence["problems"] == ["the value of tag 0x0110 in Image lies outside the block"]
    assert evidence["dropped_tags"] == 1
    assert (result.metadata["make"], result.metadata["model"]) == ("Cam", None)


def test_exif_pointer_of_the_wrong_type_drops_the_exif_ifd(tmp_path: Path) -> None:
    """An Exif pointer stored as text (seen in the wild) is reported; IFD0 is still read."""
    block = _tiff_header() + _ifd([*_camera(), _entry(0x8769, ASCII, 4, b"abc")])
    result = analyse(_jpeg(tmp_path / "type.jpg", block), "jpeg", SETTINGS)
    evidence = _malformed(result)
    assert evidence["problems"] == ["the EXIF pointer in Image has the wrong type (2)"]
    assert result.metadata["make"] == "Cam"


def test_pointer_into_another_ifd_drops_the_reinterpreted_group(tmp_path: Path) -> None:
    """Exif and GPS pointers at one IFD read it with two tag tables: both readings are dropped."""
    exif_at = 8 + _ifd_size(4)
    ifd0 = _ifd([*_camera(), _pointer(0x8769, exif_at), _pointer(0x8825, exif_at)])
    exif = _ifd([_entry(0x9003, ASCII, 20, struct.pack(">I", exif_at + _ifd_size(1)))])
    date = b"2024:03:01 12:34:56\x00"
    result = analyse(
        _jpeg(tmp_path / "x.jpg", _tiff_header() + ifd0 + exif + date), "jpeg", SETTINGS
    )
    evidence = _malformed(result)
    assert evidence["problems"] == ["the EXIF pointer in Image points at the GPS IFD"]
    assert evidence["distrusted_groups"] == ["EXIF", "GPS"]
    assert result.metadata["datetime_original"] is None
    assert result.metadata["make"] == "Cam"


def test_exif_parser_failure_becomes_metadata_malformed_finding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When exifread raises, the metadata is malformed but the image is still analysed."""
    import exifread

    def explode(*_args: object, **_kwargs: object) -> dict[str, object]:
        raise KeyError("crafted")

    monkeypatch.setattr(exifread, "process_file", explode)
    block = _tiff_header() + _ifd(_camera())
    evidence = _malformed(analyse(_jpeg(tmp_path / "p.jpg", block), "jpeg", SETTINGS))
    assert evidence["problems"] == ["exifread could not parse it (KeyError)"]


def test_tags_are_kept_when_there_was_no_block_to_inspect() -> None:
    """Without an inspected block nothing is judged out of range: there is nothing to judge by."""
    tag = SimpleNamespace(field_offset=5000, field_length=20)
    assert ifd.Report().trusted({"Image Model": tag}) == {"Image Model": tag}
    assert ifd.Report(size=100).trusted({"Image Model": tag}) == {}


def test_clean_exif_written_by_pillow_has_no_problems() -> None:
    """EXIF as cameras and libraries write it (IFD0, Exif, GPS) passes the inspection."""
    exif = Image.Exif()
    exif[0x010F] = "TestCam"
    exif.get_ifd(0x8769)[0x9003] = "2024:03:01 12:34:56"
    exif.get_ifd(0x8825)[1] = "N"
    report = ifd.inspect_block(exif.tobytes().removeprefix(b"Exif\x00\x00"))
    assert (report.problems, report.distrusted) == ((), frozenset())


def _corpus(relative: str) -> Path:
    path = CORPUS / relative
    if not path.exists():
        pytest.skip(f"sample corpus not found at {CORPUS} (it lives in ../shared, CI only)")
    return path


@pytest.mark.parametrize(
    ("relative", "problem"),
    [
        ("jpg/tests/30-type_error.jpg", "the EXIF pointer in Image has the wrong type (2)"),
        ("jpg/tests/45-gps_ifd.jpg", "the GPS pointer in Image is empty"),
    ],
)
def test_corpus_files_with_broken_pointers_are_metadata_malformed(
    relative: str, problem: str
) -> None:
    """The corpus files ExifTool warns about for a broken sub-IFD pointer get the finding."""
    result = analyse(_corpus(relative), "jpeg", SETTINGS)
    assert _malformed(result)["problems"] == [problem]


def test_corpus_hostile_jpegs_are_analysed_not_unreadable() -> None:
    """Files that once hung or crashed EXIF readers are analysed; none is called unreadable."""
    root = _corpus("jpg")
    paths = [*sorted((root / "invalid").glob("*.jpg")), root / "corrupted.jpg"]
    paths += sorted((root / "tests").glob("*Error*"))
    for path in paths:
        result = analyse(path, "jpeg", SETTINGS)
        assert result.media["readable"] is True, path.name
        assert result.perceptual["pdq"] is not None, path.name
