"""Case exports as one file a browser can download: a zipped BagIt package, an HTML or JSON report."""

from __future__ import annotations

import logging
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from verification.review.queries import ReviewError, required_text

if TYPE_CHECKING:
    from verification.pipeline import Context

log = logging.getLogger(__name__)

# The ``destination`` of an export event for a download: the server's temporary path means
# nothing once deleted, and where the browser saves the file is not the server's to know.
DOWNLOAD_DESTINATION = "download from the review UI"
# What a browser is told each export format is (a BagIt package is sent zipped).
EXPORT_MEDIA_TYPES: Mapping[str, str] = {
    "bagit": "application/zip",
    "html": "text/html; charset=utf-8",
    "json": "application/json",
}


@dataclass(frozen=True, slots=True)
class Download:
    """A case export as one file to send: where it is, its name and its media type."""

    path: Path
    filename: str
    media_type: str


OTHER_CASES = ("include", "omit")


def export_download(
    ctx: Context,
    case: str,
    fmt: str,
    out_dir: Path,
    analyst: str,
    *,
    redact: bool = False,
    other_cases: str = "",
) -> Download:
    """Export ``case`` with :func:`verification.exports.export_case` into ``out_dir`` as one file.

    HTML and JSON reports are single files already; a BagIt package is zipped next to it (see
    :func:`zip_bag`). Custody ``export`` events are written by the exporter. Raises
    :class:`ReviewError` for a format or option the caller got wrong and KeyError for an
    unknown case, both before anything is written.

    When the case's items were also submitted to other cases, ``other_cases`` must say whether
    their submitters, claims and notes go with the export (``include``) or not (``omit``):
    nobody hands them over without having been told.
    """
    from verification.exports import FORMATS, case_items, export_case
    from verification.pipeline.submission import SubmitError, check_case_id

    if fmt not in FORMATS:
        msg = f"format must be one of {', '.join(FORMATS)}"
        raise ReviewError(msg)
    if redact and fmt != "bagit":
        msg = "redacted working copies are only part of a BagIt package"
        raise ReviewError(msg)
    analyst = required_text(analyst, "analyst", 200)
    try:
        check_case_id(case)
    except SubmitError as exc:
        raise KeyError(case[:200]) from exc
    if not case_items(ctx.engine, case):
        raise KeyError(case[:200])
    omit = _other_cases_choice(ctx, case, fmt, other_cases)
    path = export_case(
        ctx,
        case,
        fmt,
        out_dir,
        analyst,
        redact=redact,
        destination=DOWNLOAD_DESTINATION,
        omit_other_cases=omit,
    )
    if fmt == "bagit":
        path = zip_bag(path, path.with_name(f"{path.name}.zip"))
    return Download(path, path.name, EXPORT_MEDIA_TYPES[fmt])


def _other_cases_choice(ctx: Context, case: str, fmt: str, choice: str) -> bool:
    """True to leave other cases out; refuses a missing or impossible choice."""
    from verification.review.glance import exposure

    if choice and choice not in OTHER_CASES:
        msg = f"other_cases must be one of {', '.join(OTHER_CASES)}"
        raise ReviewError(msg)
    if not choice and exposure(ctx.engine, case).any:
        msg = (
            "this export would include other cases' submitters, claims and notes: "
            "choose to include them or leave them out"
        )
        raise ReviewError(msg)
    if choice == "omit" and fmt == "bagit":
        msg = (
            "a BagIt package keeps every custody event whole, so it cannot leave out other "
            "cases' submissions: export an HTML or JSON report without them"
        )
        raise ReviewError(msg)
    return choice == "omit"


def zip_bag(bag: Path, dest: Path) -> Path:
    """Write the directory ``bag`` to the zip file ``dest``; return ``dest``.

    Stored paths are relative to the bag's parent, so unzipping gives the bag directory itself,
    which is what ``evidence verify-export`` checks. Payload files (already compressed media)
    are stored as they are; tag files are deflated.
    """
    with zipfile.ZipFile(dest, "x", zipfile.ZIP_DEFLATED) as archive:
        archive.write(bag, bag.name)
        for path in sorted(bag.rglob("*")):
            name = path.relative_to(bag.parent).as_posix()
            payload = path.is_file() and path.relative_to(bag).parts[0] == "data"
            archive.write(path, name, zipfile.ZIP_STORED if payload else None)
    return dest
