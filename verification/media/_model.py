"""Value types returned by the extract step."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from verification.core.findings import Finding

MEDIA_VERSION = "5"
"""Bump when extraction output changes; the nightly DAG reprocesses older records."""

JPEG_MIME = "image/jpeg"

METADATA_KEYS: tuple[str, ...] = (
    "make",
    "model",
    "lens",
    "body_serial",
    "software",
    "artist",
    "copyright",
    "image_unique_id",
    "datetime_original",
    "datetime_original_raw",
    "create_date",
    "create_date_raw",
    "modify_date",
    "modify_date_raw",
    "offset_time_original",
    "gps",
    "has_thumbnail",
    "thumbnail_pdq",
    "xmp",
    "container_creation_time",
    "metadata_stripped",
    "c2pa",
)

MEDIA_KEYS: tuple[str, ...] = (
    "kind",
    "format",
    "width",
    "height",
    "orientation",
    "duration_s",
    "fps",
    "frame_count",
    "codec",
    "rotation",
    "readable",
    "compression",
)


@dataclass(frozen=True, slots=True)
class Derivative:
    """A small working copy (thumbnail or keyframe) stored apart from the original."""

    name: str
    data: bytes
    mime: str
    tool: str


@dataclass(frozen=True, slots=True)
class MediaAnalysis:
    """Everything the extract step learned about one item; see the package docstring."""

    media: dict[str, Any]
    metadata: dict[str, Any]
    raw: dict[str, str]
    perceptual: dict[str, Any]
    findings: tuple[Finding, ...]
    derivatives: tuple[Derivative, ...]
    extractors: dict[str, str]


def empty_media(kind: str, fmt: str) -> dict[str, Any]:
    """A media dict with every key present and nothing known yet."""
    media: dict[str, Any] = dict.fromkeys(MEDIA_KEYS)
    media["kind"] = kind
    media["format"] = fmt
    return media


def empty_metadata() -> dict[str, Any]:
    """A metadata dict with every key present, as for a file that carries none."""
    metadata: dict[str, Any] = dict.fromkeys(METADATA_KEYS)
    metadata["has_thumbnail"] = False
    metadata["xmp"] = {"present": False, "creator_tool": None, "history": []}
    metadata["metadata_stripped"] = True
    return metadata


def empty_perceptual() -> dict[str, Any]:
    """A perceptual dict with every key present and no hash computed."""
    return {"pdq": None, "pdq_quality": None, "phash": None, "pdq_dihedral": [], "keyframes": []}


def unreadable(stage: str, error: BaseException | str, reason: str | None = None) -> Finding:
    """The finding for a file (or part of one) that could not be read; never carries content."""
    name = error if isinstance(error, str) else type(error).__name__
    message = reason or f"could not read the file at stage {stage!r} ({name})"
    return Finding("unreadable", "warning", message, {"stage": stage, "error": name})
