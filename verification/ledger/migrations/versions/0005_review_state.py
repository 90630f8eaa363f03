"""review state and case membership

``item_reviews``: the review state of each item (decision in force, whether analysts' current
decisions disagree, assignee, counts and the text of analysts' notes), rewritten from the
item's custody chain in the same transaction as every ``review`` event, so the queue filters
undecided / decided / disagreeing / assigned items in the database. ``ix_submissions_case_item``:
an item belongs to every case it was submitted to, and the queue and case pages find a case's
items through its submissions.

Revision ID: 0005_review_state
Revises: 0004_trust
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_review_state"
down_revision = "0004_trust"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "item_reviews",
        sa.Column("item_sha256", sa.String(length=64), nullable=False),
        sa.Column("decision", sa.String(length=32), nullable=True),
        sa.Column("decided_by", sa.String(length=200), nullable=True),
        sa.Column("decided_at", sa.String(length=32), nullable=True),
        sa.Column("decisions", sa.Integer(), nullable=False),
        sa.Column("disagree", sa.Boolean(), nullable=False),
        sa.Column("assignee", sa.String(length=200), nullable=True),
        sa.Column("comments", sa.Integer(), nullable=False),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("last_seq", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["item_sha256"], ["items.sha256"]),
        sa.PrimaryKeyConstraint("item_sha256"),
    )
    op.create_index("ix_item_reviews_decision", "item_reviews", ["decision", "item_sha256"])
    op.create_index("ix_item_reviews_assignee", "item_reviews", ["assignee", "item_sha256"])
    op.create_index("ix_item_reviews_disagree", "item_reviews", ["disagree", "item_sha256"])
    op.create_index("ix_submissions_case_item", "submissions", ["case_id", "item_sha256"])
    _backfill()


def _backfill() -> None:
    """Decisions recorded before this revision: the latest one per item is in force."""
    bind = op.get_bind()
    rows = bind.execute(
        sa.text(
            "SELECT item_sha256, seq, event_time, detail FROM custody_events "
            "WHERE event_type = 'review' ORDER BY item_sha256, seq"
        )
    ).all()
    state: dict[str, dict[str, object]] = {}
    for sha, seq, time, detail in rows:
        data = detail if isinstance(detail, dict) else _json(detail)
        if "decision" not in data:
            continue
        entry = state.setdefault(sha, {"decisions": 0, "by": {}, "notes": []})
        entry.update(decision=data["decision"], decided_by=data.get("analyst"), decided_at=time)
        entry["decisions"] = int(entry["decisions"]) + 1  # type: ignore[call-overload]
        entry["by"][data.get("analyst")] = data["decision"]  # type: ignore[index]
        entry["notes"].append(str(data.get("note", "")))  # type: ignore[attr-defined]
        entry["last_seq"] = seq
    table = sa.table(
        "item_reviews",
        *(sa.column(c) for c in ("item_sha256", "decision", "decided_by", "decided_at")),
        *(sa.column(c) for c in ("decisions", "disagree", "assignee", "comments", "notes")),
        sa.column("last_seq"),
    )
    for sha, entry in state.items():
        bind.execute(
            table.insert().values(
                item_sha256=sha,
                decision=entry["decision"],
                decided_by=entry["decided_by"],
                decided_at=entry["decided_at"],
                decisions=entry["decisions"],
                disagree=len(set(entry["by"].values())) > 1,  # type: ignore[attr-defined]
                assignee=None,
                comments=0,
                notes="\n".join(entry["notes"]),  # type: ignore[arg-type]
                last_seq=entry["last_seq"],
            )
        )


def _json(value: object) -> dict[str, object]:
    import json

    loaded = json.loads(str(value)) if value else {}
    return loaded if isinstance(loaded, dict) else {}


def downgrade() -> None:
    op.drop_index("ix_submissions_case_item", table_name="submissions")
    op.drop_table("item_reviews")
