"""Video keyframes at the speed of the container: `python -m bench video`.

Generates (once, into bench/out/) three 20 s 1080p H.264 clips with a keyframe every 2 s, and,
unless ``--quick``, one 120 s 1080p clip of about 600 MB and a 2.4 GB one made of four copies of
it end to end (streams copied), all with ffmpeg. For each clip it
prints, best of three runs:

- ours: ``analyse()`` of the clip (box reader, C2PA, and the keyframe child process: 8 seeks,
  JPEG derivatives, PDQ hashes), and the child alone with its peak resident memory;
- the anchor: a bare PyAV child that opens the clip and seeks to the keyframe at or before the
  same 8 times, decoding one frame each (``container.seek(..., backward=True)``), nothing else;
- ratio ours / anchor (goal <= 1.5x on the 20 s clips), and the child's peak RSS, which should
  not grow with the size of the file (goal: the large clips within 1.25x of the 20 s clips).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import proctree

OUT = Path(__file__).resolve().parent / "out"
KEYFRAMES = 8
GOAL = 1.5
MEMORY_GOAL = 1.25
ROOT = Path(__file__).resolve().parents[1]

# The anchor: open, and for each evenly spaced time seek to the keyframe at or before it and
# decode the first frame there. Same times as ours (verification.media.video_worker).
ANCHOR = """
import sys, av
with av.open(sys.argv[1]) as c:
    s = c.streams.video[0]
    d = float(s.duration * s.time_base) if s.duration else c.duration / 1e6
    n = int(sys.argv[2])
    for i in range(n):
        c.seek((s.start_time or 0) + int(i * d / n / s.time_base), backward=True,
               any_frame=False, stream=s)
        s.codec_context.flush_buffers()
        f = next(c.decode(s))
"""


def make_clip(path: Path, seconds: int, bitrate: str, seed: int, preset: str) -> None:
    """A 1080p30 H.264 clip of moving test patterns with sensor-like grain (so keyframes cost
    what a camera's do to decode), a keyframe about every 2 s."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        msg = "ffmpeg is needed to generate the clips"
        raise RuntimeError(msg)
    source = f"testsrc2=size=1920x1080:rate=30,hue=h={seed * 40},noise=alls=12:allf=t"
    args = [ffmpeg, "-v", "error", "-y", "-f", "lavfi", "-i", source, "-t", str(seconds)]
    args += ["-c:v", "libx264", "-preset", preset, "-b:v", bitrate, "-maxrate", bitrate]
    args += ["-bufsize", bitrate, "-g", "60", "-keyint_min", "60", "-pix_fmt", "yuv420p"]
    tmp = path.with_suffix(".part.mp4")
    subprocess.run([*args, str(tmp)], check=True)
    tmp.replace(path)


def clips(quick: bool) -> list[Path]:
    """Create (or reuse) the clips."""
    OUT.mkdir(parents=True, exist_ok=True)
    wanted = [(f"clip-1080p-20s-{i}.mp4", 20, "12M", i, "veryfast") for i in range(3)]
    if not quick:
        wanted.append(("clip-1080p-large.mp4", 120, "40M", 3, "ultrafast"))
    paths = []
    for name, seconds, bitrate, seed, preset in wanted:
        path = OUT / name
        if not path.exists():
            print(f"generating {name} ({seconds} s at {bitrate}b/s) ...", flush=True)
            make_clip(path, seconds, bitrate, seed, preset)
        paths.append(path)
    if not quick:
        huge = OUT / "clip-1080p-multi-gb.mp4"
        if not huge.exists():
            print(f"joining 4 copies of {paths[-1].name} into {huge.name} ...", flush=True)
            join(paths[-1], 4, huge)
        paths.append(huge)
    return paths


def join(clip: Path, copies: int, path: Path) -> None:
    """``copies`` copies of ``clip`` end to end, streams copied (no re-encode): a multi-GB file."""
    listing = path.with_suffix(".txt")
    listing.write_text(f"file '{clip.name}'\n" * copies)
    args = ["ffmpeg", "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(listing)]
    tmp = path.with_suffix(".part.mp4")
    subprocess.run([*args, "-c", "copy", str(tmp)], check=True)
    listing.unlink()
    tmp.replace(path)


def best(argv: list[str], repeat: int = 3) -> proctree.Run:
    """The fastest of ``repeat`` runs of ``argv`` (wall time and peak tree memory)."""
    return min((proctree.run(argv, cwd=ROOT) for _ in range(repeat)), key=lambda r: r.seconds)


def measure(py: str, path: Path) -> tuple[proctree.Run, proctree.Run]:
    """Our keyframe child and the bare PyAV anchor on one clip."""
    with tempfile.TemporaryDirectory(prefix="bench-video-") as tmp:
        worker = [py, "-m", "verification.media.video_worker", str(path), tmp, str(KEYFRAMES)]
        child = best(worker)
    return child, best([py, "-c", ANCHOR, str(path), str(KEYFRAMES)])


def ours_analyse(path: Path) -> float:
    """Wall seconds of the full analysis of the clip, in this process (the child included)."""
    from verification.core.config import Settings
    from verification.media import analyse

    start = time.perf_counter()
    result = analyse(path, "mp4", Settings())
    seconds = time.perf_counter() - start
    if result.findings or len(result.perceptual["keyframes"]) == 0:
        msg = f"{path.name}: analysis failed: {[f.message for f in result.findings]}"
        raise RuntimeError(msg)
    return seconds


def main(argv: list[str] | None = None) -> int:
    """Print the table and the verdicts; exit 1 when a goal is missed.

    Goals: on the 20 s clips, ours within GOAL x the anchor; on the large clip, the child's peak
    memory within MEMORY_GOAL x its peak on the 20 s clips (flat in the size of the file). The
    large clip's time ratio is printed too: it is cheap to decode (fast preset), so the fixed
    costs weigh more there.
    """
    argv = list(argv or [])
    paths = clips("--quick" in argv)
    py = sys.executable
    print(
        f"{'clip':<24} {'MB':>6} {'analyse s':>9} {'child s':>8} {'child MiB':>9} "
        f"{'PyAV s':>7} {'PyAV MiB':>8} {'ratio':>6}"
    )
    ratios: dict[str, float] = {}
    peaks: dict[str, float] = {}
    for path in paths:
        child, anchor = measure(py, path)
        analysed = min(ours_analyse(path) for _ in range(3))
        ratios[path.name], peaks[path.name] = analysed / anchor.seconds, child.peak_mib
        print(
            f"{path.name:<24} {path.stat().st_size / 1e6:>6.0f} {analysed:>9.3f} "
            f"{child.seconds:>8.3f} {child.peak_mib:>9.0f} {anchor.seconds:>7.3f} "
            f"{anchor.peak_mib:>8.0f} {ratios[path.name]:>5.2f}x"
        )
    short = [name for name in ratios if "-20s-" in name]
    worst = max(ratios[name] for name in short)
    status = int(worst > GOAL)
    print(
        f"20 s clips: ours / PyAV keyframe seek, worst {worst:.2f}x (goal <= {GOAL}x): "
        f"{'met' if worst <= GOAL else 'MISSED'}"
    )
    for name in (name for name in peaks if name not in short):
        growth = peaks[name] / max(peaks[n] for n in short)
        status = status or int(growth > MEMORY_GOAL)
        print(
            f"{name}: child peak memory {growth:.2f}x the 20 s clips' (goal <= {MEMORY_GOAL}x): "
            f"{'met' if growth <= MEMORY_GOAL else 'MISSED'}; time ratio {ratios[name]:.2f}x"
        )
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
