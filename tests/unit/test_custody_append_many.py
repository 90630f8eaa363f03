"""Appending several custody events at once gives the chain one-by-one appends would give."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.unit.test_custody import add_item, make_ledger
from verification.ledger.custody import CustodyStep, verify_chain
from verification.ledger.models import Event

ITEM = "b" * 64


def _steps(*names: str) -> list[CustodyStep]:
    return [CustodyStep("validation", "success", {"step": name}, f"step:{name}") for name in names]


def test_events_appended_together_form_a_verifying_chain(tmp_path: Path) -> None:
    """Consecutive sequence numbers, each linked to the one before, every hash and signature good."""
    ledger = make_ledger(tmp_path)
    add_item(ledger, ITEM)
    ledger.append(ITEM, "ingestion", "success", {}, step_key="first")
    with Session(ledger.engine) as session, session.begin():
        events = ledger.append_many(ITEM, _steps("b", "c", "d"), session=session)
    assert [e.seq for e in events] == [2, 3, 4]
    chain = ledger.events(ITEM)
    assert [e.hash for e in chain[1:]] == [e.hash for e in events]
    assert verify_chain(ITEM, chain, ledger.public_keys()) is None


def test_steps_already_recorded_are_returned_not_repeated(tmp_path: Path) -> None:
    """Running the same steps again (a retried transaction) adds only the missing ones, after
    the chain's head, and returns the recorded events for the others."""
    ledger = make_ledger(tmp_path)
    add_item(ledger, ITEM)
    with Session(ledger.engine) as session, session.begin():
        first = ledger.append_many(ITEM, _steps("a", "b"), session=session)
    with Session(ledger.engine) as session, session.begin():
        again = ledger.append_many(ITEM, _steps("a", "x", "b"), session=session)
    assert again[0] == first[0] and again[2] == first[1]
    assert again[1].seq == 3 and again[1].prev_hash == first[1].hash
    with Session(ledger.engine) as session:
        assert session.scalar(select(func.count()).select_from(Event)) == 3
    assert verify_chain(ITEM, ledger.events(ITEM), ledger.public_keys()) is None


def test_unknown_event_type_writes_nothing(tmp_path: Path) -> None:
    """A step of an unknown type is refused before any event of the batch is written."""
    ledger = make_ledger(tmp_path)
    add_item(ledger, ITEM)
    steps = [*_steps("a"), CustodyStep("made-up", "success", {}, "bad")]
    with (
        Session(ledger.engine) as session,
        session.begin(),
        pytest.raises(ValueError, match="unknown custody event type"),
    ):
        ledger.append_many(ITEM, steps, session=session)
    assert ledger.events(ITEM) == []
