"""Cost of the review pages' views against the analysis of the same file and its size.

``python -m bench.views_bench [N]`` writes N (default 10) 12 MP photo-like JPEGs with EXIF, a
12 MP PNG and a 3 s 1080p clip into bench/out/views/, then prints, per file kind, the median
time of: one SHA-256 pass, the intake's analysis (``verification.media.analyse``), and the view
(a JPEG's metadata removed; the PNG re-encoded at EVIDENCE_VIEW_MAX_PX; the clip's WebM proxy by
ffmpeg and by OpenCV), with the view's size against the original's.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench.media_bench import make_photo, make_video

OUT = Path(__file__).resolve().parent / "out" / "views"


def _median(action: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _sha256(path: Path) -> None:
    with path.open("rb") as handle:
        hashlib.file_digest(handle, "sha256")


def _analyse(path: Path, fmt: str) -> None:
    from verification.core.config import AnalysisOptions
    from verification.media import analyse

    analyse(path, fmt, AnalysisOptions())


def _row(name: str, seconds: float, size: int | None = None, original: int | None = None) -> str:
    ratio = f"{size / original:6.1%}" if size and original else ""
    shown = f"{size / 1e6:8.2f} MB" if size else ""
    return f"  {name:<34} {seconds * 1000:9.1f} ms {shown:>12} {ratio:>8}"


def photos(count: int) -> list[str]:
    """Per-photo cost of the JPEG view (metadata removed) against hashing and analysis."""
    from verification.media import views

    paths = []
    for seed in range(count):
        path = OUT / f"photo-{seed}.jpg"
        if not path.exists():
            make_photo(path, seed)
        paths.append(path)
    size = statistics.median(p.stat().st_size for p in paths)
    sha = statistics.median(_median(lambda p=p: _sha256(p), 3) for p in paths)
    analysis = statistics.median(_median(lambda p=p: _analyse(p, "jpeg"), 1) for p in paths)

    def strip(path: Path) -> int:
        sink = io.BytesIO()
        with path.open("rb") as handle:
            views.strip_jpeg(handle, sink)
        return len(sink.getvalue())

    view = statistics.median(_median(lambda p=p: strip(p), 3) for p in paths)
    out_size = strip(paths[0])
    return [
        f"{count} x 12 MP JPEG ({size / 1e6:.2f} MB each), median per photo:",
        _row("SHA-256", sha),
        _row("analysis at intake", analysis),
        _row("view: metadata removed (no decode)", view, out_size, paths[0].stat().st_size),
    ]


def png() -> list[str]:
    """The 12 MP PNG re-encoded as a JPEG view of at most 4096 px."""
    from PIL import Image

    from verification.media import views

    source = OUT / "photo.png"
    if not source.exists():
        with Image.open(OUT / "photo-0.jpg") as image:
            image.save(source, "PNG")
    out = OUT / "view-from-png.jpg"
    budget = 512 * 2**20

    def encode() -> None:
        views.reencode_image(source, "png", out, 4096, 200_000_000, budget)

    analysis = _median(lambda: _analyse(source, "png"), 1)
    seconds = _median(encode, 3)
    return [
        f"12 MP PNG ({source.stat().st_size / 1e6:.1f} MB):",
        _row("analysis at intake", analysis),
        _row("view: re-encoded JPEG, 4096 px", seconds, out.stat().st_size, source.stat().st_size),
    ]


def clip() -> list[str]:
    """The 3 s 1080p clip's proxy (ffmpeg, then OpenCV) against its analysis."""
    from verification.media import views

    source = OUT / "clip.mp4"
    if not source.exists():
        make_video(source)
    size = source.stat().st_size
    lines = [f"3 s 1080p30 clip ({size / 1e6:.1f} MB):"]
    lines.append(
        _row("analysis at intake (8 keyframes)", _median(lambda: _analyse(source, "mp4"), 1))
    )
    out = OUT / "proxy.webm"
    if shutil.which("ffmpeg"):
        seconds = _median(lambda: views.make_proxy(source, out, 1280, 600), 1)
        lines.append(_row("proxy: ffmpeg VP8 720p", seconds, out.stat().st_size, size))
    saved = shutil.which
    shutil.which = lambda *_a, **_k: None  # type: ignore[assignment]
    views.ffmpeg_version.cache_clear()
    try:
        seconds = _median(lambda: views.make_proxy(source, out, 1280, 600), 1)
    finally:
        shutil.which = saved
        views.ffmpeg_version.cache_clear()
    lines.append(_row("proxy: OpenCV VP8 720p (no audio)", seconds, out.stat().st_size, size))
    return lines


def main(argv: list[str]) -> int:
    """Generate the inputs (once) and print the table."""
    count = int(argv[0]) if argv else 10
    OUT.mkdir(parents=True, exist_ok=True)
    for line in [*photos(count), *png(), *clip()]:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
