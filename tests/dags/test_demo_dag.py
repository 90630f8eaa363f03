"""`evidence demo` runs the samples through the evidence_intake DAG itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import make_settings
from verification import pipeline
from verification.cli.demo import demo_settings, run_demo


@pytest.mark.integration
@pytest.mark.airflow
def test_demo_runs_the_intake_dag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The demo's custody events name the evidence_intake DAG run that made them."""
    settings = make_settings(tmp_path, workers=2)
    assert run_demo(settings, fresh=True) == 0
    out = capsys.readouterr().out
    assert "Running the Airflow DAG evidence_intake" in out
    assert "all verified" in out
    ctx = pipeline.open_context(demo_settings(settings))
    items = ctx.ledger.items()
    assert len(items) == 8
    agents = [a for e in ctx.ledger.events(items[0]) for a in e.agents]
    assert any(
        a.get("type") == "execution" and a.get("dag_id") == "evidence_intake" for a in agents
    )
