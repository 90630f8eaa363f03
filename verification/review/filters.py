"""Conditions the queue filters with: case membership by submission, text and hash-prefix search,
review state. Each is one scan or one index seek, never a probe per item (bench/queue_bench.py).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, or_, select

from verification.ledger.models import Item, ItemReview, Submission

MIN_HASH_PREFIX = 4
HASH_ONLY_PREFIX = 8


def in_case(case: str) -> ColumnElement[bool]:
    """Items submitted to ``case`` (at any time, first or again): what the case holds."""
    return Item.sha256.in_(
        select(Submission.item_sha256).where(
            Submission.case_id == case, Submission.item_sha256.is_not(None)
        )
    )


def submitted_where(*conditions: ColumnElement[bool]) -> Select[Any]:
    """Items with a submission meeting any of ``conditions`` (one scan of submissions)."""
    return select(Submission.item_sha256).where(
        Submission.item_sha256.is_not(None), or_(*conditions)
    )


def search_condition(text: str) -> ColumnElement[bool]:
    """Hash prefix, original filename, submitter or note (claim or analyst), case-insensitive.

    A run of 8 or more hex digits is taken as a hash prefix (an index seek); anything else is
    looked for in file names, submitters, claim notes and analysts' notes (one scan of each).
    """
    needle = text.strip().lower()
    if len(needle) >= HASH_ONLY_PREFIX and all(c in "0123456789abcdef" for c in needle):
        # A range on the primary key: an index seek on every database and collation.
        return and_(Item.sha256 >= needle, Item.sha256 < needle + "g")
    texts = submitted_where(
        func.lower(Submission.store_key).contains(needle, autoescape=True),
        func.lower(Submission.submitter).contains(needle, autoescape=True),
        func.lower(Submission.claims["note"].as_string()).contains(needle, autoescape=True),
    )
    notes = select(ItemReview.item_sha256).where(
        func.lower(ItemReview.notes).contains(needle, autoescape=True)
    )
    matches: list[ColumnElement[bool]] = [Item.sha256.in_(texts), Item.sha256.in_(notes)]
    if len(needle) >= MIN_HASH_PREFIX and all(c in "0123456789abcdef" for c in needle):
        matches.append(and_(Item.sha256 >= needle, Item.sha256 < needle + "g"))
    return or_(*matches)


def review_conditions(review: str | None, assignee: str | None) -> list[ColumnElement[bool]]:
    """Review-state filters: ``review`` (undecided, decided, disagree) and the assignee."""
    decided = select(ItemReview.item_sha256).where(ItemReview.decision.is_not(None))
    out: list[ColumnElement[bool]] = []
    if review == "undecided":
        out.append(Item.sha256.not_in(decided))
    elif review == "decided":
        out.append(Item.sha256.in_(decided))
    elif review == "disagree":
        disputed = select(ItemReview.item_sha256).where(ItemReview.disagree.is_(True))
        out.append(Item.sha256.in_(disputed))
    if assignee:
        mine = select(ItemReview.item_sha256).where(ItemReview.assignee == assignee)
        out.append(Item.sha256.in_(mine))
    return out


def in_cases(cases: frozenset[str]) -> ColumnElement[bool]:
    """Items submitted to any of ``cases``."""
    return Item.sha256.in_(
        select(Submission.item_sha256).where(
            Submission.case_id.in_(cases), Submission.item_sha256.is_not(None)
        )
    )
