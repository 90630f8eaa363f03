"""``evidence views``: make the full-size view of photos and the proxy of videos for the review
pages, recorded as custody events (:mod:`verification.pipeline.views`)."""

from __future__ import annotations

import argparse
import getpass
from collections.abc import Callable, MutableMapping, Sequence

from verification.core.config import Settings
from verification.core.text import printable
from verification.pipeline import open_context
from verification.pipeline.views import ERROR, FAILED, ViewOutcome, make_views, missing_views

Handler = Callable[[Settings, argparse.Namespace], int]


def register(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    commands: MutableMapping[str, Handler],
) -> None:
    """Add ``evidence views``."""
    parser = subparsers.add_parser(
        "views",
        help="make the full-size view of photos and the playable proxy of videos",
        description="Make the review pages' views from the preserved originals: a metadata-free "
        "full-size view of each photo, a WebM proxy of each video; each is recorded with a "
        "creation custody event. Items whose view is recorded are skipped.",
    )
    parser.add_argument("items", nargs="*", metavar="ITEM", help="SHA-256s (or 6+ hex prefixes)")
    parser.add_argument(
        "--missing", action="store_true", help="every photo and video without a recorded view"
    )
    parser.add_argument(
        "--retry-failed",
        action="store_true",
        help="with --missing: also items whose view could not be made before",
    )
    parser.add_argument("--limit", type=int, default=None, help="with --missing: at most N items")
    commands["views"] = cmd_views


def cmd_views(settings: Settings, args: argparse.Namespace) -> int:
    """Make the views asked for; exit 1 when any could not be made (the reason is printed)."""
    from verification.cli.main import UsageError, _resolve_item

    if bool(args.items) == bool(args.missing):
        msg = "give ITEMs or --missing (one of the two)"
        raise UsageError(msg)
    operator = {"type": "operator", "name": settings.analyst or getpass.getuser()}
    ctx = open_context(settings, agents=[operator])
    if args.missing:
        items = missing_views(ctx, args.limit, retry_failed=args.retry_failed)
    else:
        items = [_resolve_item(ctx, ref) for ref in args.items]
    outcomes = make_views(ctx, items)
    print_outcomes(outcomes)
    return 1 if any(o.state in {FAILED, ERROR} for o in outcomes) else 0


def print_outcomes(outcomes: Sequence[ViewOutcome]) -> None:
    """One line per item (item, view, state, size or reason), then the counts."""
    for o in outcomes:
        tail = f"{o.size} bytes" if o.size is not None else printable(o.reason or "")
        print(f"{o.item[:12]}  {o.name:<10}  {o.state:<8}  {tail}".rstrip())
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.state] = counts.get(o.state, 0) + 1
    print("  ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "no photo or video to view")
