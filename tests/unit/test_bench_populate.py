"""The scale benchmark's generator (``bench/populate.py``): what it refuses and what it leaves."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bench import populate
from tests.helpers import init_context, make_settings
from verification.duplicates.snapshot import load_snapshot
from verification.ledger.models import Item, PerceptualHash, Submission


def test_a_home_without_a_key_is_refused_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        populate.main([str(tmp_path / "nothing"), "--items", "5"])
    assert exit_info.value.code == 2
    assert "is not an evidence home: run `EVIDENCE_HOME=" in capsys.readouterr().err
    assert not (tmp_path / "nothing").exists()


def test_generated_items_submissions_hashes_and_snapshot(tmp_path: Path) -> None:
    home = tmp_path / "home"
    init_context(make_settings(home)).engine.dispose()
    assert populate.main([str(home), "--items", "30", "--incoming"]) == 0
    ctx = init_context(make_settings(home))
    with Session(ctx.engine) as session:
        counts = [
            session.scalar(select(func.count()).select_from(table))
            for table in (Item, Submission, PerceptualHash)
        ]
    assert counts == [30, 30, 30]
    listed = [info.key for info in ctx.store.list("incoming/generated/")]
    assert len(listed) == 30 and all(key.endswith(".jpg") for key in listed)
    loaded = load_snapshot(home / "cache" / "duplicate-index.snapshot")
    assert loaded is not None and len(loaded[0]) == 30
