"""Demo submissions: synthetic photos with real EXIF, and the claims their submitters make.

The pictures are drawn here (no third-party images), so their provenance is this file. Each one is
built to show one kind of result: a consistent photo, a contradicted place, a contradicted time,
an edited file, a stripped file, a resubmission, a recycled (resized) copy and a truncated file.
"""

from __future__ import annotations

import io
import random
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class Sample:
    """One demo submission: the file to write, its claims and what it shows."""

    name: str
    case: str
    submitter: str
    claimed_location: tuple[float, float] | None
    claimed_time: str | None
    shows: str
    source_url: str | None = None


GPS_IFD = 0x8825
EXIF_IFD = 0x8769


def _dms(value: float) -> tuple[Fraction, Fraction, Fraction]:
    value = abs(value)
    degrees = int(value)
    minutes_full = (value - degrees) * 60
    minutes = int(minutes_full)
    seconds = Fraction(round((minutes_full - minutes) * 60 * 10000), 10000)
    return Fraction(degrees), Fraction(minutes), seconds


def exif_bytes(
    *,
    make: str = "Fairphone",
    model: str = "FP4",
    taken: str | None = None,
    offset: str | None = None,
    gps: tuple[float, float, float] | None = None,
    software: str | None = None,
    modified: str | None = None,
) -> bytes:
    """EXIF block (as Pillow writes it) with camera, capture time, offset and GPS."""
    from PIL import Image

    exif = Image.Exif()
    exif[0x010F] = make
    exif[0x0110] = model
    exif[0x0112] = 1
    if software:
        exif[0x0131] = software
    if modified or taken:
        exif[0x0132] = modified or taken
    sub = exif.get_ifd(EXIF_IFD)
    if taken:
        sub[0x9003] = taken
        sub[0x9004] = taken
    if offset:
        sub[0x9011] = offset
    if gps:
        lat, lon, alt = gps
        g = exif.get_ifd(GPS_IFD)
        g[0] = b"\x02\x03\x00\x00"
        g[1] = "N" if lat >= 0 else "S"
        g[2] = _dms(lat)
        g[3] = "E" if lon >= 0 else "W"
        g[4] = _dms(lon)
        g[5] = b"\x00" if alt >= 0 else b"\x01"
        g[6] = Fraction(round(abs(alt) * 10), 10)
    return exif.tobytes()


