"""Peak memory (and wall time) of analysing one photo, each in a fresh process.

``python -m bench memory`` (or ``python -m bench.memory_bench [--code DIR]``) writes its inputs
into bench/out/memory/ (a normal 12 MP JPEG; a 775 KB PNG of 14000x14000 RGBA, the
decompression bomb that once cost 2.4 GB; a large 16-bit PNG; a big TIFF; 12 MP PNG, WebP, HEIC
and AVIF to calibrate ``budget.DECODER_COPIES``), analyses each in its own interpreter and
prints a table: the child's peak RSS, the part above an interpreter that only imported the
library, the decode estimate and the findings. ``--code DIR`` analyses with the
``verification`` package found in DIR instead (e.g. an export of an older commit), to compare.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out" / "memory"
MIB = 1024 * 1024

# The child reads its own VmHWM: on Linux ru_maxrss survives execve, so getrusage in a child
# (or RUSAGE_CHILDREN in the parent) starts from the parent's peak, here the input generator's.
_CHILD = """
import json, sys, time
from pathlib import Path
from verification.core.config import Settings
from verification.media import analyse
from verification.media.image import _init_pillow, extractor_versions

def peak_kib():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))

_init_pillow(); extractor_versions()
try:  # imported lazily by analyse (C2PA, pHash): part of the baseline, not of the decode
    import c2pa, scipy.fftpack  # noqa: F401, E401
except ImportError:
    pass
base = peak_kib()
result, seconds = None, 0.0
if sys.argv[1] != "-":
    start = time.perf_counter()
    result = analyse(Path(sys.argv[1]), sys.argv[2], Settings())
    seconds = time.perf_counter() - start
print(json.dumps({
    "base_kib": base,
    "peak_kib": peak_kib(),
    "seconds": seconds,
    "codes": [f.code for f in result.findings] if result else [],
}))
"""


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def zero_png(width: int, height: int, bit_depth: int = 8, colour_type: int = 6) -> bytes:
    """A valid PNG of zero pixels, built in a few MB (a repeated full-flush deflate segment)."""
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour_type]
    total = (1 + width * channels * bit_depth // 8) * height
    head = zlib.compressobj(9, zlib.DEFLATED, -15)
    segment = head.compress(bytes(MIB)) + head.flush(zlib.Z_FULL_FLUSH)
    last = zlib.compressobj(9, zlib.DEFLATED, -15)
    tail = last.compress(bytes(total % MIB)) + last.flush()
    adler = ((total % 65521) << 16) | 1
    idat = b"\x78\xda" + segment * (total // MIB) + tail + struct.pack(">I", adler)
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
    )


def _photo(size: tuple[int, int]) -> object:
    """A photo-like RGB image: gradients plus sensor-like noise."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(1)
    width, height = size
    x = np.linspace(0, 255, width, dtype=np.float32)
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    base = np.stack([x + 0 * y, y + 0 * x, (x + y) / 2], axis=-1)
    noisy = base + rng.normal(0, 6, size=base.shape).astype(np.float32)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "RGB")


def _save(fmt: str, **params: object) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        if fmt == "HEIF":
            import pillow_heif

            pillow_heif.register_heif_opener()
        _photo((4000, 3000)).save(path, fmt, **params)  # type: ignore[attr-defined]

    return write


def _big_tiff(path: Path) -> None:
    from PIL import Image

    tile = _photo((2500, 2500))
    image = Image.new("RGB", (10_000, 7_500))
    for x in range(0, 10_000, 2500):
        for y in range(0, 7_500, 2500):
            image.paste(tile, (x, y))  # type: ignore[arg-type]
    image.save(path, "TIFF", compression="tiff_deflate")


