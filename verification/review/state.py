"""Review state: the decision in force, disagreement, assignment and comments of each item.

Decisions, comments and assignments are ``review`` custody events (``detail.action`` says
which: ``decision``, ``comment`` or ``assignment``; decisions recorded before comments existed
carry no action and are decisions). The ``item_reviews`` row of an item is rebuilt from its
chain in the same transaction as each such event, so the queue can filter on it in the
database and never disagrees with the signed chain.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from verification.core.text import printable
from verification.ledger.custody import CustodyEvent
from verification.ledger.models import Event, Item, ItemReview
from verification.review.queries import ReviewError, required_text

if TYPE_CHECKING:
    from verification.pipeline import Context

log = logging.getLogger(__name__)

MAX_COMMENT = 4000
MAX_NAME = 200
ATTEMPTS = 50


@dataclass(frozen=True, slots=True)
class ReviewState:
    """Where review of one item stands, as its chain's ``review`` events leave it."""

    decision: str | None = None
    decided_by: str | None = None
    decided_at: str | None = None
    decisions: int = 0
    disagree: bool = False
    assignee: str | None = None
    comments: int = 0
    notes: str = ""
    last_seq: int = 0


def action_of(detail: Mapping[str, Any]) -> str:
    """What a ``review`` event records: ``decision``, ``comment`` or ``assignment``."""
    return str(detail.get("action") or ("decision" if "decision" in detail else "comment"))


def review_state(events: Iterable[tuple[int, str, Mapping[str, Any]]]) -> ReviewState:
    """Fold ``(seq, time, detail)`` of an item's ``review`` events, in chain order.

    The latest decision is in force; analysts disagree when their own latest decisions differ
    (one says verified, another rejected), whoever decided last.
    """
    latest: dict[str, str] = {}
    notes: list[str] = []
    state: dict[str, Any] = {"decisions": 0, "comments": 0, "last_seq": 0}
    for seq, moment, detail in events:
        action, analyst = action_of(detail), str(detail.get("analyst", ""))
        state["last_seq"] = seq
        if action == "decision":
            latest[analyst] = str(detail["decision"])
            state.update(decision=detail["decision"], decided_by=analyst, decided_at=moment)
            state["decisions"] += 1
        elif action == "comment":
            state["comments"] += 1
        elif action == "assignment":
            state["assignee"] = detail.get("assignee") or None
        if detail.get("note"):
            notes.append(str(detail["note"]))
    return ReviewState(**state, disagree=len(set(latest.values())) > 1, notes="\n".join(notes))


def refresh_review_state(session: Session, sha: str) -> ReviewState:
    """Rebuild ``sha``'s ``item_reviews`` row from its chain, inside the caller's transaction."""
    rows = session.execute(
        select(Event.seq, Event.event_time, Event.detail)
        .where(Event.item_sha256 == sha, Event.event_type == "review")
        .order_by(Event.seq)
    ).all()
    state = review_state((seq, moment, detail) for seq, moment, detail in rows)
    values = {name: getattr(state, name) for name in ReviewState.__slots__}
    row = session.get(ItemReview, sha)
    if row is None:
        session.add(ItemReview(item_sha256=sha, **values))
    else:
        for name, value in values.items():
            setattr(row, name, value)
    return state


def append_review(ctx: Context, sha: str, detail: Mapping[str, Any], analyst: str) -> CustodyEvent:
    """Append a ``review`` event and rewrite the item's review state in one transaction.

    Concurrent reviewers race on the chain's next sequence number; the loser retries on the
    new head, as :meth:`Ledger.append` does on its own.
    """
    for attempt in range(ATTEMPTS):
        try:
            with Session(ctx.engine) as session, session.begin():
                if session.get(Item, sha) is None:
                    msg = f"no item {sha[:64]}"
                    raise KeyError(msg)
                event = ctx.ledger.append(
                    sha,
                    "review",
                    "success",
                    dict(detail),
                    step_key=f"review:{uuid.uuid4()}",
                    agents=[{"type": "person", "name": analyst}],
                    session=session,
                )
                session.flush()
                refresh_review_state(session, sha)
                return event
        except (IntegrityError, OperationalError) as exc:
            log.debug("review append retry %s on %s: %s", attempt, sha[:12], type(exc).__name__)
            time.sleep(random.uniform(0.005, 0.05))  # noqa: S311 (jitter)
    msg = f"could not record the review event on item {sha[:12]}"
    raise RuntimeError(msg)


def record_comment(ctx: Context, sha: str, comment: str, analyst: str) -> CustodyEvent:
    """A remark that is not a decision, as a ``review`` event of its own (``action: comment``)."""
    note = required_text(comment, "comment", MAX_COMMENT)
    analyst = required_text(analyst, "analyst", MAX_NAME)
    event = append_review(
        ctx, sha, {"action": "comment", "note": note, "analyst": analyst}, analyst
    )
    log.info("comment on item %s by %s (event #%s)", sha[:12], printable(analyst), event.seq)
    return event


def assign(ctx: Context, sha: str, assignee: str, analyst: str) -> CustodyEvent:
    """Assign the item to ``assignee`` (empty: unassign), as a ``review`` event."""
    analyst = required_text(analyst, "analyst", MAX_NAME)
    assignee = (assignee or "").strip()
    if len(assignee) > MAX_NAME:
        msg = f"assignee is longer than {MAX_NAME} characters"
        raise ReviewError(msg)
    detail = {"action": "assignment", "assignee": assignee or None, "analyst": analyst}
    event = append_review(ctx, sha, detail, analyst)
    log.info(
        "item %s assigned to %s by %s",
        sha[:12],
        printable(assignee or "nobody"),
        printable(analyst),
    )
    return event
