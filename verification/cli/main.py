"""The ``evidence`` command: set up, submit, ingest, inspect and verify.

Exit codes: 0 success, 1 the work ran but found a problem (failed ingest, broken custody chain),
2 bad usage or configuration (missing file, bad argument, bad ``EVIDENCE_*`` setting, store or
database unreachable). Everything printed that came from outside (object keys, EXIF strings,
claims, names) is escaped with :func:`verification.core.text.printable`: a submitter chooses keys
and metadata, and must not be able to drive the operator's terminal.
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from verification import __version__
from verification.cli.extensions import Handler
from verification.cli.output import human_size, print_outcomes, table
from verification.core.claims import Claims, InvalidClaim, parse_location, parse_time
from verification.core.config import ConfigurationError, Settings, load_settings
from verification.core.text import printable

log = logging.getLogger("verification.cli")


class UsageError(Exception):
    """A problem the user can fix; printed without a traceback, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (also used to render docs/cli.md)."""
    parser = argparse.ArgumentParser(
        prog="evidence",
        description="Preserve, hash, analyse and keep a chain of custody for evidence photos and "
        "videos. Configuration comes from EVIDENCE_* environment variables "
        "(docs/configuration.md); the default is the embedded setup under ./var.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    init = sub.add_parser("init", help="create the database, the store and the signing key")
    init.add_argument(
        "--create-bucket", action="store_true", help="S3: create the bucket (versioned)"
    )
    init.add_argument(
        "--object-lock", action="store_true", help="S3: create the bucket with Object Lock"
    )

    submit = sub.add_parser(
        "submit", help="upload files to incoming/<case>/ with the submitter's claims"
    )
    submit.add_argument("files", nargs="+", type=Path, metavar="FILE")
    submit.add_argument("--case", required=True, help="case id (letters, digits, . _ -)")
    submit.add_argument("--submitter", help="who sent the file (name or pseudonym)")
    submit.add_argument(
        "--claimed-location", metavar="LAT,LON", help="where the submitter says it was taken"
    )
    submit.add_argument(
        "--claimed-time", metavar="ISO8601", help="when the submitter says it was taken"
    )
    submit.add_argument("--source-url", metavar="URL", help="where the file was found")
    submit.add_argument("--note", help="free-text note kept with the claims")

    ingest = sub.add_parser("ingest", help="process everything new under incoming/")
    ingest.add_argument("--case", help="only this case")
    ingest.add_argument(
        "--workers", type=int, help="analysis processes (default: EVIDENCE_WORKERS)"
    )
    ingest.add_argument("--no-progress", action="store_true", help="no progress bar")

    listing = sub.add_parser("list", help="list items with status and findings")
    listing.add_argument("--case", help="only this case")
    listing.add_argument("--status", help="only this status")
    listing.add_argument("--json", action="store_true", help="machine-readable output")

    show = sub.add_parser("show", help="show one item's record")
    show.add_argument(
        "item", metavar="ITEM", help="SHA-256 or a unique prefix of at least 6 characters"
    )
    show.add_argument("--json", action="store_true", help="the whole record as JSON")

    custody = sub.add_parser("custody", help="read and verify the chain of custody")
    csub = custody.add_subparsers(dest="custody_command", required=True, metavar="ACTION")
    log_p = csub.add_parser("log", help="print an item's custody events")
    log_p.add_argument("item", metavar="ITEM")
    log_p.add_argument("--json", action="store_true", help="events as JSON lines")
    verify = csub.add_parser(
        "verify", help="recompute every hash and signature; name the first bad event"
    )
    verify.add_argument("--item", metavar="SHA", help="only this item's chain")
    csub.add_parser(
        "checkpoint",
        help="sign a Merkle root over every chain head and anchor it write-once in the store",
    )
    rotate = csub.add_parser(
        "rotate-key",
        help="trust a new installation key: an anchor signed by the current key names it",
    )
    rotate.add_argument(
        "new_key", type=Path, metavar="PEM", help="the new Ed25519 private key (created if absent)"
    )

    demo = sub.add_parser(
        "demo", help="run the whole pipeline on bundled samples and print what it verified"
    )
    demo.add_argument("--fresh", action="store_true", help="start from an empty demo home")
    demo.add_argument(
        "--direct", action="store_true", help="run `ingest` directly instead of the Airflow DAG"
    )
    from verification.cli.extensions import register_all

    register_all(sub, COMMANDS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``evidence`` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        settings = None if args.command in NEEDS_NO_SETTINGS else load_settings()
        handler = COMMANDS[args.command]
        return int(handler(settings, args))
    except (UsageError, ConfigurationError) as exc:
        print(f"evidence: error: {printable(str(exc))}", file=sys.stderr)
        return 2
    except Exception as exc:
        from verification.ledger.anchors import AnchorError
        from verification.ledger.signing import SigningKeyError
        from verification.storage import StoreError

        if isinstance(exc, StoreError | SigningKeyError | InvalidClaim | AnchorError):
            print(f"evidence: error: {printable(str(exc))}", file=sys.stderr)
            return 2
        if _is_db_error(exc):
            first = str(exc).splitlines()[0]
            print(
                f"evidence: error: database unavailable: {type(exc).__name__}: {printable(first)}",
                file=sys.stderr,
            )
            return 2
        raise


# Commands that read no configuration: a recipient verifies a package with nothing set up.
NEEDS_NO_SETTINGS = frozenset({"verify-export"})


def _is_db_error(exc: Exception) -> bool:
    from sqlalchemy.exc import OperationalError

    return isinstance(exc, OperationalError)


# ---------------------------------------------------------------------------------------------


def cmd_init(settings: Settings, args: argparse.Namespace) -> int:
    """Create everything the pipeline needs; safe to run again."""
    from verification.ledger.custody import initialise_ledger
    from verification.storage import open_store

    settings.home.mkdir(parents=True, exist_ok=True)
    ledger = initialise_ledger(settings)
    assert ledger.signer is not None
    signer = ledger.signer
    store = open_store(settings)
    if settings.store == "s3" and (args.create_bucket or args.object_lock):
        store.ensure_bucket(versioning=True, object_lock=args.object_lock)  # type: ignore[attr-defined]
    elif settings.store == "local":
        settings.resolved_store_path.mkdir(parents=True, exist_ok=True)
    print(printable(f"database  {_redact_url(settings.resolved_database_url)}"))
    print(printable(f"store     {store.url}"))
    print(printable(f"key       {settings.resolved_key_path} (id {signer.key_id[:16]})"))
    from verification.pipeline import open_context
    from verification.pipeline.fixity import pin_installation_key
    from verification.storage import StoreError

    try:
        pin = pin_installation_key(open_context(settings, store=store))
    except StoreError as exc:
        print(
            f"evidence: warning: key not pinned yet (the first checkpoint pins it): "
            f"{printable(str(exc))}",
            file=sys.stderr,
        )
        return 0
    state = "pinned as anchor #0" if pin else "already pinned in the store"
    print(f"key id    {signer.key_id} ({state})")
    return 0


def _redact_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def cmd_submit(settings: Settings, args: argparse.Namespace) -> int:
    """Upload files with claims; exit 1 if any file failed."""
    from verification.pipeline.submission import SubmitError, check_case_id, submit_file
    from verification.storage import open_store

    try:
        check_case_id(args.case)
        lat, lon = parse_location(args.claimed_location) if args.claimed_location else (None, None)
        when = parse_time(args.claimed_time) if args.claimed_time else None
    except (InvalidClaim, SubmitError) as exc:
        raise UsageError(str(exc)) from exc
    missing = [str(p) for p in args.files if not p.is_file()]
    if missing:
        raise UsageError(f"no such file: {', '.join(missing)}")
    claims = Claims(args.case, args.submitter, lat, lon, when, args.source_url, args.note)
    store = open_store(settings)
    failed = 0
    for path in args.files:
        try:
            done = submit_file(store, path, claims)
        except SubmitError as exc:
            print(f"evidence: {printable(str(exc))}", file=sys.stderr)
            failed += 1
            continue
        shown = f"{printable(str(path))} -> {printable(done.key)}"
        print(f"submitted {shown}  sha256:{done.sha256[:16]}  {done.size} bytes")
    return 1 if failed else 0


def cmd_ingest(settings: Settings, args: argparse.Namespace) -> int:
    """Process everything new; exit 1 when any submission could not be processed."""
    from verification import pipeline

    ctx = _context(settings)
    pending = pipeline.list_new(ctx, args.case)
    if not pending:
        print("nothing new under incoming/")
        return 0
    bar = _progress(len(pending), disable=args.no_progress)
    try:
        outcomes = pipeline.process_batch(
            ctx, [p.key for p in pending], workers=args.workers, progress=lambda _o: bar.update(1)
        )
    except pipeline.WorkersUnavailable as exc:
        bar.close()
        print(f"evidence: error: nothing was analysed: {printable(str(exc))}", file=sys.stderr)
        return 1
    bar.close()
    print_outcomes(outcomes)
    rejected = [o for o in outcomes if o.rejected]
    if rejected:
        print(
            f"{len(rejected)} object(s) rejected: their keys are refused (reason above); they "
            "stay untouched under incoming/ and are not tried again"
        )
    failed = [o for o in outcomes if o.failed]
    if failed:
        print(
            f"evidence: {len(failed)} submission(s) could not be processed (see 'error' above); "
            "they stay new and the next ingest tries them again",
            file=sys.stderr,
        )
    return 1 if failed else 0


def _progress(total: int, disable: bool) -> Any:
    from tqdm import tqdm

    return tqdm(
        total=total,
        unit="file",
        desc="ingest",
        disable=disable or not sys.stderr.isatty(),
        file=sys.stderr,
    )


def _context(settings: Settings) -> Any:
    from verification import pipeline
    from verification.ledger.signing import SigningKeyError

    try:
        return pipeline.open_context(settings, agents=[_operator(settings)])
    except SigningKeyError as exc:
        raise UsageError(str(exc)) from exc


def _operator(settings: Settings) -> dict[str, str]:
    return {"type": "operator", "name": settings.analyst or getpass.getuser()}


def _resolve_item(ctx: Any, prefix: str) -> str:
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from verification.ledger.models import Item

    prefix = prefix.lower().removeprefix("sha256:")
    if len(prefix) < 6 or any(c not in "0123456789abcdef" for c in prefix):
        raise UsageError("ITEM must be a SHA-256 or a hex prefix of at least 6 characters")
    with Session(ctx.engine) as session:
        found = list(
            session.scalars(select(Item.sha256).where(Item.sha256.startswith(prefix)).limit(2))
        )
    if not found:
        raise UsageError(f"no item matches {prefix}")
    if len(found) > 1:
        raise UsageError(f"{prefix} matches several items; give more characters")
    return found[0]


def cmd_list(settings: Settings, args: argparse.Namespace) -> int:
    """Items with status and warning-level finding codes."""
    from verification.pipeline.records import list_items

    ctx = _context(settings)
    items = list_items(ctx.engine, case=args.case, status=args.status)
    if args.json:
        print(json.dumps(items, indent=2))
        return 0
    rows = [
        (
            i["sha256"][:12],
            i["case_id"],
            i["format"],
            human_size(i["size"]),
            i["status"],
            ", ".join(i["findings"]),
        )
        for i in items
    ]
    table(("sha256", "case", "type", "size", "status", "findings"), rows)
    return 0


def cmd_show(settings: Settings, args: argparse.Namespace) -> int:
    """One item's record, for people or as JSON."""
    from verification.pipeline.records import item_report, render_item_text

    ctx = _context(settings)
    sha = _resolve_item(ctx, args.item)
    report = item_report(ctx, sha)
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        print(render_item_text(report))  # escaped line by line
    return 0


