"""Analyst decisions and access to originals, recorded as custody events (type ``review`` and
``access``), never as edits of the record.

The pipeline's findings stay as they were, a reversal is one more event, and the whole history
verifies like any other chain.
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Literal

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from verification.core.text import printable
from verification.ledger.custody import CustodyEvent
from verification.ledger.models import Item
from verification.review.queries import ReviewError, required_text
from verification.review.state import append_review

if TYPE_CHECKING:
    from verification.pipeline import Context

log = logging.getLogger(__name__)

DECISIONS = ("verified", "disputed", "rejected", "needs-more-work")
MAX_NOTE = 4000
MAX_PURPOSE = 500

Decision = Literal["verified", "disputed", "rejected", "needs-more-work"]


# ---------------------------------------------------------------------------------------------
# Decisions and access


def record_decision(ctx: Context, sha: str, decision: str, note: str, analyst: str) -> CustodyEvent:
    """Record an analyst's decision on an item as a signed ``review`` custody event.

    Every call is a new event (``step_key`` carries a fresh UUID): a reversal never rewrites
    an earlier decision, it follows it in the chain.
    """
    if decision not in DECISIONS:
        msg = f"decision must be one of {', '.join(DECISIONS)}"
        raise ReviewError(msg)
    note = required_text(note, "note", MAX_NOTE)
    analyst = required_text(analyst, "analyst", 200)
    detail = {"action": "decision", "decision": decision, "note": note, "analyst": analyst}
    event = append_review(ctx, sha, detail, analyst)
    log.info(
        "decision %s on item %s by %s (event #%s)",
        printable(decision),
        sha[:12],
        printable(analyst),
        event.seq,
    )
    return event


def record_access(ctx: Context, sha: str, analyst: str, purpose: str) -> CustodyEvent:
    """Record that ``analyst`` is about to receive the preserved original (type ``access``).

    Call it before the first byte leaves the vault, so no copy exists without its event.
    """
    purpose = required_text(purpose, "purpose", MAX_PURPOSE)
    analyst = required_text(analyst, "analyst", 200)
    _require_item(ctx.engine, sha)
    event = ctx.ledger.append(
        sha,
        "access",
        "success",
        {"action": "download original", "purpose": purpose, "analyst": analyst},
        step_key=f"access:{uuid.uuid4()}",
        agents=[_person(analyst)],
    )
    log.info(
        "original of item %s released to %s (event #%s)", sha[:12], printable(analyst), event.seq
    )
    return event


def _person(name: str) -> dict[str, str]:
    return {"type": "person", "name": name}


def _require_item(engine: Engine, sha: str) -> None:
    with Session(engine) as session:
        if session.get(Item, sha) is None:
            msg = f"no item {sha[:64]}"
            raise KeyError(msg)
