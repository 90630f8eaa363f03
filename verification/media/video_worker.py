"""Child process that decodes one video with PyAV (FFmpeg); run by :mod:`verification.media.video`.

``python -m verification.media.video_worker PATH OUT_DIR COUNT`` prints one JSON object on
stdout (stream facts and keyframe hashes) and writes ``frame-NN.jpg`` files into OUT_DIR.
It runs in its own process so a decoder crash or hang on a hostile file only costs this
process, which the parent kills after its timeout.

Keyframes are found the way a player scrubs: for each of COUNT evenly spaced times the demuxer
seeks to the nearest keyframe at or before it (from the container's index) and only that frame
is decoded, so the cost is COUNT key-frame decodes whatever the length of the video, and memory
stays that of one frame. Each recorded ``time_s`` and ``index`` is that of the frame actually
decoded (its presentation time), not the time asked for; two times that land on the same
keyframe give one entry.

Test hook: when ``EVIDENCE_TEST_VIDEO_WORKER_FAULT`` is ``abort`` or ``kill`` the worker dies
that way before decoding. Only the test suite sets it, to prove that a decoder crash ends as
a finding and the batch goes on; it cannot read or change any evidence.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

KEYFRAME_PX = 1280
PDQ_PX = 512
JPEG_QUALITY = 85
FAULT_ENV = "EVIDENCE_TEST_VIDEO_WORKER_FAULT"
# Packets demuxed after a seek before giving up on finding a frame there (a broken index).
MAX_PACKETS_PER_SEEK = 256
# Decoded frames waiting for their JPEG and hash at most (memory bound).
IN_FLIGHT = 2


def _fault_hook() -> None:
    fault = os.environ.get(FAULT_ENV)
    if fault == "abort":
        os.abort()
    if fault == "kill":
        os.kill(os.getpid(), signal.SIGKILL)


def _codec_tag(stream: Any) -> str | None:
    tag = str(stream.codec_context.codec_tag or "").strip("\x00 ")
    return tag if tag.isprintable() and tag else stream.codec_context.name


def stream_facts(container: Any, stream: Any) -> dict[str, Any]:
    """Width, height, fps, frame count, duration and codec from the container's headers."""
    rate = stream.average_rate or stream.guessed_rate
    fps = float(rate) if rate else 0.0
    if stream.duration is not None and stream.time_base:
        duration = float(stream.duration * stream.time_base)
    else:
        duration = container.duration / 1_000_000 if container.duration else 0.0
    count = int(stream.frames or 0) or (round(duration * fps) if duration and fps else 0)
    return {
        "width": int(stream.codec_context.width or 0) or None,
        "height": int(stream.codec_context.height or 0) or None,
        "fps": round(fps, 6) if fps > 0 else None,
        "frame_count": count if count > 0 else None,
        "duration_s": round(duration, 6) if duration > 0 else None,
        "codec": _codec_tag(stream),
    }


def target_times(duration_s: float | None, wanted: int) -> list[float]:
    """``wanted`` evenly spaced times in seconds starting at 0 (just 0 without a duration)."""
    if not duration_s:
        return [0.0]
    return [i * duration_s / wanted for i in range(wanted)]


def _fit(width: int, height: int, limit: int) -> tuple[int, int]:
    """``(width, height)`` shrunk to at most ``limit`` on the long side (even, never enlarged)."""
    scale = min(1.0, limit / max(width, height, 1))
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


def save_keyframe(frame: Any, path: Path) -> dict[str, Any]:
    """Write the frame as a JPEG of at most KEYFRAME_PX and return its PDQ hash.

    FFmpeg's scaler (area averaging) converts and shrinks the decoded picture to KEYFRAME_PX for
    the JPEG (Pillow); the hash is taken on that picture shrunk again (box filter) to about
    PDQ_PX, the size photos are hashed at.
    """
    import numpy as np
    import pdqhash
    from PIL import Image

    w, h = _fit(frame.width, frame.height, KEYFRAME_PX)
    picture = Image.fromarray(
        frame.reformat(w, h, format="rgb24", interpolation="AREA").to_ndarray()
    )
    picture.save(path, "JPEG", quality=JPEG_QUALITY)
    small = picture.resize(_fit(w, h, PDQ_PX), Image.Resampling.BOX)
    vector, quality = pdqhash.compute(np.asarray(small))
    return {"pdq": np.packbits(vector.astype(np.uint8)).tobytes().hex(), "quality": int(quality)}