def scene(seed: int, size: tuple[int, int] = (1024, 768), night: bool = False) -> Any:
    """A procedural 'photo': sky gradient, hills, buildings and noise, distinct per seed."""
    from PIL import Image, ImageDraw, ImageFilter

    rnd = random.Random(seed)  # noqa: S311 (deterministic pictures, not secrets)
    width, height = size
    image = Image.new("RGB", size)
    draw = ImageDraw.Draw(image)
    top = (10, 12, 30) if night else (rnd.randint(90, 140), rnd.randint(150, 190), 235)
    bottom = (25, 25, 45) if night else (220, 225, 235)
    for y in range(height // 2):
        t = y / (height / 2)
        draw.line(
            [(0, y), (width, y)],
            fill=tuple(int(a + (b - a) * t) for a, b in zip(top, bottom, strict=True)),
        )
    ground = (
        (20, 30, 20)
        if night
        else (rnd.randint(60, 120), rnd.randint(100, 150), rnd.randint(40, 80))
    )
    draw.rectangle([0, height // 2, width, height], fill=ground)
    for _ in range(rnd.randint(5, 9)):
        x, w, h = rnd.randint(0, width), rnd.randint(60, 200), rnd.randint(80, 300)
        shade = rnd.randint(20, 60) if night else rnd.randint(110, 220)
        draw.rectangle(
            [x, height // 2 - h, x + w, height // 2 + 40], fill=(shade, shade - 10, shade - 20)
        )
    for _ in range(rnd.randint(3, 6)):
        cx, cy, r = rnd.randint(0, width), rnd.randint(height // 2, height), rnd.randint(30, 120)
        draw.ellipse([cx - r, cy - r // 2, cx + r, cy + r // 2], fill=(rnd.randint(30, 90),) * 3)
    return image.filter(ImageFilter.GaussianBlur(1.2))


def jpeg(image: Any, exif: bytes | None = None, quality: int = 90) -> bytes:
    """Encode as JPEG, with EXIF when given."""
    out = io.BytesIO()
    kwargs: dict[str, Any] = {"quality": quality}
    if exif:
        kwargs["exif"] = exif
    image.save(out, "JPEG", **kwargs)
    return out.getvalue()


def video(seed: int, seconds: int = 2, fps: int = 10) -> bytes:
    """A short MP4 (MPEG-4 Part 2, written by OpenCV) of a scene with a moving vehicle."""
    import tempfile

    import cv2
    import numpy as np

    base = np.array(scene(seed, size=(320, 240)))[:, :, ::-1]
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "clip.mp4")
        writer = cv2.VideoWriter(path, cv2.VideoWriter.fourcc(*"mp4v"), fps, (320, 240))
        for i in range(seconds * fps):
            frame = base.copy()
            x = 10 + i * 12
            cv2.rectangle(frame, (x, 150), (x + 40, 175), (30, 30, 200), -1)
            writer.write(frame)
        writer.release()
        return Path(path).read_bytes()


def build(directory: Path) -> list[tuple[Path, Sample]]:
    """Write the demo files into ``directory``; return each path with its claims."""
    directory.mkdir(parents=True, exist_ok=True)
    kyiv, lagos = (50.4501, 30.5234, 179.0), (6.5244, 3.3792, 41.0)
    files: list[tuple[bytes, Sample]] = []

    market = jpeg(scene(1), exif_bytes(taken="2024:03:14 11:20:05", offset="+02:00", gps=kyiv))
    files.append(
        (
            market,
            Sample(
                "market.jpg",
                "case-kyiv",
                "witness-a",
                kyiv[:2],
                "2024-03-14T11:30:00+02:00",
                "consistent: place and time agree with the claim",
            ),
        )
    )

    bridge = jpeg(
        scene(2),
        exif_bytes(
            make="Samsung",
            model="SM-A525F",
            taken="2024:03:14 10:02:41",
            offset="+01:00",
            gps=lagos,
        ),
    )
    files.append(
        (
            bridge,
            Sample(
                "bridge.jpg",
                "case-kyiv",
                "witness-b",
                kyiv[:2],
                "2024-03-14T10:00:00+02:00",
                "contradicted place: GPS puts it in another country",
            ),
        )
    )

    school = jpeg(
        scene(3),
        exif_bytes(
            make="Apple", model="iPhone 12", taken="2021:07:02 14:15:00", offset="+03:00", gps=kyiv
        ),
    )
    files.append(
        (
            school,
            Sample(
                "school.jpg",
                "case-kyiv",
                "witness-c",
                kyiv[:2],
                "2024-03-15T14:00:00+02:00",
                "contradicted time: taken years before the claimed date",
            ),
        )
    )

    edited = jpeg(
        scene(4),
        exif_bytes(
            taken="2024:03:14 12:00:00",
            offset="+02:00",
            gps=kyiv,
            software="Adobe Photoshop 25.0 (Windows)",
            modified="2024:03:20 09:12:44",
        ),
    )
    files.append(
        (
            edited,
            Sample(
                "crowd-edited.jpg",
                "case-kyiv",
                "witness-d",
                kyiv[:2],
                "2024-03-14T12:00:00+02:00",
                "edited: saved by an image editor after capture",
            ),
        )
    )

    stripped = jpeg(scene(5), None, quality=80)
    files.append(
        (
            stripped,
            Sample(
                "forwarded.jpg",
                "case-kyiv",
                "witness-e",
                kyiv[:2],
                "2024-03-14T13:00:00+02:00",
                "stripped: no metadata at all, as messaging apps send",
            ),
        )
    )

    files.append(
        (
            market,
            Sample(
                "market-again.jpg",
                "case-lagos",
                "journalist-f",
                lagos[:2],
                "2024-03-16T09:00:00+01:00",
                "exact duplicate: the same bytes as market.jpg, other case",
            ),
        )
    )

    recycled = io.BytesIO()
    scene(1).resize((512, 384)).save(recycled, "JPEG", quality=70)
    files.append(
        (
            recycled.getvalue(),
            Sample(
                "recycled.jpg",
                "case-lagos",
                "journalist-g",
                lagos[:2],
                "2024-03-16T10:00:00+01:00",
                "near duplicate: a resized, recompressed copy of an earlier photo",
                "https://example.org/post/123",
            ),
        )
    )

    files.append(
        (
            video(6),
            Sample(
                "checkpoint.mp4",
                "case-kyiv",
                "witness-h",
                kyiv[:2],
                "2024-03-14T15:00:00+02:00",
                "video: stream facts, keyframes and per-frame perceptual hashes",
            ),
        )
    )

    truncated = market[: len(market) // 3]
    files.append(
        (
            truncated,
            Sample(
                "broken.jpg",
                "case-lagos",
                "journalist-g",
                None,
                None,
                "unreadable: the upload was cut short",
            ),
        )
    )

    written = []
    for data, sample in files:
        path = directory / sample.name
        path.write_bytes(data)
        written.append((path, sample))
    return written


def describe(samples: Sequence[tuple[Path, Sample]]) -> list[dict[str, Any]]:
    """What each demo file is meant to show, for the demo's printout."""
    return [{"name": s.name, "case": s.case, "shows": s.shows} for _, s in samples]
