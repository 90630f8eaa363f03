"""Decode budget: memory is judged from the header, and images over budget are not decoded."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from PIL import Image

from tests.helpers import zero_png
from verification.core.config import AnalysisOptions, Settings
from verification.media import analyse, budget

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = Settings()
MIB = 1024 * 1024


def _analyse_in_child(path: Path, fmt: str) -> dict[str, object]:
    """Analyse in a fresh interpreter; its findings and its own peak RSS in KiB.

    The peak is the child's VmHWM, read by the child. ``getrusage`` will not do on Linux:
    ``ru_maxrss`` survives ``execve``, so a child (and ``RUSAGE_CHILDREN`` here) starts at the
    peak of the pytest process that spawned it, which says nothing about the analysis.
    """
    code = textwrap.dedent(
        """
        import json, sys
        from pathlib import Path
        from verification.core.config import Settings
        from verification.media import analyse
        result = analyse(Path(sys.argv[1]), sys.argv[2], Settings())
        with open("/proc/self/status") as status:
            peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))
        print(json.dumps({
            "findings": [f.to_dict() for f in result.findings],
            "pdq": result.perceptual["pdq"],
            "peak_kib": peak,
        }))
        """
    )
    if not Path("/proc/self/status").exists():
        pytest.skip("needs /proc/self/status (Linux) to read the child's peak memory")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code, str(path), fmt],
        capture_output=True,
        text=True,
        timeout=60,  # the old code took 15-21 s and 2.3 GiB on the bomb
        cwd=ROOT,
        env=env,
        check=True,
    )
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_png_bomb_is_refused_from_its_header_without_decoding(tmp_path: Path) -> None:
    """A 775 KB PNG of 14000x14000 RGBA gets image-too-large and the analysis stays small."""
    path = tmp_path / "bomb.png"
    path.write_bytes(zero_png(14_000, 14_000))
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    assert path.stat().st_size < MIB
    child = _analyse_in_child(path, "png")
    findings = child["findings"]
    assert isinstance(findings, list)
    assert [f["code"] for f in findings] == ["image-too-large"]
    (finding,) = findings
    assert finding["severity"] == "warning"
    assert finding["message"].startswith("image not decoded: 14000x14000 RGBA would take about")
    assert "over the 512 MiB budget" in finding["message"]
    assert finding["evidence"] == {
        "limit": "bytes",
        "width": 14_000,
        "height": 14_000,
        "mode": "RGBA",
        "decoded_width": 14_000,
        "decoded_height": 14_000,
        "bytes_per_pixel": 4,
        "estimated_bytes": 14_000 * 14_000 * (4 + 4),  # the pixels, and their RGB copy
        "budget_bytes": 512 * MIB,
    }
    assert child["pdq"] is None
    peak_kib = child["peak_kib"]
    assert isinstance(peak_kib, int)
    assert peak_kib * 1024 < 256 * MIB  # decoding alone would need 784 MB
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


def test_png_under_budget_is_decoded_in_a_child_too(tmp_path: Path) -> None:
    """The same construction at a normal size is decoded and hashed: refusal is about size."""
    path = tmp_path / "small.png"
    path.write_bytes(zero_png(640, 480))
    child = _analyse_in_child(path, "png")
    assert child["findings"] == []
    assert isinstance(child["pdq"], str)


def test_image_over_budget_keeps_its_metadata(tmp_path: Path) -> None:
    """A refused image still gives its size and EXIF; no hashes and no thumbnail."""
    exif = Image.Exif()
    exif[0x010F] = "TestCam"
    exif[0x0110] = "Model X"
    path = tmp_path / "big.png"
    Image.new("RGB", (400, 300), "grey").save(path, "PNG", exif=exif)
    options = AnalysisOptions(decode_budget_bytes=400 * 300 * 4 - 1)
    result = analyse(path, "png", options)
    assert [f.code for f in result.findings] == ["image-too-large"]
    assert (result.metadata["make"], result.metadata["model"]) == ("TestCam", "Model X")
    assert (result.media["width"], result.media["height"]) == (400, 300)
    assert result.media["readable"] is True
    assert result.perceptual["pdq"] is None
    assert result.derivatives == ()


def test_sixteen_bit_greyscale_png_is_budgeted_at_two_bytes_per_pixel(tmp_path: Path) -> None:
    """A 16-bit grey PNG decodes to I;16: 2 bytes a pixel, so it is refused where 8-bit is not."""
    deep, shallow = tmp_path / "deep.png", tmp_path / "shallow.png"
    deep.write_bytes(zero_png(1000, 1000, bit_depth=16, colour_type=0))
    shallow.write_bytes(zero_png(1000, 1000, bit_depth=8, colour_type=0))
    options = AnalysisOptions(decode_budget_bytes=1_500_000)
    refused = analyse(deep, "png", options).findings
    assert [f.code for f in refused] == ["image-too-large"]
    evidence = refused[0].evidence
    assert (evidence["mode"], evidence["bytes_per_pixel"]) == ("I;16", 2)
    assert evidence["estimated_bytes"] == 2_000_000
    assert analyse(shallow, "png", options).findings == ()


def test_cmyk_tiff_is_budgeted_at_four_bytes_per_pixel(tmp_path: Path) -> None:
    """CMYK takes four bytes a pixel; the same size in L takes one and is decoded."""
    cmyk, grey = tmp_path / "cmyk.tif", tmp_path / "grey.tif"
    Image.new("CMYK", (1000, 1000)).save(cmyk, "TIFF", compression="tiff_deflate")
    Image.new("L", (1000, 1000)).save(grey, "TIFF", compression="tiff_deflate")
    options = AnalysisOptions(decode_budget_bytes=3_000_000)
    refused = analyse(cmyk, "tiff", options).findings
    assert [f.code for f in refused] == ["image-too-large"]
    assert refused[0].evidence["estimated_bytes"] == 4_000_000
    assert analyse(grey, "tiff", options).findings == ()


def test_jpeg_is_budgeted_at_its_dct_scaled_size(tmp_path: Path) -> None:
    """A JPEG decodes at 1/8 scale, so a budget below its full size still lets it through."""
    path = tmp_path / "big.jpg"
    Image.new("RGB", (4000, 3000), "grey").save(path, "JPEG")
    options = AnalysisOptions(decode_budget_bytes=4000 * 3000)  # a quarter of full size
    result = analyse(path, "jpeg", options)
    assert result.findings == ()
    assert result.perceptual["pdq"] is not None


def test_progressive_jpeg_is_budgeted_with_its_coefficients(tmp_path: Path) -> None:
    """libjpeg keeps a progressive file's coefficients at full size, however small the output."""
    image = Image.effect_noise((1000, 1000), 64).convert("RGB")
    progressive, baseline = tmp_path / "p.jpg", tmp_path / "b.jpg"
    image.save(progressive, "JPEG", progressive=True, subsampling=0)
    image.save(baseline, "JPEG", subsampling=0)
    options = AnalysisOptions(decode_budget_bytes=3_000_000)
    refused = analyse(progressive, "jpeg", options).findings
    assert [f.code for f in refused] == ["image-too-large"]
    coefficients = 125 * 125 * 3 * 64 * 2  # 8x8 blocks x 3 components x 64 x 2 bytes
    assert refused[0].evidence["estimated_bytes"] == coefficients + 500 * 500 * 4
    assert analyse(baseline, "jpeg", options).findings == ()


