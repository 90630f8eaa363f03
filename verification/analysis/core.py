"""What an analysis worker computes from one preserved file: format, media facts, checks.

Pure with respect to the outside world: a local file and the submitter's claims in, a
:class:`FileAnalysis` out. No object store, no database, no environment variables.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

from verification.analysis.options import AnalysisOptions
from verification.core.claims import Claims
from verification.core.findings import Finding
from verification.core.formats import HEAD_SIZE, describe
from verification.media._model import Derivative


@dataclass(frozen=True, slots=True)
class AnalysisJob:
    """One file for a worker: where its working copy is, its key, the claims made about it."""

    path: str
    key: str
    claims: Claims
    received_at: datetime


@dataclass(frozen=True, slots=True)
class FileAnalysis:
    """Everything the analysis learned about one file."""

    format: dict[str, Any]
    media: dict[str, Any]
    metadata: dict[str, Any]
    raw: dict[str, str]
    perceptual: dict[str, Any]
    geolocation: dict[str, Any]
    item_findings: tuple[Finding, ...]
    claim_findings: tuple[Finding, ...]
    derivatives: tuple[Derivative, ...] = ()
    extractors: dict[str, str] = field(default_factory=dict)


def analyse_file(job: AnalysisJob, options: AnalysisOptions) -> FileAnalysis:
    """Identify, extract and check one file; bad input comes back as findings, never raises."""
    from verification.checks import run_checks
    from verification.media import analyse as analyse_media

    working = Path(job.path)
    with working.open("rb") as handle:
        fmt = describe(handle.read(HEAD_SIZE), PurePosixPath(job.key).name)
    media = analyse_media(working, fmt.format, options)
    thumbnail = next((d.data for d in media.derivatives if d.name == "thumbnail.jpg"), None)
    checks = run_checks(
        media.media,
        media.metadata,
        media.perceptual,
        job.claims,
        job.received_at,
        options,
        extension_mismatch=fmt.extension_mismatch,
        mean_brightness=mean_brightness(thumbnail),
        c2pa=media.metadata.get("c2pa"),
    )
    return FileAnalysis(
        format=fmt.to_dict(),
        media=dict(media.media),
        metadata=dict(media.metadata),
        raw=dict(media.raw),
        perceptual=dict(media.perceptual),
        geolocation=dict(checks.geolocation),
        item_findings=tuple(media.findings),
        claim_findings=tuple(checks.findings),
        derivatives=tuple(media.derivatives),
        extractors=dict(media.extractors),
    )


def mean_brightness(jpeg: bytes | None) -> float | None:
    """Mean luma (0-255) of a thumbnail, for the day/night plausibility check."""
    if not jpeg:
        return None
    from PIL import Image, ImageStat

    with Image.open(io.BytesIO(jpeg)) as image:
        return float(ImageStat.Stat(image.convert("L")).mean[0])
