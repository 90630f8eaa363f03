"""`evidence demo` shows one of each kind of result and a verified custody ledger."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import make_settings
from verification.cli.demo import run_demo


def test_demo_shows_every_kind_of_result(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Consistent, contradicted place and time, edited, stripped, duplicates, video and unreadable all appear."""
    assert run_demo(make_settings(tmp_path, workers=2), fresh=True, direct=True) == 0
    out = capsys.readouterr().out
    rows = {
        line.split()[0]: line
        for line in out.splitlines()
        if line.split() and "." in line.split()[0]
    }
    assert "consistent" in rows["market.jpg"]
    assert "location-contradicts-claim" in rows["bridge.jpg"]
    assert "time-contradicts-claim" in rows["school.jpg"]
    assert "editing-software" in rows["crowd-edited.jpg"]
    assert "exact-duplicate" in rows["market-again.jpg"]
    assert "near-duplicate" in rows["recycled.jpg"]
    assert "unreadable" in rows["broken.jpg"]
    assert "mp4" in rows["checkpoint.mp4"]
    assert "all verified" in out
    assert (
        run_demo(make_settings(tmp_path, workers=1), direct=True) == 0
    )  # a second run adds nothing
    assert "nothing" not in capsys.readouterr().err
