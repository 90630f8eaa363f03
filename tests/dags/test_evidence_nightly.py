"""dags/evidence_nightly.py run for real: fixity outcomes, reprocessing, checkpoint, failing verdict."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from tests.dags.conftest import Evidence
from tests.helpers import photo
from verification.ledger.models import Checkpoint, Event, Item, Record
from verification.pipeline import ingest, pipeline_version, vault_key
from verification.storage.local import LocalStore

pytestmark = [pytest.mark.airflow, pytest.mark.integration]

OLD_VERSION = "0.0.1+media0"


def _ingest(ev: Evidence, count: int) -> list[str]:
    for seed in range(1, count + 1):
        ev.submit(f"photo{seed}.jpg", photo(30 + seed))
    outcomes = ingest(ev.ctx, workers=1)
    assert all(o.status != "failed" for o in outcomes)
    return [s.sha256 for s in ev.submitted]


def _nightly_events(ev: Evidence, sha: str, run_id: str | None) -> list[Event]:
    with Session(ev.ctx.engine) as session:
        return list(
            session.scalars(
                select(Event).where(Event.item_sha256 == sha, Event.step_key == f"fixity:{run_id}")
            )
        )


def _make_stale(ev: Evidence, sha: str) -> None:
    """Pretend the item was recorded by an older pipeline version."""
    with Session(ev.ctx.engine) as session, session.begin():
        session.execute(update(Item).where(Item.sha256 == sha).values(record_version=OLD_VERSION))
        session.execute(
            update(Record).where(Record.item_sha256 == sha).values(pipeline_version=OLD_VERSION)
        )


def _assert_checkpoint_stored(ev: Evidence) -> None:
    with Session(ev.ctx.engine) as session:
        checkpoint = session.scalars(select(Checkpoint).order_by(Checkpoint.id.desc())).first()
    assert checkpoint is not None and checkpoint.stored_key
    with ev.store.open(checkpoint.stored_key) as handle:
        assert json.load(handle)["root"] == checkpoint.root


def test_nightly_records_failure_and_missing_and_fails_the_run(local_evidence: Evidence) -> None:
    """Tampered and deleted originals are recorded, the run fails, and the chain still verifies."""
    ev = local_evidence
    tampered, deleted, stale = _ingest(ev, 3)
    assert isinstance(ev.store, LocalStore)
    path = ev.store.root / "objects" / Path(*vault_key(tampered).split("/"))
    path.chmod(0o644)
    path.write_bytes(b"altered bytes")
    (ev.store.root / "objects" / Path(*vault_key(deleted).split("/"))).unlink()
    _make_stale(ev, stale)

    result = ev.run("evidence_nightly")

    assert result.state == "failed", result.output[-3000:]
    assert "2 damaged or missing original(s)" in result.output
    (failure,) = _nightly_events(ev, tampered, result.run_id)
    assert failure.outcome == "failure"
    assert failure.detail["expected"] == f"sha256:{tampered}"
    assert failure.detail["found"] not in (None, failure.detail["expected"])
    (missing,) = _nightly_events(ev, deleted, result.run_id)
    assert (missing.outcome, missing.detail["found"]) == ("missing", None)
    (fine,) = _nightly_events(ev, stale, result.run_id)
    assert fine.outcome == "success"
    with Session(ev.ctx.engine) as session:
        assert session.get(Item, tampered).fixity == "failure"
        assert session.get(Item, deleted).fixity == "missing"
        versions = sorted(
            session.scalars(select(Record.pipeline_version).where(Record.item_sha256 == stale))
        )
        assert session.get(Item, stale).record_version == pipeline_version()
    assert versions == sorted([OLD_VERSION, pipeline_version()])
    _assert_checkpoint_stored(ev)
    assert ev.ctx.ledger.verify().ok


def test_nightly_over_s3_detects_new_version_and_delete_marker(s3_evidence: Evidence) -> None:
    """On a versioned bucket, a new version over a vault key is a failure, a delete is missing."""
    ev = s3_evidence
    tampered, deleted, intact = _ingest(ev, 3)
    client, bucket = ev.store.client, ev.store.bucket  # type: ignore[attr-defined]
    client.put_object(Bucket=bucket, Key=vault_key(tampered), Body=io.BytesIO(b"altered"))
    client.delete_object(Bucket=bucket, Key=vault_key(deleted))

    result = ev.run("evidence_nightly")

    assert result.state == "failed", result.output[-3000:]
    (failure,) = _nightly_events(ev, tampered, result.run_id)
    assert failure.outcome == "failure" and "newer version" in failure.detail["reason"]
    (missing,) = _nightly_events(ev, deleted, result.run_id)
    assert missing.outcome == "missing"
    (fine,) = _nightly_events(ev, intact, result.run_id)
    assert fine.outcome == "success"
    _assert_checkpoint_stored(ev)
    assert ev.ctx.ledger.verify().ok
