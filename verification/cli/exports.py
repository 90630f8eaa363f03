"""``evidence export`` and ``evidence verify-export``: hand a case over, check what was handed over.

Registered through :mod:`verification.cli.extensions`. ``verify-export`` needs no database, no
signing key and no configuration: a recipient runs it on the package alone.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

from verification.cli.extensions import Handler
from verification.core.text import printable


def register(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    commands: MutableMapping[str, Handler],
) -> None:
    """Add the ``export`` and ``verify-export`` sub-commands and their handlers."""
    export = subparsers.add_parser(
        "export",
        help="export a case as a BagIt package, an HTML report or JSON (records a custody event)",
    )
    export.add_argument("case", metavar="CASE", help="case id")
    export.add_argument(
        "--format",
        dest="fmt",
        choices=("bagit", "html", "json"),
        default="bagit",
        help="bagit: the originals with records, chains, keys and checkpoint (to hand over); "
        "html: a self-contained report to read or print; json: the same content for machines",
    )
    export.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="directory to write into"
    )
    export.add_argument(
        "--redact",
        action="store_true",
        help="bagit: add working copies without GPS, serial numbers and owner names (data/redacted/)",
    )
    export.add_argument("--analyst", help="who exports (default: EVIDENCE_ANALYST or the OS user)")
    export.add_argument("--organization", help="Source-Organization written into bag-info.txt")
    commands["export"] = cmd_export

    verify = subparsers.add_parser(
        "verify-export",
        help="check an exported package offline: bag, checksums, custody chains, checkpoint, time-stamp",
    )
    verify.add_argument(
        "path", type=Path, metavar="PATH", help="the exported BagIt package (or JSON export)"
    )
    verify.add_argument(
        "--expect-key",
        action="append",
        default=[],
        metavar="FINGERPRINT",
        help="the installation key id the sender gave you out of band; only its signatures "
        "count (repeatable)",
    )
    verify.add_argument(
        "--tsa-roots",
        type=Path,
        metavar="PEM",
        help="root certificate(s) of the time-stamp authority, to check the token's signature",
    )
    commands["verify-export"] = cmd_verify_export


def cmd_export(settings: Any, args: argparse.Namespace) -> int:
    """Export a case; print where it went."""
    from verification import pipeline
    from verification.exports import ExportError, export_case
    from verification.pipeline.submission import SubmitError

    analyst = args.analyst or settings.analyst or getpass.getuser()
    ctx = pipeline.open_context(settings, agents=[{"type": "operator", "name": analyst}])
    try:
        path = export_case(
            ctx,
            args.case,
            args.fmt,
            args.out,
            analyst,
            redact=args.redact,
            organization=args.organization,
        )
    except (ExportError, SubmitError) as exc:
        print(f"evidence: error: {printable(str(exc))}", file=sys.stderr)
        return 2
    print(printable(f"exported case {args.case} ({args.fmt}) to {path}"))
    if args.fmt == "bagit":
        print(printable(f"check it with: evidence verify-export {path}"))
    return 0


def cmd_verify_export(settings: Any, args: argparse.Namespace) -> int:
    """Verify a package; exit 0 when every check passes, 1 naming the first failure."""
    from verification.exports.verify import verify_export

    roots = None
    if args.tsa_roots is not None:
        try:
            roots = args.tsa_roots.read_bytes()
        except OSError as exc:
            problem = f"cannot read {args.tsa_roots}: {exc.strerror}"
            print(f"evidence: error: {printable(problem)}", file=sys.stderr)
            return 2
    expect = getattr(args, "expect_key", None) or []  # callers building a Namespace may omit it
    if args.path.is_file():
        from verification.exports.verify_json import verify_json_export

        report = verify_json_export(args.path, expect_keys=expect)
    else:
        report = verify_export(args.path, tsa_roots=roots, expect_keys=expect)
    if not report.ok:
        print(f"FAILED {printable(str(report.first_failure))}", file=sys.stderr)
        return 1
    # A package comes from elsewhere: everything read from it is escaped before it is shown.
    print(f"package verified: {report.items} item(s), {report.events} custody event(s)")
    print(printable(f"  signing key(s): {', '.join(report.key_ids)}"))
    print(printable(f"  checkpoint:     {report.checkpoint}"))
    print(printable(f"  time-stamp:     {report.timestamp}"))
    for note in report.notes:
        print(printable(f"  note: {note}"))
    return 0
