"""What a batch or an intake run did, in two kinds that are never mixed: recorded results and
failures of the pipeline itself.

Evidence outcomes are decisions about files (``consistent`` … ``unreadable``: a quarantined file
is a recorded result); a ``rejected`` object (its key is refused) is a recorded result too,
listed apart with its reason. A ``failed`` or still ``pending`` submission means the pipeline
could not do its work (store, database, workers): nothing was decided and the run must not look
green.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from verification.core.text import printable
from verification.pipeline.model import FAILED, REJECTED, Outcome

INFORMATIVE = frozenset({"location-matches-claim", "time-matches-claim"})


class IntakeIncomplete(RuntimeError):
    """Some submissions could not be processed; they stay new and the next attempt retries them."""


def summarise(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    """Counts per evidence status and finding code, every rejected object and every
    unprocessed submission, each with why.

    No coordinates: the summary goes to logs, XComs and alerts. Keys are as stored (this is
    data); whoever shows them escapes them (:func:`verification.core.text.printable`).
    """
    recorded = [o for o in outcomes if o.item is not None and not o.failed]
    rejected = [o for o in outcomes if o.status == REJECTED]
    unprocessed = [o for o in outcomes if o not in recorded and o not in rejected]
    return {
        "submissions": len(outcomes),
        "recorded": dict(sorted(Counter(o.status for o in recorded).items())),
        "quarantined": sorted(o.key for o in recorded if o.status == "unreadable"),
        "findings": dict(sorted(Counter(c for o in recorded for c in o.findings).items())),
        "rejected": [
            {"key": o.key, "reason": o.error or "key refused"}
            for o in sorted(rejected, key=lambda o: o.key)
        ],
        "failed": [
            {"key": o.key, "error": o.error or "not processed"}
            for o in sorted(unprocessed, key=lambda o: o.key)
            if o.status == FAILED
        ],
        "pending": sorted(o.key for o in unprocessed if o.status != FAILED),
    }


def check_complete(summary: dict[str, Any]) -> None:
    """Raise :class:`IntakeIncomplete` naming what failed, when anything was not processed.

    Rejected objects are recorded results, not failures: they do not fail the run.
    """
    failed, pending = summary["failed"], summary["pending"]
    if not failed and not pending:
        return
    shown = "; ".join(f"{printable(f['key'])}: {printable(f['error'])}" for f in failed[:5])
    more = f" (and {len(failed) - 5} more)" if len(failed) > 5 else ""
    parts = []
    if failed:
        parts.append(f"{len(failed)} submission(s) could not be processed: {shown}{more}")
    if pending:
        parts.append(f"{len(pending)} submission(s) were never attempted")
    msg = "; ".join(parts) + ". They stay new; a retry or the next run processes them."
    raise IntakeIncomplete(msg)