def _frame_at(container: Any, stream: Any, seconds: float) -> Any | None:
    """The first frame decoded after seeking to the keyframe at or before ``seconds``."""
    base = stream.time_base
    origin = stream.start_time or 0
    container.seek(origin + int(seconds / base), backward=True, any_frame=False, stream=stream)
    decoder = stream.codec_context
    decoder.flush_buffers()
    for count, packet in enumerate(container.demux(stream)):
        if count >= MAX_PACKETS_PER_SEEK:
            return None
        for frame in packet.decode():
            return frame
    return None


def _position(pts: int | None, stream: Any, fps: float | None) -> dict[str, Any]:
    """Time (seconds from the stream's start) and frame number of a decoded frame."""
    if pts is None:
        return {"index": None, "time_s": None}
    time_s = max(0.0, float((pts - (stream.start_time or 0)) * stream.time_base))
    return {"index": round(time_s * fps) if fps else None, "time_s": round(time_s, 6)}


def extract(path: Path, out_dir: Path, wanted: int) -> dict[str, Any]:
    """Stream facts plus up to ``wanted`` keyframes; ``error`` set when nothing decodes.

    One thread seeks and decodes while another writes the JPEGs and hashes (FFmpeg decodes
    without holding the interpreter lock, so the two overlap, and the hashing libraries load
    while the first frame decodes); at most IN_FLIGHT decoded frames wait, so memory does not
    grow with the number of keyframes or the length of the video.
    """
    import av

    try:
        container = av.open(str(path), metadata_errors="ignore")
    except (av.FFmpegError, UnicodeDecodeError) as error:
        return {"error": f"VideoNotOpened:{type(error).__name__}"}
    with container, ThreadPoolExecutor(max_workers=1) as pool:
        if not container.streams.video:
            return {"error": "NoVideoStream"}
        stream = container.streams.video[0]
        facts = stream_facts(container, stream)
        keyframes: list[dict[str, Any]] = []
        pending: deque[tuple[dict[str, Any], Future[dict[str, Any]]]] = deque()
        seen: set[int] = set()
        for seconds in target_times(facts["duration_s"], wanted):
            try:
                frame = _frame_at(container, stream, seconds)
            except av.FFmpegError:
                continue
            if frame is None or (frame.pts is not None and frame.pts in seen):
                continue
            seen.add(frame.pts)
            entry = _position(frame.pts, stream, facts["fps"])
            entry["file"] = f"frame-{len(keyframes):02d}.jpg"
            keyframes.append(entry)
            pending.append((entry, pool.submit(save_keyframe, frame, out_dir / entry["file"])))
            while len(pending) >= IN_FLIGHT:
                _finish(*pending.popleft())
        while pending:
            _finish(*pending.popleft())
        facts["keyframes"] = keyframes
        if not keyframes:
            facts["error"] = "NoDecodableFrames"
        from PIL import __version__ as pillow_version

        facts["pyav"], facts["pillow"] = av.__version__, pillow_version
        return facts


def _finish(entry: dict[str, Any], future: Future[dict[str, Any]]) -> None:
    file = entry.pop("file")
    entry.update(future.result(), file=file)


def main(argv: list[str]) -> int:
    """Entry point: print the JSON result for one file."""
    _fault_hook()
    path, out_dir, wanted = Path(argv[0]), Path(argv[1]), int(argv[2])
    result = extract(path, out_dir, wanted)
    sys.stdout.write(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
