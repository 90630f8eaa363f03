"""review queue indexes

Composite indexes for the analyst review queue (verification/review.py): each filter column
followed by the default sort key and the sha256 tie-breaker, so a filtered, sorted page is read
from one index in order (no sort step, and OFFSET walks index entries only); and finding code
followed by item, so "items with finding X" is an index-only lookup. Figures in
bench/queue_bench.py and docs/review-ui.md.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

INDEXES = {
    "items": {
        "ix_items_first_seen_sha256": ["first_seen", "sha256"],
        "ix_items_case_first_seen": ["case_id", "first_seen", "sha256"],
        "ix_items_status_first_seen": ["status", "first_seen", "sha256"],
        "ix_items_submitter_first_seen": ["submitter", "first_seen", "sha256"],
    },
    "item_findings": {
        "ix_item_findings_code_item": ["code", "item_sha256"],
    },
}


def upgrade() -> None:
    for table, indexes in INDEXES.items():
        for name, columns in indexes.items():
            op.create_index(name, table, columns, unique=False)


def downgrade() -> None:
    for table, indexes in INDEXES.items():
        for name in indexes:
            op.drop_index(name, table_name=table)