def test_jpeg_coefficients_follow_chroma_subsampling() -> None:
    """4:2:0 holds 3 bytes of coefficients a pixel, 4:4:4 six; baseline files none."""
    subsampled = [(1, 2, 2, 0), (2, 1, 1, 1), (3, 1, 1, 1)]
    full = [(1, 1, 1, 0), (2, 1, 1, 1), (3, 1, 1, 1)]
    assert budget.jpeg_coefficients((4000, 3000), subsampled, progressive=True) == 36_096_000
    assert budget.jpeg_coefficients((4000, 3000), full, progressive=True) == 72_000_000
    assert budget.jpeg_coefficients((4000, 3000), full, progressive=False) == 0


def test_webp_is_refused_from_its_header_before_pillow_opens_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """libwebp allocates canvases on open, so the WebP header alone decides."""
    path = tmp_path / "w.webp"
    Image.new("RGB", (800, 600), "grey").save(path, "WEBP")
    assert budget.webp_canvas(path.read_bytes()[:30]) == (800, 600)
    options = AnalysisOptions(decode_budget_bytes=800 * 600 * 4)
    opened: list[object] = []
    monkeypatch.setattr(Image, "open", lambda *a, **k: opened.append(a) or pytest.fail("opened"))
    findings = analyse(path, "webp", options).findings
    assert [f.code for f in findings] == ["image-too-large"]
    # four canvases and a half of pixels, plus the file, which libwebp is handed whole
    assert findings[0].evidence["estimated_bytes"] == 800 * 600 * 4 * 4.5 + path.stat().st_size
    assert opened == []


def test_image_over_pixel_limit_is_refused_with_metadata_kept(tmp_path: Path) -> None:
    """max_image_pixels is still the operator's hard limit, reported as image-too-large."""
    exif = Image.Exif()
    exif[0x010F] = "TestCam"
    path = tmp_path / "wide.png"
    Image.new("RGB", (200, 200), "grey").save(path, "PNG", exif=exif)
    result = analyse(path, "png", Settings(max_image_pixels=30_000))
    assert [f.code for f in result.findings] == ["image-too-large"]
    finding = result.findings[0]
    assert finding.message == (
        "image not decoded: 200x200 is 40,000 pixels, over the limit of 30,000 "
        "(EVIDENCE_MAX_IMAGE_PIXELS); metadata was read, the original is kept"
    )
    assert finding.evidence["limit"] == "pixels"
    assert result.metadata["make"] == "TestCam"


@pytest.mark.parametrize(
    ("mode", "per_pixel"),
    [
        ("1", 1),
        ("L", 1),
        ("P", 1),
        ("I;16", 2),
        ("I;16B", 2),
        ("LA", 4),
        ("RGB", 4),
        ("RGBA", 4),
        ("CMYK", 4),
        ("YCbCr", 4),
        ("I", 4),
        ("F", 4),
    ],
)
def test_bytes_per_pixel_follow_pillow_storage(mode: str, per_pixel: int) -> None:
    """Bands x bytes per band, with multi-band 8-bit pixels in one 32-bit word as Pillow keeps them."""
    assert budget.bytes_per_pixel(mode) == per_pixel


def test_estimate_counts_decoder_buffers_and_conversion_copies() -> None:
    """HEIF adds its decoder's buffers; palette images add their full-size RGB conversion."""
    assert budget.estimate("png", "RGB", (1000, 1000)).estimated_bytes == 4_000_000
    assert budget.estimate("heif", "RGB", (1000, 1000)).estimated_bytes == 10_000_000
    assert budget.estimate("gif", "P", (1000, 1000)).estimated_bytes == 1_000_000 + 4_000_000
    assert budget.estimate("png", "I;16", (1000, 1000)).estimated_bytes == 2_000_000


def test_budget_default_is_512_mib() -> None:
    """The default budget is 512 MiB of pixel memory per image."""
    assert budget.DECODE_BUDGET_BYTES == 512 * MIB
