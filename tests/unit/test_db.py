"""The Alembic migrations build exactly the schema the models declare, and migrate is idempotent."""

from __future__ import annotations

from pathlib import Path

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
