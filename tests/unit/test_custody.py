"""The custody ledger chains, signs, stays idempotent and names the first tampered event."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from verification.ledger.checkpoints import merkle_root
from verification.ledger.custody import GENESIS, CustodyEvent, Ledger, verify_chain
from verification.ledger.models import Item, make_engine, migrate, utcnow
from verification.ledger.signing import create_key

SHA = "a" * 64


def make_ledger(tmp_path: Path) -> Ledger:
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    migrate(engine)
    ledger = Ledger(engine, create_key(tmp_path / "key.pem"))
    ledger.register_key()
    add_item(ledger, SHA)
    return ledger


def add_item(ledger: Ledger, sha: str) -> None:
    with Session(ledger.engine) as session, session.begin():
        session.add(
            Item(
                sha256=sha,
                size=1,
                sha1="0" * 40,
                md5="0" * 32,
                format="jpeg",
                mime="image/jpeg",
                kind="image",
                vault_key=f"vault/{sha}",
                first_seen=utcnow(),
                case_id="c",
            )
        )


def five_events(ledger: Ledger) -> list[CustodyEvent]:
    return [
        ledger.append(SHA, "fixity check", "success", {"n": i}, step_key=f"step-{i}")
        for i in range(5)
    ]


def test_events_link_by_hash_and_verify(tmp_path: Path) -> None:
    """Each event points at its predecessor's hash; the chain verifies."""
    ledger = make_ledger(tmp_path)
    events = five_events(ledger)
    assert events[0].prev_hash == GENESIS
    assert [e.prev_hash for e in events[1:]] == [e.hash for e in events[:-1]]
    assert [e.seq for e in events] == [1, 2, 3, 4, 5]
    report = ledger.verify(SHA)
    assert report.ok, report.failures
    assert report.events == 5


def test_same_step_twice_gives_one_event(tmp_path: Path) -> None:
    """Re-running a step returns the recorded event instead of appending a new one."""
    ledger = make_ledger(tmp_path)
    first = ledger.append(SHA, "ingestion", "success", {"a": 1}, step_key="ingestion:x")
    again = ledger.append(SHA, "ingestion", "success", {"a": 1}, step_key="ingestion:x")
    assert first.uuid == again.uuid
    assert len(ledger.events(SHA)) == 1


def test_unknown_event_type_is_refused(tmp_path: Path) -> None:
    """Only PREMIS (and review/access) event types enter the ledger."""
    ledger = make_ledger(tmp_path)
    with pytest.raises(ValueError, match="unknown custody event type"):
        ledger.append(SHA, "made-up", "success", {}, step_key="x")


def test_edited_field_names_that_event(tmp_path: Path) -> None:
    """Changing an event's detail in the database breaks exactly that event."""
    ledger = make_ledger(tmp_path)
    events = five_events(ledger)
    with ledger.engine.begin() as conn:
        conn.execute(
            text("UPDATE custody_events SET outcome='failure' WHERE uuid=:u"), {"u": events[2].uuid}
        )
    failure = ledger.verify(SHA).failures[0]
    assert (failure.seq, failure.uuid) == (3, events[2].uuid)
    assert "content changed" in failure.reason


def test_deleted_event_names_the_next_one(tmp_path: Path) -> None:
    """Removing an event shows as a sequence gap at the event after it."""
    ledger = make_ledger(tmp_path)
    events = five_events(ledger)
    with ledger.engine.begin() as conn:
        conn.execute(text("DELETE FROM custody_events WHERE uuid=:u"), {"u": events[1].uuid})
    failure = ledger.verify(SHA).failures[0]
    assert (failure.seq, failure.uuid) == (3, events[2].uuid)
    assert "sequence gap" in failure.reason


def test_reordered_events_are_detected_at_the_first_swap(tmp_path: Path) -> None:
    """Swapping two events' sequence numbers fails at the first swapped position."""
    ledger = make_ledger(tmp_path)
    events = five_events(ledger)
    with ledger.engine.begin() as conn:
        conn.execute(text("UPDATE custody_events SET seq=-1 WHERE uuid=:u"), {"u": events[1].uuid})
        conn.execute(text("UPDATE custody_events SET seq=2 WHERE uuid=:u"), {"u": events[2].uuid})
        conn.execute(text("UPDATE custody_events SET seq=3 WHERE uuid=:u"), {"u": events[1].uuid})
    failure = ledger.verify(SHA).failures[0]
    assert (failure.seq, failure.uuid) == (2, events[2].uuid)


