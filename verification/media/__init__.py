"""The extract step: media facts, normalised metadata, perceptual hashes and derivatives.

``analyse(path, fmt, settings)`` reads a local file (never modifies it) and returns a
:class:`MediaAnalysis`. It never raises for a bad input file: anything that cannot be read
becomes a ``Finding(code="unreadable")`` with the stage and the error type as evidence, and
``media["readable"]`` is then False, so the checks do not read meaning into what is missing.
Photos go through :mod:`verification.media.image` (exifread + Pillow); videos through
:mod:`verification.media.video` (PyAV keyframe seeks in an isolated child process + our own MP4/MOV box
reader).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING

from verification.core.findings import Finding
from verification.media._model import (
    MEDIA_VERSION,
    Derivative,
    MediaAnalysis,
    empty_media,
    empty_metadata,
    empty_perceptual,
    unreadable,
)

if TYPE_CHECKING:
    from pathlib import Path

    from verification.core.config import AnalysisOptions as Settings

__all__ = [
    "IMAGE_FORMATS",
    "MEDIA_VERSION",
    "VIDEO_FORMATS",
    "Derivative",
    "MediaAnalysis",
    "analyse",
]

logger = logging.getLogger(__name__)

IMAGE_FORMATS = frozenset({"jpeg", "png", "tiff", "heif", "avif", "webp", "gif"})
VIDEO_FORMATS = frozenset({"mp4", "mov", "avi", "mkv", "webm"})


def analyse(path: Path, fmt: str, settings: Settings) -> MediaAnalysis:
    """Analyse one local file whose format (from magic bytes) is ``fmt``; never raises for it."""
    result = _analyse(path, fmt, settings)
    readable = not any(f.code == "unreadable" for f in result.findings)
    return replace(result, media={**result.media, "readable": readable})


def _analyse(path: Path, fmt: str, settings: Settings) -> MediaAnalysis:
    if fmt == "empty" or _is_empty(path):
        finding = unreadable("identify", "EmptyFile", "empty file (0 bytes)")
        return _unreadable_result("unknown", fmt, finding)
    try:
        if fmt in IMAGE_FORMATS:
            from verification.media.image import analyse_image

            return analyse_image(path, fmt, settings)
        if fmt in VIDEO_FORMATS:
            from verification.media.video import analyse_video

            return analyse_video(path, fmt, settings)
    except MemoryError:
        raise  # the worker's limit, not the file's fault: verification.analysis.worker says so
    except Exception as error:  # the pipeline must go on with a finding
        logger.warning("media analysis failed unexpectedly: %s", type(error).__name__)
        kind = "image" if fmt in IMAGE_FORMATS else "video"
        return _unreadable_result(kind, fmt, unreadable("analyse", error))
    finding = unreadable("identify", "UnsupportedFormat", f"unsupported media format {fmt!r}")
    return _unreadable_result("unknown", fmt, finding)


def _is_empty(path: Path) -> bool:
    try:
        return path.stat().st_size == 0
    except OSError:
        return False  # a missing file is reported by the reader, with its own error


def _unreadable_result(kind: str, fmt: str, finding: Finding) -> MediaAnalysis:
    return MediaAnalysis(
        media=empty_media(kind, fmt),
        metadata=empty_metadata(),
        raw={},
        perceptual=empty_perceptual(),
        findings=(finding,),
        derivatives=(),
        extractors={"media": MEDIA_VERSION},
    )
