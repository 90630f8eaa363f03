"""when each original last passed a nightly fixity check

``items.fixity_checked_at``: the time of the item's latest fixity check by the nightly run (or
``evidence fixity``), indexed so a collection too large for one night is checked in rotation,
oldest-verified first, every original at least every ``EVIDENCE_FIXITY_CYCLE_DAYS``. Empty for
an item no nightly run has checked yet (those go first).

Revision ID: 0004_trust
Revises: 0003_duplicates
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_trust"
down_revision = "0003_duplicates"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "items", sa.Column("fixity_checked_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.create_index("ix_items_fixity_checked_at", "items", ["fixity_checked_at"])


def downgrade() -> None:
    op.drop_index("ix_items_fixity_checked_at", table_name="items")
    with op.batch_alter_table("items") as batch:
        batch.drop_column("fixity_checked_at")
