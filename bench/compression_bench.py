"""Benchmark: how reliable the compression-history signals are (docs/benchmarks.md, findings.md).

Run: ``python -m bench compression``. A generated set: camera-like originals (synthetic scenes
with EXIF naming a camera, written with tables of their own: the Annex K tables scaled and
perturbed as camera firmware's are), each re-saved by Pillow (libjpeg-turbo) at known qualities
with its EXIF kept, and by ffmpeg at known qscales; then, where ``../shared/corpus`` exists,
real camera files (EXIF naming a camera, no editing software named) for the false-positive rate
that matters: cameras and phones that use the standard tables themselves.
"""

from __future__ import annotations

import io
import random
import shutil
import subprocess
import tempfile
from collections import Counter
from pathlib import Path

from verification.media.compression import (
    CUSTOM,
    FFMPEG,
    STANDARD,
    STANDARD_CHROMINANCE,
    STANDARD_LUMINANCE,
    read_history,
)

PILLOW_QUALITIES = (50, 60, 70, 75, 80, 85, 90, 95)
FFMPEG_QSCALES = (2, 3, 5, 8, 12)
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "exif-samples" / "jpg"
EDITORS = ("gimp", "photoshop", "transfer", "windows", "uploader", "paint", "lightroom")


def camera_tables(rng: random.Random) -> list[list[int]]:
    """Tables of a camera's own: Annex K at a base quality, each entry perturbed by up to 20 %."""
    scale = rng.choice((20, 30, 40, 50))
    tables = []
    for std in (STANDARD_LUMINANCE, STANDARD_CHROMINANCE):
        tables.append(
            [min(255, max(1, round(v * scale / 100 * rng.uniform(0.8, 1.2)))) for v in std]
        )
    return tables


def _history(data: bytes) -> tuple[str, int | None, set[str]]:
    history = read_history(io.BytesIO(data), None, _camera(data))
    assert history is not None
    return history.family, history.quality, {f.code for f in history.findings}


def _camera(data: bytes) -> str | None:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return "Fairphone FP4" if image.getexif().get(0x010F) else None


def generated_set(count: int, tmp: Path) -> list[tuple[str, int | None, bytes]]:
    """(expected family, expected quality, bytes) for originals and their re-saves."""
    from PIL import Image

    from verification.media.samples import exif_bytes, scene

    rng = random.Random(2026)
    out: list[tuple[str, int | None, bytes]] = []
    exif = exif_bytes(taken="2024:03:14 11:20:05")
    for n in range(count):
        picture = scene(700 + n, size=(800, 600))
        buffer = io.BytesIO()
        picture.save(buffer, "JPEG", qtables=camera_tables(rng), exif=exif)
        original = buffer.getvalue()
        out.append((CUSTOM, None, original))
        decoded = Image.open(io.BytesIO(original))
        for quality in PILLOW_QUALITIES:
            resaved = io.BytesIO()
            decoded.save(resaved, "JPEG", quality=quality, exif=exif)
            out.append((STANDARD, quality, resaved.getvalue()))
        source = tmp / f"o{n}.jpg"
        source.write_bytes(original)
        for qscale in FFMPEG_QSCALES:
            target = tmp / f"f{n}-{qscale}.jpg"
            quiet = ["-hide_banner", "-loglevel", "error", "-y"]
            argv = ["ffmpeg", *quiet, "-i", str(source), "-q:v", str(qscale), str(target)]
            subprocess.run(argv, check=True)
            out.append((FFMPEG, qscale, target.read_bytes()))
    return out


def corpus_cameras(edited: bool = False) -> list[tuple[str, bytes]]:
    """Real JPEGs whose EXIF names a camera and no editing software (``edited``: and one)."""
    import exifread

    found = []
    for path in sorted(CORPUS.rglob("*.jpg")) if CORPUS.is_dir() else []:
        if "invalid" in path.parts or "tests" in path.parts:
            continue
        with path.open("rb") as handle:
            tags = exifread.process_file(handle, details=False)
        software = str(tags.get("Image Software") or "").lower()
        if tags.get("Image Make") and any(e in software for e in EDITORS) == edited:
            found.append((path.relative_to(CORPUS).as_posix(), path.read_bytes()))
    return found


def main(argv: list[str] | None = None) -> int:
    """Print the confusion of families, quality accuracy and each finding's rates."""
    if shutil.which("ffmpeg") is None:
        print("(skipped: ffmpeg is not installed)")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        samples = generated_set(12, Path(tmp))
    confusion: Counter[tuple[str, str]] = Counter()
    exact, pillow, fired = 0, 0, Counter()
    totals: Counter[str] = Counter()
    for family, quality, data in samples:
        got_family, got_quality, codes = _history(data)
        confusion[(family, got_family)] += 1
        totals[family] += 1
        for code in codes:
            fired[(family, code)] += 1
        if family == STANDARD:
            pillow += 1
            exact += got_quality == quality
    print(f"generated set: {len(samples)} files ({dict(totals)})")
    for (want, got), n in sorted(confusion.items()):
        print(f"  family {want:>17} -> {got:<17} {n}")
    print(f"  Pillow re-saves with the quality estimated exactly: {exact}/{pillow}")
    for code in ("jpeg-software-tables", "jpeg-encoder-identified"):
        rates = ", ".join(f"{fam} {fired[(fam, code)]}/{totals[fam]}" for fam in totals)
        print(f"  {code}: {rates}")
    for edited, label in ((False, "no editor named"), (True, "an editor named in Software")):
        files = corpus_cameras(edited)
        if files:
            flagged = [n for n, data in files if "jpeg-software-tables" in _history(data)[2]]
            print(
                f"real camera files (../shared corpus, EXIF camera, {label}): "
                f"jpeg-software-tables fires on {len(flagged)}/{len(files)}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
