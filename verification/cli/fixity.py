"""``evidence fixity``: re-read every preserved original and compare its SHA-256."""

from __future__ import annotations

import argparse
import getpass
from collections.abc import Callable, MutableMapping, Sequence

from verification.core.config import Settings
from verification.core.text import printable
from verification.pipeline import open_context
from verification.pipeline.fixity import FixityResult, check_all, summarise

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
    commands["fixity"] = cmd_fixity


def cmd_fixity(settings: Settings, args: argparse.Namespace) -> int:
    """Run a fixity check over the whole vault; exit 1 when any original failed or is missing."""
    operator = {"type": "operator", "name": settings.analyst or getpass.getuser()}
    ctx = open_context(settings, agents=[operator])
    results = check_all(ctx, args.run_id, args.batch_size)
    print_results(results)
    return 1 if any(r.problem for r in results) else 0


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
    counts = summarise(results)
    print("\n" + ("  ".join(f"{k}: {v}" for k, v in counts.items()) or "no items in the vault"))