# name -> (file, our format name, writer, what it is)
CASES: dict[str, tuple[str, str, Callable[[Path], None], str]] = {
    "jpeg-12mp": ("photo-12mp.jpg", "jpeg", _save("JPEG", quality=90), "4000x3000 JPEG q90"),
    "jpeg-prog": (
        "photo-12mp-progressive.jpg",
        "jpeg",
        _save("JPEG", quality=90, progressive=True),
        "4000x3000 progressive JPEG",
    ),
    "png-bomb": (
        "bomb-14000.png",
        "png",
        lambda p: p.write_bytes(zero_png(14_000, 14_000)),
        "14000x14000 RGBA PNG of zeros",
    ),
    "png-16bit": (
        "deep-8000x6000.png",
        "png",
        lambda p: p.write_bytes(zero_png(8_000, 6_000, bit_depth=16, colour_type=2)),
        "8000x6000 16-bit RGB PNG",
    ),
    "tiff-75mp": ("big-10000x7500.tif", "tiff", _big_tiff, "10000x7500 RGB TIFF, deflate"),
    "png-12mp": ("photo-12mp.png", "png", _save("PNG"), "4000x3000 RGB PNG"),
    "webp-12mp": ("photo-12mp.webp", "webp", _save("WEBP", quality=80), "4000x3000 WebP"),
    "heic-12mp": ("photo-12mp.heic", "heif", _save("HEIF", quality=80), "4000x3000 HEIC"),
    "avif-12mp": ("photo-12mp.avif", "avif", _save("AVIF", quality=60, speed=10), "4000x3000 AVIF"),
}


def generate() -> dict[str, Path]:
    """Write (or reuse) every input; a format this machine cannot encode is left out."""
    OUT.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for name, (filename, _fmt, write, _what) in CASES.items():
        path = OUT / filename
        if not path.exists():
            try:
                write(path)
            except (ImportError, KeyError, OSError, ValueError) as error:
                print(f"  {name}: cannot write it here ({type(error).__name__}); skipped")
                path.unlink(missing_ok=True)
                continue
        paths[name] = path
    return paths


def measure(path: Path | None, fmt: str, code: Path) -> dict[str, object]:
    """Analyse ``path`` in a fresh interpreter using the package in ``code``; its report."""
    env = {**os.environ, "PYTHONPATH": str(code)}
    argv = [sys.executable, "-c", _CHILD, str(path) if path else "-", fmt]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=code, timeout=600)
    if done.returncode != 0:
        return {"error": f"exit {done.returncode}"}
    report: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


def _estimate_mib(path: Path, fmt: str) -> str:
    """Our decode estimate for the file, from its header, as decode() makes it."""
    from PIL import Image

    from verification.media import budget
    from verification.media.image import _init_pillow, draft_request

    _init_pillow()
    Image.MAX_IMAGE_PIXELS = None  # the bomb is opened for its header only
    with Image.open(path) as image:
        buffers = path.stat().st_size if fmt in budget.FILE_READ_WHOLE else 0
        if image.format == "JPEG":
            progressive = bool(image.info.get("progressive"))
            buffers = budget.jpeg_coefficients(image.size, image.layer, progressive)  # type: ignore[attr-defined]
            image.draft("RGB", draft_request(image.size))
        cost = budget.estimate(fmt, image.mode, image.size, buffers)
        return f"{cost.estimated_bytes / MIB:,.0f}"


def main(argv: list[str] | None = None) -> int:
    """Generate the inputs, measure each in a fresh process, print the table."""
    args = sys.argv[1:] if argv is None else argv
    code = Path(args[args.index("--code") + 1]).resolve() if "--code" in args else ROOT
    paths = generate()
    idle = measure(None, "-", code)
    base = int(str(idle.get("peak_kib", 0))) / 1024
    print(f"code: {code}; an interpreter that imported the library peaks at {base:.0f} MiB")
    print(
        f"  {'case':<10} {'file':>9} {'what':<31} {'estimate':>9} {'peak':>9} {'above':>9}"
        f" {'time':>7}  findings"
    )
    for name, path in paths.items():
        _file, fmt, _write, what = CASES[name]
        report = measure(path, fmt, code)
        if "error" in report:
            print(f"  {name:<10} failed: {report['error']}")
            continue
        peak = int(str(report["peak_kib"])) / 1024
        print(
            f"  {name:<10} {path.stat().st_size / MIB:7.1f}MB {what:<31}"
            f" {_estimate_mib(path, fmt):>6}MiB {peak:6.0f}MiB {peak - base:6.0f}MiB"
            f" {float(str(report['seconds'])):6.2f}s  {','.join(report['codes']) or '-'}"  # type: ignore[arg-type]
        )
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