def test_forged_signature_is_detected(tmp_path: Path) -> None:
    """An event re-hashed by someone without the key fails on its signature."""
    ledger = make_ledger(tmp_path)
    events = five_events(ledger)
    last = events[-1]
    forged = CustodyEvent(**{**{k: getattr(last, k) for k in last.__slots__}, "detail": {"n": 99}})
    rehashed = forged.compute_hash()
    with ledger.engine.begin() as conn:
        conn.execute(
            text("UPDATE custody_events SET detail=:d, hash=:h WHERE uuid=:u"),
            {"d": '{"n": 99}', "h": rehashed, "u": last.uuid},
        )
    failure = ledger.verify(SHA).failures[0]
    assert failure.seq == 5
    assert "signature" in failure.reason


def test_unknown_key_is_detected(tmp_path: Path) -> None:
    """A chain verified against other public keys fails on the first event."""
    ledger = make_ledger(tmp_path)
    events = five_events(ledger)
    other = create_key(tmp_path / "other.pem")
    failure = verify_chain(SHA, events, {other.key_id: other.public_pem})
    assert failure is not None
    assert failure.seq == 1
    assert "unknown key" in failure.reason


def test_checkpoint_detects_a_deleted_item(tmp_path: Path) -> None:
    """Removing an entire item's chain after a checkpoint is reported."""
    ledger = make_ledger(tmp_path)
    five_events(ledger)
    other = "b" * 64
    add_item(ledger, other)
    ledger.append(other, "ingestion", "success", {}, step_key="i")
    ledger.write_checkpoint()
    assert ledger.verify().ok
    with ledger.engine.begin() as conn:
        conn.execute(text("DELETE FROM custody_events WHERE item_sha256=:s"), {"s": other})
    reasons = [f.reason for f in ledger.verify().failures]
    assert any("deleted" in r for r in reasons)


def test_checkpoint_detects_a_rolled_back_chain(tmp_path: Path) -> None:
    """Truncating a chain's newest events after a checkpoint is reported."""
    ledger = make_ledger(tmp_path)
    events = five_events(ledger)
    ledger.write_checkpoint()
    with ledger.engine.begin() as conn:
        conn.execute(text("DELETE FROM custody_events WHERE uuid=:u"), {"u": events[-1].uuid})
    reasons = [f.reason for f in ledger.verify().failures]
    assert any("rolled back" in r for r in reasons)


def test_merkle_root_depends_on_every_head() -> None:
    """Changing, adding or removing a head changes the root; order of input does not."""
    heads = {f"{i:064x}": f"{i * 7:064x}" for i in range(5)}
    root = merkle_root(heads)
    assert merkle_root(dict(reversed(list(heads.items())))) == root
    assert merkle_root({**heads, f"{1:064x}": "f" * 64}) != root
    assert merkle_root({k: v for k, v in heads.items() if k != f"{3:064x}"}) != root
    assert merkle_root({**heads, "e" * 64: "0" * 64}) != root


def test_agents_are_described_by_what_identifies_them() -> None:
    """An Airflow task is named by DAG, run, task, map index and try; people by name."""
    from verification.ledger.custody import describe_agent

    task = {
        "type": "execution",
        "dag_id": "evidence_intake",
        "run_id": "manual__2026-12-02T10:00:00",
        "task_id": "process_batch",
        "try_number": 2,
        "map_index": 3,
    }
    assert describe_agent(task) == (
        "airflow evidence_intake run manual__2026-12-02T10:00:00 task process_batch[3] try 2"
    )
    assert describe_agent({**task, "map_index": -1}).endswith("task process_batch try 2")
    assert describe_agent({"type": "person", "name": "ana"}) == "person ana"
    assert describe_agent({"type": "software", "name": "exifread", "version": "3.5.1"}) == (
        "exifread 3.5.1"
    )
    assert describe_agent({}) == "unknown agent"
