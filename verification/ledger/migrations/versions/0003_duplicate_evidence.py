"""duplicate link evidence and the perceptual log

``duplicate_links.evidence``: how a pair matched, seen from the row's item (keyframes, dihedral
transform, the crop's ORB evidence and geometry), so the record of an item re-evaluated when a
later item links to it says as much as the later item's own. ``perceptual_log``: one row per
storing of an item's perceptual hashes, in commit order, so a batch refreshes its in-memory
index from the last id it saw instead of reloading the collection for every item.

Revision ID: 0003_duplicates
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_duplicates"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("duplicate_links", sa.Column("evidence", sa.JSON(), nullable=True))
    op.create_table(
        "perceptual_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("item_sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("perceptual_log")
    with op.batch_alter_table("duplicate_links") as batch:
        batch.drop_column("evidence")
