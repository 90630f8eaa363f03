"""dags/evidence_intake.py run for real (dag.test()) against S3 over HTTP and the local default."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.dags.conftest import Evidence
from tests.helpers import photo
from verification.db import Event, Item, Record, Submission
from verification.pipeline import vault_key

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


def test_intake_over_s3_records_items_and_is_idempotent(s3_evidence: Evidence) -> None:
    """Submissions in S3 become items, records and a verifying chain; a second run adds nothing."""
    ev = s3_evidence
    for seed in (1, 2, 3):
        ev.submit(f"photo{seed}.jpg", photo(seed))
    first = ev.run("evidence_intake")
    assert first.state == "success", first.output[-3000:]
    counts = _counts(ev)
    assert counts["items"] == 3 and counts["submissions"] == 3 and counts["records"] == 3
    assert set(_statuses(ev).values()) <= {"consistent", "needs-review"}
    assert ev.ctx.ledger.verify().ok
    sha = ev.submitted[0].sha256
    assert ev.store.exists(vault_key(sha))
    agents = ev.ctx.ledger.events(sha)[0].agents
    execution = next(a for a in agents if a.get("type") == "execution")
    assert execution["dag_id"] == "evidence_intake" and execution["task_id"] == "process_batch"
    assert execution["run_id"] == first.run_id and execution["map_index"] == 0
    second = ev.run("evidence_intake")
    assert second.state == "success"
    assert _counts(ev) == counts
    assert ev.ctx.ledger.verify().ok


def test_hostile_files_become_unreadable_and_the_rest_verifies(local_evidence: Evidence) -> None:
    """A truncated JPEG and garbage named .jpg end unreadable; the good photos in the batch do not."""
    ev = local_evidence
    good = photo(7, gps=(48.858093, 2.294694, 35.0), taken="2024:05:01 12:00:00")
    ev.submit("good.jpg", good)
    ev.submit("other.jpg", photo(8))
    ev.submit("truncated.jpg", good[: len(good) // 2])
    ev.submit("garbage.jpg", os.urandom(4096))
    result = ev.run("evidence_intake", conf={"batch_size": 2})
    assert result.state == "success", result.output[-3000:]
    statuses = _statuses(ev)
    assert statuses["incoming/case-1/truncated.jpg"] == "unreadable"
    assert statuses["incoming/case-1/garbage.jpg"] == "unreadable"
    assert statuses["incoming/case-1/good.jpg"] in {"consistent", "needs-review"}
    assert statuses["incoming/case-1/other.jpg"] in {"consistent", "needs-review"}
    assert ev.ctx.ledger.verify().ok
    assert "Returned value was" in result.output  # task logs and XComs are in the output
    assert "48.858" not in result.output and "2.2946" not in result.output


def test_get_object_failure_is_recorded_failed_then_retried(s3_evidence: Evidence) -> None:
    """A submission whose GetObject keeps failing makes the run red (the rest is recorded, the
    summary names it); the next run processes it."""
    ev = s3_evidence
    ev.submit("fine.jpg", photo(11))
    flaky = ev.submit("flaky.jpg", photo(12))
    first = ev.run("evidence_intake", fail_get_object=flaky.key)
    assert first.state == "failed", first.output[-3000:]
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
        if a.get("type") == "execution"
    }
    assert tries == {2}
    assert ev.ctx.ledger.verify().ok
