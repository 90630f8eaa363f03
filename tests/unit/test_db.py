"""The Alembic migrations build exactly the schema the models declare, and migrate is idempotent."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from verification.ledger.models import Base, make_engine, migrate


def _diff(url: str) -> list[object]:
    engine = make_engine(url)
    migrate(engine)
    migrate(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    return list(diff)


def test_migrations_match_models_on_sqlite(tmp_path: Path) -> None:
    """After `migrate` (twice) SQLite has no difference from the models."""
    assert _diff(f"sqlite:///{tmp_path / 'x.db'}") == []


@pytest.mark.integration
@pytest.mark.postgres
def test_migrations_match_models_on_postgresql(pg_url: str) -> None:
    """After `migrate` (twice) PostgreSQL has no difference from the models."""
    assert _diff(pg_url) == []


def test_reads_do_not_queue_behind_a_recording_transaction_on_sqlite(tmp_path: Path) -> None:
    """A write transaction holds SQLite's write lock (``BEGIN IMMEDIATE``) until it ends; the
    pipeline's reads (is this submission processed?) run on :func:`reader` and answer at once
    from the last committed state instead of waiting for it (they did wait: up to the 60 s busy
    timeout, stalling the I/O threads while the recorder wrote)."""
    from sqlalchemy import text

    from verification.pipeline.record import is_processed
    from verification.storage import ObjectInfo

    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    migrate(engine)
    ctx: Any = type("Ctx", (), {"engine": engine})()
    info = ObjectInfo("incoming/c/a.jpg", 1, "etag", datetime.now(UTC))
    answers: list[bool] = []
    with engine.connect() as writer:
        writer.execute(text("UPDATE listing_cursors SET prefix = prefix"))  # holds the lock
        reading = threading.Thread(target=lambda: answers.append(is_processed(ctx, info)))
        reading.start()
        reading.join(10)
        assert answers == [False], "the read waited for the write transaction"
        writer.rollback()
    reading.join()
    engine.dispose()
