"""Analyst decisions as a custody chain records them (``review`` events), for every reader.

The review pages, the CLI and the exports all read decisions from the signed chain, never from
a copy that could drift from it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from verification.ledger.custody import CustodyEvent


def decisions(events: Sequence[CustodyEvent]) -> list[dict[str, Any]]:
    """The decisions among a chain's ``review`` events, in order, as plain dicts (time, seq,
    decision, ...); comments and assignments (also ``review`` events) are not decisions."""
    return [
        {"time": e.time, "seq": e.seq, "uuid": e.uuid, **dict(e.detail)}
        for e in events
        if e.type == "review" and "decision" in e.detail
    ]


def current_decision(events: Sequence[CustodyEvent]) -> dict[str, Any] | None:
    """The latest decision, which is the one in force; None when nobody decided yet."""
    history = decisions(events)
    return history[-1] if history else None