def cmd_custody(settings: Settings, args: argparse.Namespace) -> int:
    """``custody log``, ``custody verify`` and ``custody checkpoint``."""
    from verification.ledger.custody import describe_agent

    ctx = _context(settings)
    if args.custody_command == "log":
        sha = _resolve_item(ctx, args.item)
        for event in ctx.ledger.events(sha):
            if args.json:
                print(json.dumps(event.to_dict(), sort_keys=True))
            else:
                who = "; ".join(describe_agent(a) for a in event.agents[1:]) or describe_agent(
                    event.agents[0]
                )
                line = f"#{event.seq:<3} {event.time}  {event.type:<26} {event.outcome:<8} {who}"
                print(f"{printable(line)}  {event.hash[:16]}")
        return 0
    if args.custody_command == "checkpoint":
        from verification.pipeline.fixity import checkpoint_and_stamp

        done = checkpoint_and_stamp(ctx)
        print(
            f"checkpoint {done['id']}: root {done['root']} over {done['items']} items at "
            f"{done['created_at']}, anchored as {printable(str(done['stored_key']))}"
        )
        return 0
    if args.custody_command == "rotate-key":
        return _rotate_key(ctx, args.new_key)
    from verification.pipeline.fixity import verify_collection

    item = _resolve_item(ctx, args.item) if args.item else None
    report = verify_collection(ctx, item)
    if report.ok:
        print(
            f"custody verified: {report.items} chain(s), {report.events} event(s), every hash "
            "and signature valid under the pinned key(s); items, vault objects and the anchored "
            "checkpoints agree"
        )
        return 0
    for failure in report.failures:
        print(f"FAILED {printable(str(failure))}", file=sys.stderr)
    print(
        f"custody verification failed: {len(report.failures)} problem(s) in {report.items} chain(s)",
        file=sys.stderr,
    )
    return 1


def _rotate_key(ctx: Any, path: Path) -> int:
    """Anchor the new key, signed by the current one; the operator then installs the new key."""
    from verification.ledger.anchors import rotate_key
    from verification.ledger.custody import Ledger, timestamp
    from verification.ledger.signing import create_key
    from verification.pipeline.trust import forget_pinned_keys

    new = create_key(path)
    doc = rotate_key(ctx.store, ctx.ledger.signer, new, timestamp())
    forget_pinned_keys()
    Ledger(ctx.engine, new).register_key()
    print(f"anchor #{doc['seq']}: key {new.key_id} replaces {ctx.ledger.signer.key_id}")
    print(printable(f"now point EVIDENCE_KEY_PATH at {path} (and move the old key off this host)"))
    return 0


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    """Initialise the embedded setup, submit the samples and run the pipeline over them."""
    from verification.cli.demo import run_demo

    return run_demo(settings, fresh=args.fresh, direct=args.direct)


COMMANDS: dict[str, Handler] = {
    "init": cmd_init,
    "submit": cmd_submit,
    "ingest": cmd_ingest,
    "list": cmd_list,
    "show": cmd_show,
    "custody": cmd_custody,
    "demo": cmd_demo,
}


if __name__ == "__main__":
    sys.exit(main())
