"""The checks layer: what the file says compared with what the submitter claims.

Owns the claimed-vs-observed checks (:mod:`.run`: place, time, day and night, editing,
provenance), capture-time resolution (:mod:`.timing`), geography (:mod:`.geo`: distance,
reverse geocoding, time zones, sun position; offline by default) and the catalogue of every
finding code the pipeline can emit (:mod:`.catalogue`, the source of docs/findings.md). Pure
functions over what the media layer extracted: it may import the core, media and duplicates
layers, never storage, the ledger or anything above.
"""

from __future__ import annotations

from verification.checks.base import CheckResult
from verification.checks.catalogue import (
    FINDING_CODES,
    THUMBNAIL_PDQ_THRESHOLD,
    render_findings_doc,
)
from verification.checks.run import run_checks

__all__ = [
    "FINDING_CODES",
    "THUMBNAIL_PDQ_THRESHOLD",
    "CheckResult",
    "render_findings_doc",
    "run_checks",
]
