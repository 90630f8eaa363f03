"""Child process that decodes one video with OpenCV; run by :mod:`verification.media.video`.

``python -m verification.media.video_worker PATH OUT_DIR COUNT`` prints one JSON object on
stdout (stream facts and keyframe hashes) and writes ``frame-NN.jpg`` files into OUT_DIR.
It runs in its own process so a decoder crash or hang on a hostile file only costs this
process, which the parent kills after its timeout.

Test hook: when ``EVIDENCE_TEST_VIDEO_WORKER_FAULT`` is ``abort`` or ``kill`` the worker dies
that way before decoding. Only the test suite sets it, to prove that a decoder crash ends as
a finding and the batch goes on; it cannot read or change any evidence.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

KEYFRAME_PX = 1280
JPEG_QUALITY = 85
FAULT_ENV = "EVIDENCE_TEST_VIDEO_WORKER_FAULT"


def _fault_hook() -> None:
    fault = os.environ.get(FAULT_ENV)
    if fault == "abort":
        os.abort()
    if fault == "kill":
        os.kill(os.getpid(), signal.SIGKILL)


def _fourcc(value: float) -> str | None:
    code = int(value)
    if code <= 0:
        return None
    text = "".join(chr((code >> (8 * i)) & 0xFF) for i in range(4))
    return text.strip("\x00 ") if text.isprintable() else None


def stream_facts(capture: Any) -> dict[str, Any]:
    """Width, height, fps, frame count, duration and codec as OpenCV reports them."""
    import cv2

    fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    return {
        "width": int(capture.get(cv2.CAP_PROP_FRAME_WIDTH) or 0) or None,
        "height": int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0) or None,
        "fps": round(fps, 6) if fps > 0 else None,
        "frame_count": count if count > 0 else None,
        "duration_s": round(count / fps, 6) if fps > 0 and count > 0 else None,
        "codec": _fourcc(capture.get(cv2.CAP_PROP_FOURCC) or 0),
    }


def keyframe_indices(frame_count: int | None, wanted: int) -> list[int]:
    """``wanted`` evenly spaced frame indices starting at 0 (fewer for short videos)."""
    if not frame_count:
        return list(range(wanted))
    n = min(wanted, frame_count)
    return sorted({i * frame_count // n for i in range(n)})


def save_keyframe(frame: Any, path: Path) -> dict[str, Any]:
    """Write the frame as a JPEG of at most KEYFRAME_PX and return its PDQ hash."""
    import cv2
    import numpy as np
    import pdqhash

    height, width = frame.shape[:2]
    scale = min(1.0, KEYFRAME_PX / max(height, width))
    if scale < 1.0:
        size = (int(width * scale), int(height * scale))
        frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
    ok, encoded = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        msg = "JPEG encoding of a keyframe failed"
        raise ValueError(msg)
    path.write_bytes(encoded.tobytes())
    rgb = np.ascontiguousarray(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    vector, quality = pdqhash.compute(rgb)
    return {"pdq": np.packbits(vector.astype(np.uint8)).tobytes().hex(), "quality": int(quality)}


def extract(path: Path, out_dir: Path, wanted: int) -> dict[str, Any]:
    """Stream facts plus up to ``wanted`` keyframes; ``error`` set when nothing decodes."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            return {"error": "VideoNotOpened"}
        facts = stream_facts(capture)
        fps = facts["fps"]
        keyframes: list[dict[str, Any]] = []
        for index in keyframe_indices(facts["frame_count"], wanted):
            capture.set(cv2.CAP_PROP_POS_FRAMES, index)
            ok, frame = capture.read()
            if not ok or frame is None:
                continue
            name = f"frame-{len(keyframes):02d}.jpg"
            entry = {"index": index, "time_s": round(index / fps, 6) if fps else None}
            entry.update(save_keyframe(frame, out_dir / name), file=name)
            keyframes.append(entry)
        facts["keyframes"] = keyframes
        if not keyframes:
            facts["error"] = "NoDecodableFrames"
        facts["opencv"] = cv2.__version__
        return facts
    finally:
        capture.release()


def main(argv: list[str]) -> int:
    """Entry point: print the JSON result for one file."""
    _fault_hook()
    path, out_dir, wanted = Path(argv[0]), Path(argv[1]), int(argv[2])
    result = extract(path, out_dir, wanted)
    sys.stdout.write(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
