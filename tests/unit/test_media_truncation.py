"""Files cut short say so ("truncated: ..."), whatever their format, instead of an error name."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from verification.core.config import Settings
from verification.media import analyse, truncation

SETTINGS = Settings()
TRUNCATED = "truncated: the file ends before the image data is complete"

# our format name -> Pillow's writer
WRITERS = {"jpeg": "JPEG", "png": "PNG", "tiff": "TIFF", "webp": "WEBP", "gif": "GIF"}


def _encoded(fmt: str) -> bytes:
    image = Image.effect_mandelbrot((320, 240), (-2.0, -1.2, 1.0, 1.2), 64).convert("RGB")
    buffer = io.BytesIO()
    if fmt == "heif":
        pillow_heif = pytest.importorskip("pillow_heif")
        pillow_heif.register_heif_opener()
    try:
        image.save(buffer, {"heif": "HEIF", "avif": "AVIF"}.get(fmt) or WRITERS[fmt])
    except (KeyError, OSError, ValueError) as error:
        pytest.skip(f"cannot encode {fmt} here: {error}")
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", [*WRITERS, "heif", "avif"])
@pytest.mark.parametrize("kept", [0.5, 0.9])
def test_truncated_file_says_truncated(tmp_path: Path, fmt: str, kept: float) -> None:
    """A file cut anywhere after its header is unreadable with the truncation message."""
    data = _encoded(fmt)
    path = tmp_path / f"cut.{fmt}"
    path.write_bytes(data[: int(len(data) * kept)])
    result = analyse(path, fmt, SETTINGS)
    assert [(f.code, f.message) for f in result.findings] == [("unreadable", TRUNCATED)]
    assert result.findings[0].evidence["error"] == "TruncatedFile"
    assert result.media["readable"] is False
    assert path.read_bytes() == data[: int(len(data) * kept)]


def test_jpeg_cut_inside_its_header_says_truncated(tmp_path: Path) -> None:
    """A JPEG that ends inside a marker segment, before any image data, is truncated too."""
    data = _encoded("jpeg")
    path = tmp_path / "head.jpg"
    path.write_bytes(data[:100])
    findings = analyse(path, "jpeg", SETTINGS).findings
    assert [(f.code, f.message) for f in findings] == [("unreadable", TRUNCATED)]


def test_garbage_is_not_called_truncated(tmp_path: Path) -> None:
    """Bytes that are not the format at all get the plain 'not decodable' reason."""
    path = tmp_path / "garbage.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8)
    findings = analyse(path, "png", SETTINGS).findings
    assert [f.code for f in findings] == ["unreadable"]
    assert "truncated" not in findings[0].message


@pytest.mark.parametrize("fmt", [*WRITERS, "heif", "avif"])
def test_complete_files_are_not_truncated(fmt: str) -> None:
    """The structure check says nothing about an intact file."""
    assert not truncation.is_truncated(io.BytesIO(_encoded(fmt)), fmt)
