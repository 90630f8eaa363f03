"""``evidence fixity``: re-read every preserved original and compare its SHA-256.

Exit 1 unless every original checked was read and matched and nothing untracked lies under
``vault/`` or ``derivatives/``: an original that could not be read (``not-run``) is not a pass.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable, MutableMapping, Sequence

from verification.core.config import Settings
from verification.core.text import printable
from verification.pipeline import open_context
from verification.pipeline.fixity import (
    FixityResult,
    check_all,
    due_items,
    summarise,
    untracked_objects,
)

Handler = Callable[[Settings, argparse.Namespace], int]


def register(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    commands: MutableMapping[str, Handler],
) -> None:
    """Add ``evidence fixity``."""
    parser = subparsers.add_parser(
        "fixity", help="re-read every preserved original and compare its SHA-256"
    )
    parser.add_argument(
        "--run-id", help="name of this run; the same id again records nothing new (default: new)"
    )
    parser.add_argument("--batch-size", type=int, default=500, help="items per batch")
    parser.add_argument(
        "--budget-mb",
        type=int,
        metavar="MIB",
        help="check only the oldest-verified originals up to this many MiB "
        "(default: EVIDENCE_FIXITY_BUDGET_MB; 0 checks every original)",
    )
    parser.add_argument(
        "--minutes",
        type=float,
        metavar="MIN",
        help="time budget: start no new batch after this many minutes (the rest come first "
        "next time)",
    )
    commands["fixity"] = cmd_fixity


def cmd_fixity(settings: Settings, args: argparse.Namespace) -> int:
    """Run a fixity check over the vault; exit 1 when any original failed, is missing or could
    not be read, or when an object under vault/ or derivatives/ belongs to no item."""
    operator = {"type": "operator", "name": settings.analyst or getpass.getuser()}
    ctx = open_context(settings, agents=[operator])
    budget = settings.fixity_budget_mb if args.budget_mb is None else args.budget_mb
    seconds = None if args.minutes is None else args.minutes * 60
    due = due_items(ctx, budget * 1024 * 1024)
    results = check_all(ctx, args.run_id, args.batch_size, due, seconds=seconds)
    results.extend(untracked_objects(ctx))
    print_results(results)
    failing = [r for r in results if r.failing]
    if failing:
        counts = summarise(failing)
        detail = ", ".join(f"{k}: {v}" for k, v in counts.items())
        print(f"evidence: fixity check failed ({detail})", file=sys.stderr)
        return 1
    return 0


def print_results(results: Sequence[FixityResult]) -> None:
    """A table of item, outcome, found digest and reason, then the counts."""
    rows = [
        (r.item[:12], r.outcome, printable((r.found or "-")[:23]), printable((r.reason or "")[:70]))
        for r in results
    ]
    header = ("item", "outcome", "found", "reason")
    widths = [max(len(x) for x in col) for col in zip(header, *rows, strict=False)]
    for row in (header, tuple("-" * w for w in widths), *rows):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    for result in results:
        if result.outcome == "untracked":
            print(printable(f"untracked object {result.vault_key}: {result.reason}"))
    counts = summarise(results)
    print("\n" + ("  ".join(f"{k}: {v}" for k, v in counts.items()) or "no items in the vault"))
