"""Export one case in one of the three formats; every included item gets an ``export`` event."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from verification.exports.bagit import export_bag
from verification.exports.content import FORMATS, ExportError, ExportMeta
from verification.exports.reports import export_file


def export_case(
    ctx: Any,
    case: str,
    fmt: str,
    out_dir: Path,
    analyst: str,
    *,
    redact: bool = False,
    organization: str | None = None,
    destination: str | None = None,
    omit_other_cases: bool = False,
) -> Path:
    """Export ``case`` as ``fmt`` into a new file or directory under ``out_dir``; return its path.

    Every included item gets an ``export`` custody event (see the module docstring for when)
    naming ``destination`` (default: the written path). ``redact`` adds metadata-free working
    copies to a BagIt package (``data/redacted/``). ``omit_other_cases`` leaves out other
    cases' submitters, claims and notes from a report (not possible in a BagIt package: see
    :mod:`verification.exports.scope`).
    """
    from verification.ledger.custody import timestamp
    from verification.pipeline.submission import check_case_id

    if fmt not in FORMATS:
        msg = f"format must be one of {', '.join(FORMATS)}"
        raise ExportError(msg)
    if redact and fmt != "bagit":
        msg = "redacted copies are part of a BagIt package: use --format bagit"
        raise ExportError(msg)
    if omit_other_cases and fmt == "bagit":
        msg = (
            "a BagIt package carries every custody event whole, so it cannot leave out other "
            "cases' submissions: export an HTML or JSON report without them"
        )
        raise ExportError(msg)
    check_case_id(case)
    analyst = analyst.strip()
    if not analyst:
        msg = "the exporting analyst must be named"
        raise ExportError(msg)
    meta = ExportMeta(str(uuid.uuid4()), case, fmt, analyst, timestamp(), organization, destination)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{case}-{meta.created_at[:19].replace(':', '')}-{meta.id[:8]}"
    if fmt == "bagit":
        return export_bag(ctx, meta, target, redact)
    return export_file(ctx, meta, target.with_suffix(f".{fmt}"), omit_other_cases=omit_other_cases)
