"""The intake DAG's ``views`` task, run with dag.test(): after the batches it makes each new
photo's full-size view and each video's proxy, records them, and a second run adds nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.dags.conftest import Evidence
from tests.helpers import photo
from verification.ledger.models import Event
from verification.media import samples
from verification.pipeline import derivative_key
from verification.pipeline import views as item_views

pytestmark = [pytest.mark.airflow, pytest.mark.integration]


def _events(ev: Evidence) -> int:
    with Session(ev.ctx.engine) as session:
        return session.scalar(select(func.count()).select_from(Event)) or 0


def test_views_task_makes_and_records_views_once(s3_evidence: Evidence) -> None:
    """A photo and a clip get views in the store the Connection names, with creation events; a
    truncated photo's failure is recorded and does not fail the run; run again: nothing new."""
    ev = s3_evidence
    good = ev.submit("good.jpg", photo(31))
    clip = ev.submit("clip.mp4", samples.video(2))
    broken = ev.submit("broken.jpg", photo(32)[:800])
    first = ev.run("evidence_intake")
    assert first.state == "success", first.output[-3000:]
    assert "views: {" in first.output
    for sha, name in ((good.sha256, "view.jpg"), (clip.sha256, "proxy.webm")):
        recorded = item_views.recorded_view(ev.ctx, sha, name)
        assert recorded is not None, name
        assert ev.store.exists(derivative_key(sha, name))
        event = next(
            e for e in ev.ctx.ledger.events(sha) if e.detail.get("derivative", "").endswith(name)
        )
        assert any(a.get("task_id") == "views" for a in event.agents)
    state = item_views.view_state(ev.ctx.ledger.events(broken.sha256), "view.jpg")
    assert state is not None and state["outcome"] == "failure"
    count = _events(ev)
    second = ev.run("evidence_intake")
    assert second.state == "success", second.output[-3000:]
    assert _events(ev) == count
    assert ev.ctx.ledger.verify().ok
