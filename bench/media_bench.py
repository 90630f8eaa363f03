"""Throughput of the extract step against sha256sum, ExifTool and the decoding floor.

``python -m bench.media_bench [N]`` writes N (default 20) 12 MP photo-like JPEGs with EXIF and
a short 1080p video into bench/out/, then prints MB/s for each contender and two ratios:

* ours with 2 workers / (sha256sum + exiftool batch), goal <= 2.0 (times, lower is better);
* ours per core / floor (one SHA-256 pass + the smallest DCT-scaled decode), goal <= 1.25.

"Ours" includes a SHA-256 pass over each file (hashlib), to compare like with like.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"
PHOTO_SIZE = (4000, 3000)
GOAL_VS_TOOLS = 2.0
GOAL_VS_FLOOR = 1.25


def make_photo(path: Path, seed: int) -> None:
    """A 12 MP JPEG (q90) of gradients plus sensor-like noise, with camera EXIF."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    width, height = PHOTO_SIZE
    x = np.linspace(0, 255, width, dtype=np.float32)
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    base = np.stack([x + 0 * y, y + 0 * x, (x + y) / 2], axis=-1)
    noisy = base + rng.normal(0, 6, size=base.shape).astype(np.float32)
    image = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "RGB")
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0131] = "BenchCam", "B-1", "bench 1.0"
    exif.get_ifd(0x8769)[0x9003] = "2025:01:02 03:04:05"
    image.save(path, "JPEG", quality=90, exif=exif)


def make_video(path: Path, seconds: int = 3) -> None:
    """A 1080p mp4v clip of moving gradients, written by OpenCV."""
    import cv2
    import numpy as np

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (1920, 1080))
    ramp = np.tile(np.linspace(0, 255, 1920, dtype=np.uint8), (1080, 1))
    for i in range(seconds * 30):
        frame = np.dstack([np.roll(ramp, i * 8, axis=1), ramp.T[:1080, :1080].max() - ramp, ramp])
        writer.write(frame)
    writer.release()


def generate(count: int) -> tuple[list[Path], Path]:
    """Create (or reuse) the sample photos and the video."""
    OUT.mkdir(parents=True, exist_ok=True)
    photos = []
    for i in range(count):
        path = OUT / f"photo-{i:03d}.jpg"
        if not path.exists():
            make_photo(path, i)
        photos.append(path)
    video = OUT / "video-1080p.mp4"
    if not video.exists():
        make_video(video)
    return photos, video


def analyse_one(path: Path) -> str:
    """Our full per-photo work: SHA-256 plus the extract step."""
    from verification.core.config import Settings
    from verification.media import analyse

    digest = sha256_file(path)
    analyse(path, "jpeg", Settings())
    return digest


def floor_one(path: Path) -> str:
    """The least any extractor must do: one SHA-256 pass and a 1/8 DCT-scaled decode."""
    from PIL import Image

    digest = sha256_file(path)
    with Image.open(path) as image:
        image.draft("RGB", (image.width // 8, image.height // 8))
        image.load()
    return digest


def sha256_file(path: Path) -> str:
    """Streaming SHA-256 in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def timed(action: Callable[[], object], repeat: int = 3) -> float:
    """Best wall-clock seconds of ``repeat`` calls (the machine may be shared; best is least
    disturbed)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - start)
    return best


def ours(photos: list[Path], workers: int) -> float:
    """Seconds for the pool to analyse every photo (workers warmed up first)."""
    with ProcessPoolExecutor(max_workers=workers) as pool:
        list(pool.map(analyse_one, photos[:workers]))
        return timed(lambda: list(pool.map(analyse_one, photos)))


def tool_time(argv: list[str]) -> float | None:
    """Seconds for an external command, or None when it is not installed."""
    if shutil.which(argv[0]) is None:
        return None
    return timed(lambda: subprocess.run(argv, check=True, capture_output=True))


def row(name: str, seconds: float | None, megabytes: float) -> None:
    """Print one result line."""
    if seconds is None:
        print(f"  {name:<36} skipped (tool not installed)")
        return
    print(f"  {name:<36} {seconds:8.3f} s  {megabytes / seconds:8.1f} MB/s")


def main(argv: list[str] | None = None) -> int:
    """Generate inputs, measure, print MB/s and the two ratios."""
    args = sys.argv[1:] if argv is None else argv
    count = int(args[0]) if args else 20
    photos, video = generate(count)
    files = [str(p) for p in photos]
    megabytes = sum(p.stat().st_size for p in photos) / 1e6
    for path in photos:
        sha256_file(path)  # warm the page cache so every contender reads from memory
    print(f"{count} photos, {megabytes:.1f} MB, {PHOTO_SIZE[0]}x{PHOTO_SIZE[1]} q90")
    t_sha = tool_time(["sha256sum", *files])
    t_exif = tool_time(["exiftool", "-json", "-n", "-G1", *files])
    t_one, t_two = ours(photos, 1), ours(photos, 2)
    t_floor = timed(lambda: [floor_one(p) for p in photos])
    row("sha256sum", t_sha, megabytes)
    row("exiftool -json batch", t_exif, megabytes)
    row("ours (sha256 + extract), 1 worker", t_one, megabytes)
    row("ours (sha256 + extract), 2 workers", t_two, megabytes)
    row("floor (sha256 + 1/8 DCT decode), 1 core", t_floor, megabytes)
    _video_row(video)
    return _ratios(t_sha, t_exif, t_two, t_one, t_floor)


def _video_row(video: Path) -> None:
    from verification.core.config import Settings
    from verification.media import analyse

    seconds = timed(lambda: analyse(video, "mp4", Settings()), repeat=1)
    row("video 1080p (extract, 8 keyframes)", seconds, video.stat().st_size / 1e6)


def _ratios(
    t_sha: float | None, t_exif: float | None, t_two: float, t_one: float, t_floor: float
) -> int:
    if t_sha is not None and t_exif is not None:
        vs_tools = t_two / (t_sha + t_exif)
        print(f"ours(2 workers) / (sha256sum + exiftool): {vs_tools:.2f} (goal <= {GOAL_VS_TOOLS})")
    else:
        print("ours / tools ratio skipped: sha256sum or exiftool missing")
    vs_floor = t_one / t_floor
    print(f"ours per core / floor: {vs_floor:.2f} (goal <= {GOAL_VS_FLOOR})")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())
