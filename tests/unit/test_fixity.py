"""verification/fixity.py: each outcome of the nightly fixity check, its events and checkpoints.

(Library tests without Airflow; they sit next to the DAG tests that depend on them.)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.helpers import init_context, make_settings, photo
from verification.cli import fixity as fixity_cli
from verification.cli.extensions import Handler
from verification.core.claims import Claims
from verification.ledger.models import Checkpoint, Event, Item
from verification.pipeline import Context, fixity, ingest, vault_key
from verification.pipeline.submission import submit_file
from verification.storage import StoreUnavailable
from verification.storage.local import LocalStore


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    """An embedded context with two ingested photos."""
    settings = make_settings(tmp_path / "home")
    context = init_context(settings, agents=[{"type": "test"}])
    for seed in (1, 2):
        path = tmp_path / f"photo{seed}.jpg"
        path.write_bytes(photo(seed))
        submit_file(context.store, path, Claims("case-1"))
    assert all(o.status != "failed" for o in ingest(context, workers=1))
    return context


def _items(ctx: Context) -> list[str]:
    return fixity.vault_items(ctx)


def _vault_file(ctx: Context, sha: str) -> Path:
    assert isinstance(ctx.store, LocalStore)
    return ctx.store.root / "objects" / Path(*vault_key(sha).split("/"))


def _fixity_events(ctx: Context, sha: str) -> list[Event]:
    with Session(ctx.engine) as session:
        return list(
            session.scalars(
                select(Event).where(Event.item_sha256 == sha, Event.step_key.startswith("fixity:"))
            )
        )


def test_intact_original_is_success(ctx: Context) -> None:
    """An untouched vault copy checks out as success with expected == found."""
    sha = _items(ctx)[0]
    result = fixity.check_item(ctx, sha, "run-1")
    assert result.outcome == "success"
    assert result.found == result.expected == f"sha256:{sha}"
    (event,) = _fixity_events(ctx, sha)
    assert event.event_type == "fixity check" and event.outcome == "success"
    assert event.detail["vault_key"] == vault_key(sha)


def test_tampered_original_is_failure_and_marks_item(ctx: Context) -> None:
    """Changed vault bytes give failure, the found digest, and Item.fixity == 'failure'."""
    sha = _items(ctx)[0]
    path = _vault_file(ctx, sha)
    path.chmod(0o644)
    path.write_bytes(b"not the original")
    result = fixity.check_item(ctx, sha, "run-1")
    assert result.outcome == "failure"
    assert result.found is not None and result.found != result.expected
    with Session(ctx.engine) as session:
        assert session.get(Item, sha).fixity == "failure"
    assert ctx.ledger.verify().ok


def test_deleted_original_is_missing(ctx: Context) -> None:
    """A vault object that is gone gives missing with found None."""
    sha = _items(ctx)[0]
    _vault_file(ctx, sha).unlink()
    result = fixity.check_item(ctx, sha, "run-1")
    assert (result.outcome, result.found) == ("missing", None)
    with Session(ctx.engine) as session:
        assert session.get(Item, sha).fixity == "missing"


def test_unreadable_store_is_not_run(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    """A store that cannot be read gives not-run and leaves Item.fixity alone."""
    sha = _items(ctx)[0]

    def refuse(*_args: object, **_kw: object) -> None:
        raise StoreUnavailable("store offline")

    monkeypatch.setattr(ctx.store, "open", refuse)
    result = fixity.check_item(ctx, sha, "run-1")
    assert result.outcome == "not-run" and "store offline" in (result.reason or "")
    with Session(ctx.engine) as session:
        assert session.get(Item, sha).fixity == "success"


def test_same_run_is_idempotent_next_run_adds_event(ctx: Context) -> None:
    """Re-running one run id records nothing new; another run id adds one event per item."""
    first = fixity.check_all(ctx, "night-1", batch_size=1)
    again = fixity.check_all(ctx, "night-1", batch_size=1)
    assert first == again
    sha = _items(ctx)[0]
    assert len(_fixity_events(ctx, sha)) == 1
    fixity.check_all(ctx, "night-2")
    assert len(_fixity_events(ctx, sha)) == 2
    assert fixity.summarise(first) == {"success": 2}
    assert ctx.ledger.verify().ok


def test_checkpoint_is_stored_write_once_in_the_bucket(ctx: Context) -> None:
    """write_checkpoint signs the heads and copies them to checkpoints/<created_at>.json."""
    checkpoint = fixity.write_checkpoint(ctx)
    assert checkpoint.stored_key == f"checkpoints/{checkpoint.created_at}.json"
    with ctx.store.open(checkpoint.stored_key) as handle:
        stored = json.load(handle)
    assert stored["root"] == checkpoint.root and stored["items"] == 2
    with Session(ctx.engine) as session:
        row = session.get(Checkpoint, checkpoint.id)
        assert row.stored_key == checkpoint.stored_key
        assert session.scalar(select(func.count()).select_from(Checkpoint)) == 1
    assert ctx.ledger.verify().ok


def test_cli_command_exits_1_on_a_problem(ctx: Context, capsys: pytest.CaptureFixture[str]) -> None:
    """`evidence fixity` prints a table and exits 1 when an original is missing."""
    parser = argparse.ArgumentParser()
    commands: dict[str, Handler] = {}
    fixity_cli.register(parser.add_subparsers(dest="command"), commands)
    args = parser.parse_args(["fixity", "--run-id", "cli-1"])
    assert commands["fixity"](ctx.settings, args) == 0
    _vault_file(ctx, _items(ctx)[1]).unlink()
    args = parser.parse_args(["fixity", "--run-id", "cli-2"])
    assert commands["fixity"](ctx.settings, args) == 1
    out = capsys.readouterr().out
    assert "missing: 1" in out and "success: 1" in out
