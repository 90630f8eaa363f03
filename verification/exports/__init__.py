"""The exports layer: a case handed over, and the checks a recipient runs on it offline.

Owns what an export holds (:mod:`.content`), the BagIt package (:mod:`.bagit`), the JSON and
HTML reports (:mod:`.reports`), redacted working copies (:mod:`.redaction`), the entry point
(:mod:`.case`), what the installation key signs in an export (:mod:`.signed`) and offline
verification of a package (:mod:`.verify`) or a JSON export (:mod:`.verify_json`), which need
nothing but the export. May import the pipeline, ledger, media and core layers; the review layer and the
CLI import it.
"""

from __future__ import annotations

from verification.exports.case import export_case
from verification.exports.content import (
    FORMATS,
    ExportError,
    ExportMeta,
    ItemContent,
    case_items,
    collect,
    publish_export,
)
from verification.exports.redaction import Redacted, RedactionUnsupported, redact_bytes
from verification.exports.reports import render_html

__all__ = [
    "FORMATS",
    "ExportError",
    "ExportMeta",
    "ItemContent",
    "Redacted",
    "RedactionUnsupported",
    "case_items",
    "collect",
    "export_case",
    "publish_export",
    "redact_bytes",
    "render_html",
]
