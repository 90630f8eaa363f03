"""The DAGs as a deployment runs them: ``make airflow`` itself (``scripts/airflow_stack.py``:
api-server, scheduler, dag-processor, triggerer; LocalExecutor on SQLite; Airflow's and our
default settings), runs triggered through the REST API as the UI triggers them, results read
from the ledger and the review plugin; stopped with Ctrl-C (SIGINT) at the end, which must exit 0
and leave no process behind.

Settings the stack is given on top of the defaults, and why:

* a free port for the UI and API (``--port``; another Airflow may be running);
* ``EVIDENCE_RETRY_DELAY_SECONDS=2``: the failure case waits through two retries; the default
  delay (60 s, doubling) would only make it slower, not different;
* ``EVIDENCE_TEST_FAULT=workers-crash:case-crash``: only batches of the case ``case-crash`` get
  analysis workers that die at start-up; every other case runs normally.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers import photo
from tests.integration.stack_support import Driver, launched_stack
from verification import pipeline
from verification.storage import ObjectStore

pytestmark = [pytest.mark.integration, pytest.mark.airflow, pytest.mark.slow]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Driver]:
    """The embedded stack, started once for this module."""
    with launched_stack(
        tmp_path_factory.mktemp("stack"),
        EVIDENCE_RETRY_DELAY_SECONDS="2",
        EVIDENCE_TEST_FAULT="workers-crash:case-crash",
    ) as driver:
        yield driver


def _keys(store: ObjectStore, case: str) -> list[str]:
    return sorted(info.key for info in store.list(f"incoming/{case}/"))


def test_triggered_intake_processes_every_submission(stack: Driver) -> None:
    """Photos submitted, intake triggered through the API with default workers: every
    submission is recorded (garbage and a truncated photo quarantined), the run is green, no
    coordinate reaches a task log, the review plugin lists the items with the task that recorded
    them, and a second run adds nothing."""
    paris = photo(7, gps=(48.858093, 2.294694, 35.0), taken="2024:05:01 12:00:00")
    stack.submit("paris.jpg", paris, "case-real")
    for seed in (1, 2):
        stack.submit(f"photo{seed}.jpg", photo(seed, taken="2024:03:14 11:20:05"), "case-real")
    garbage = stack.submit("garbage.jpg", b"\xff\xd8\xff\xe0 not a photo" * 10, "case-real")
    cut = stack.submit("truncated.jpg", paris[: len(paris) // 2], "case-real")
    run_id = stack.trigger("evidence_intake", {"case": "case-real"})
    state = stack.wait_for_run("evidence_intake", run_id)
    assert state == "success", stack.task_log("evidence_intake", run_id)

    outcomes = pipeline.recorded_outcomes(stack.ctx, _keys(stack.ctx.store, "case-real"))
    assert all(o.item for o in outcomes), outcomes
    statuses = {o.key: o.status for o in outcomes}
    assert statuses[garbage.key] == statuses[cut.key] == "unreadable"
    assert stack.ctx.ledger.verify().ok
    logs = stack.task_log("evidence_intake", run_id) + stack.stack.tail(100_000)
    assert "48.858" not in logs and "2.2946" not in logs

    queue = stack.page("/evidence/?case=case-real")
    for outcome in outcomes:
        assert outcome.item is not None and outcome.item[:12] in queue
    item = stack.page(f"/evidence/item/{outcomes[0].item}")
    assert "airflow evidence_intake run " in item
    assert "task process_batch[0] try 1" in item

    events = sum(len(stack.ctx.ledger.events(o.item or "")) for o in outcomes)
    again = stack.trigger("evidence_intake", {"case": "case-real"})
    assert stack.wait_for_run("evidence_intake", again) == "success"
    assert sum(len(stack.ctx.ledger.events(o.item or "")) for o in outcomes) == events


def test_worker_crash_makes_a_red_run_after_retries(stack: Driver) -> None:
    """Workers that cannot start are no file's fault: the batch task fails after its retries,
    the run is red, the failure hook fires, no asset event is emitted, and the submissions stay
    new and show as problems in the review pages."""
    for seed in (11, 12):
        stack.submit(f"crash{seed}.jpg", photo(seed), "case-crash")
    run_id = stack.trigger("evidence_intake", {"case": "case-crash"})
    assert stack.wait_for_run("evidence_intake", run_id) == "failed"

    tasks = {t["task_id"]: t for t in stack.task_instances("evidence_intake", run_id)}
    assert tasks["process_batch"]["state"] == "failed"
    assert tasks["process_batch"]["try_number"] == 3  # the first try and both retries
    assert tasks["summary"]["state"] == "failed"
    assert stack.asset_events("evidence_intake", run_id) == []
    # A task's log file is complete a moment after its state is stored: wait for the lines.
    run_logs = f"dag_id=evidence_intake/run_id={run_id}"
    stack.wait_for_log(
        f"{run_logs}/task_id=process_batch/**/*.log",
        "analysis worker could not start: killed by SIGABRT",
    )
    stack.wait_for_log(
        f"{run_logs}/task_id=summary/**/*.log", "2 submission(s) could not be processed"
    )
    stack.wait_for_log(
        "dag_processor/**/evidence_intake.py.log", f"evidence_intake run {run_id} failed"
    )

    keys = _keys(stack.ctx.store, "case-crash")
    assert {info.key for info in pipeline.list_new(stack.ctx, "case-crash")} == set(keys)
    assert "2 submissions could not be processed" in stack.page("/evidence/?case=case-crash")
    problems = stack.page("/evidence/problems?case=case-crash")
    assert all(key in problems for key in keys)
    assert "analysis workers unavailable" in problems


def test_nightly_run_checks_every_original(stack: Driver) -> None:
    """The nightly DAG, triggered, records a fixity check per item and a checkpoint; green."""
    items = [
        o.item for o in pipeline.recorded_outcomes(stack.ctx, _keys(stack.ctx.store, "case-real"))
    ]
    run_id = stack.trigger("evidence_nightly")
    state = stack.wait_for_run("evidence_nightly", run_id)
    assert state == "success", stack.task_log("evidence_nightly", run_id)
    for sha in items:
        assert sha is not None
        fixity = [e for e in stack.ctx.ledger.events(sha) if e.type == "fixity check"]
        assert any(
            e.detail.get("stage") not in {"preservation", "collection"} and e.outcome == "success"
            for e in fixity
        )
    assert stack.ctx.ledger.latest_checkpoint() is not None


def test_export_run_writes_a_package_to_the_bucket(stack: Driver) -> None:
    """The export DAG, triggered for a case, uploads a BagIt package and records export events."""
    run_id = stack.trigger("evidence_export", {"case": "case-real", "format": "bagit"})
    state = stack.wait_for_run("evidence_export", run_id)
    assert state == "success", stack.task_log("evidence_export", run_id)
    exported = [info.key for info in stack.ctx.store.list("exports/case-real/")]
    assert any(key.endswith("bagit.txt") for key in exported)
    outcome = pipeline.recorded_outcomes(stack.ctx, _keys(stack.ctx.store, "case-real"))[0]
    assert outcome.item is not None
    assert any(e.type == "export" for e in stack.ctx.ledger.events(outcome.item))
