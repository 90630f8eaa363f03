"""dags/evidence_intake.py run with dag.test() where a fault must be injected inside the task
process (a GetObject that keeps failing, a kill between the vault write and the ledger).

The success paths run on the real stack (tests/integration/test_airflow_stack.py and
test_distributed.py)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.dags.conftest import Evidence
from tests.helpers import photo
from verification.ledger.models import Event, Item, Record, Submission

pytestmark = [pytest.mark.airflow, pytest.mark.integration]


def _counts(ev: Evidence) -> dict[str, int]:
    with Session(ev.ctx.engine) as session:
        return {
            table.__tablename__: session.scalar(select(func.count()).select_from(table)) or 0
            for table in (Item, Submission, Record, Event)
        }


def _statuses(ev: Evidence) -> dict[str, str]:
    with Session(ev.ctx.engine) as session:
        rows = session.execute(
            select(Submission.store_key, Submission.state, Item.status).join(
                Item, Item.sha256 == Submission.item_sha256, isouter=True
            )
        )
        return {key: status if state == "processed" else state for key, state, status in rows}


def _event_steps(ev: Evidence, sha: str) -> list[tuple[str, str]]:
    return [(e.type, e.outcome) for e in ev.ctx.ledger.events(sha)]


def test_get_object_failure_is_recorded_failed_then_retried(s3_evidence: Evidence) -> None:
    """A submission whose GetObject keeps failing makes the run red (the rest is recorded, the
    summary names it); the next run processes it."""
    ev = s3_evidence
    ev.submit("fine.jpg", photo(11))
    flaky = ev.submit("flaky.jpg", photo(12))
    first = ev.run("evidence_intake", fail_get_object=flaky.key)
    assert first.state == "failed", first.output[-3000:]
    assert first.exit_code == 1  # `python dags/evidence_intake.py` says so too
    assert "1 submission(s) could not be processed: incoming/case-1/flaky.jpg" in first.output
    statuses = _statuses(ev)
    assert statuses[flaky.key] == "failed"
    assert statuses["incoming/case-1/fine.jpg"] in {"consistent", "needs-review"}
    with Session(ev.ctx.engine) as session:
        assert session.get(Item, flaky.sha256) is None
    second = ev.run("evidence_intake")
    assert second.state == "success", second.output[-3000:]
    assert _statuses(ev)[flaky.key] in {"consistent", "needs-review"}
    counts = _counts(ev)
    assert counts["items"] == 2 and counts["submissions"] == 2
    assert ev.ctx.ledger.verify().ok


def test_worker_killed_after_vault_write_converges_on_retry(
    local_evidence: Evidence, tmp_path: Path
) -> None:
    """A task killed between the vault write and the ledger is retried into one item, one event set."""
    ev = local_evidence
    crashed = ev.submit("a.jpg", photo(21))
    ev.submit("b.jpg", photo(22))
    marker = tmp_path / "crashed-once"
    result = ev.run("evidence_intake", crash_after_preserve=marker)
    assert marker.exists(), "the simulated kill did not happen"
    assert result.state == "success", result.output[-3000:]
    assert result.exit_code == 0
    counts = _counts(ev)
    assert counts["items"] == 2 and counts["submissions"] == 2 and counts["records"] == 2
    steps = _event_steps(ev, crashed.sha256)
    with Session(ev.ctx.engine) as session:
        keys = Counter(
            session.scalars(select(Event.step_key).where(Event.item_sha256 == crashed.sha256))
        )
    assert all(n == 1 for n in keys.values())
    assert [t for t, _ in steps] == [t for t, _ in _event_steps(ev, ev.submitted[1].sha256)]
    tries = {
        a["try_number"]
        for e in ev.ctx.ledger.events(crashed.sha256)
        for a in e.agents
        if a.get("type") == "execution" and a.get("task_id") == "process_batch"
    }
    assert tries == {2}  # the batch's events come from its retry (the views task is its own)
    assert ev.ctx.ledger.verify().ok
