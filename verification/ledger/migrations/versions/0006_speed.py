"""listing cursors, and submissions by state

``listing_cursors``: per listed prefix, the time before which every object was already seen, so
a listing of ``incoming/`` reads only what is new instead of every object's metadata on every
run. ``ix_submissions_state``: the failed submissions a listing retries are found without
reading every submission.

Revision ID: 0006_speed
Revises: 0005_review_state
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_speed"
down_revision = "0005_review_state"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "listing_cursors",
        sa.Column("prefix", sa.String(length=1024), nullable=False),
        sa.Column("listed_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("full_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("prefix"),
    )
    with op.batch_alter_table("submissions") as batch:
        batch.create_index(batch.f("ix_submissions_state"), ["state"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("submissions") as batch:
        batch.drop_index(batch.f("ix_submissions_state"))
    op.drop_table("listing_cursors")
