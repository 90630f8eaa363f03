"""A fixity failure changes what an analyst sees: the queue filter, the exported report, and the
rotation that keeps every original checked at collection scale."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session

from tests.helpers import init_context, make_settings, photo
from verification.core.claims import Claims
from verification.exports import export_case
from verification.ledger.models import Item, utcnow
from verification.pipeline import Context, fixity, ingest, vault_key
from verification.pipeline.submission import submit_file
from verification.review.queries import QueueFilters, queue
from verification.storage.local import LocalStore


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    """Three ingested photos of different sizes."""
    context = init_context(make_settings(tmp_path / "home"), agents=[{"type": "test"}])
    for seed in (1, 2, 3):
        path = tmp_path / f"p{seed}.jpg"
        path.write_bytes(photo(seed))
        submit_file(context.store, path, Claims("case-1"))
    assert all(o.status != "failed" for o in ingest(context, workers=1))
    return context


def _tamper(ctx: Context, sha: str) -> None:
    assert isinstance(ctx.store, LocalStore)
    path = ctx.store.root / "objects" / Path(*vault_key(sha).split("/"))
    path.chmod(0o644)
    path.write_bytes(b"altered")


def test_queue_filter_lists_items_whose_fixity_failed(ctx: Context) -> None:
    """`fixity=failed` in the review queue lists exactly the damaged and missing originals."""
    damaged = fixity.vault_items(ctx)[0]
    assert queue(ctx.engine, QueueFilters(fixity="failed")).total == 0
    _tamper(ctx, damaged)
    fixity.check_all(ctx, "night-1")
    page = queue(ctx.engine, QueueFilters(fixity="failed"))
    assert [row.sha256 for row in page.rows] == [damaged]


def test_html_export_states_the_fixity_failure(ctx: Context, tmp_path: Path) -> None:
    """The exported report carries a line for an original that failed its last fixity check."""
    damaged = fixity.vault_items(ctx)[1]
    _tamper(ctx, damaged)
    fixity.check_all(ctx, "night-1")
    report = export_case(ctx, "case-1", "html", tmp_path / "out", "Ana").read_text()
    assert report.count("FIXITY FAILURE: the preserved original failed its last fixity check") == 1


def test_rotation_takes_the_oldest_verified_first_within_the_budget(ctx: Context) -> None:
    """With a byte budget a run checks the never-checked, then the oldest-checked originals."""
    items = fixity.vault_items(ctx)
    with Session(ctx.engine) as session:
        sizes = {sha: session.get(Item, sha).size for sha in items}  # type: ignore[union-attr]
    first = fixity.due_items(ctx, sizes[items[0]] + sizes[items[1]])
    assert first == items[:2]  # never checked: SHA-256 order
    fixity.check_all(ctx, "night-1", items=first)
    second = fixity.due_items(ctx, 1)  # a budget below one original still checks one
    assert second == [items[2]]
    fixity.check_all(ctx, "night-2", items=second)
    assert fixity.due_items(ctx, sizes[items[0]]) == [items[0]]  # oldest check next
    assert fixity.due_items(ctx, 0) == items  # no budget: everything


def test_original_not_checked_within_the_cycle_is_overdue(ctx: Context) -> None:
    """An original whose last check is older than the cycle is overdue until a run checks it."""
    items = fixity.vault_items(ctx)
    assert fixity.overdue_items(ctx, 30) == []
    old = utcnow() - timedelta(days=31)
    with Session(ctx.engine) as session, session.begin():
        session.execute(update(Item).values(first_seen=old))
    assert fixity.overdue_items(ctx, 30) == items
    fixity.check_all(ctx, "night-1", items=items[:1])
    assert fixity.overdue_items(ctx, 30) == items[1:]


def test_time_budget_stops_starting_batches(ctx: Context) -> None:
    """A spent time budget starts no further batch; the unchecked originals come first next."""
    items = fixity.vault_items(ctx)
    assert fixity.check_all(ctx, "night-1", 1, items, seconds=0) == []
    done = fixity.check_all(ctx, "night-2", 1, items[:1], seconds=60)
    assert [r.item for r in done] == items[:1]
    assert fixity.due_items(ctx, 1) == [items[1]]
