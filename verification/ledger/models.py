"""Database models (SQLAlchemy 2) and migrations (Alembic) for items, submissions, records,
custody events and checkpoints. SQLite is the embedded default, PostgreSQL the production one.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, cast

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Engine,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"


def utcnow() -> datetime:
    """Timezone-aware now in UTC."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base of every table."""

    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON}


class Item(Base):
    """A unique byte sequence, identified by SHA-256, with the summary the review queue needs."""

    __tablename__ = "items"
    # Review-queue indexes (migration 0002): filter column, then the default sort and tie-breaker.
    __table_args__ = (
        Index("ix_items_first_seen_sha256", "first_seen", "sha256"),
        Index("ix_items_case_first_seen", "case_id", "first_seen", "sha256"),
        Index("ix_items_status_first_seen", "status", "first_seen", "sha256"),
        Index("ix_items_submitter_first_seen", "submitter", "first_seen", "sha256"),
    )

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(Integer)
    sha1: Mapped[str] = mapped_column(String(40))
    md5: Mapped[str] = mapped_column(String(32))
    format: Mapped[str] = mapped_column(String(16))
    mime: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    vault_key: Mapped[str] = mapped_column(String(200))
    vault_version: Mapped[str | None] = mapped_column(String(200))
    first_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    case_id: Mapped[str] = mapped_column(String(200), index=True)
    submitter: Mapped[str | None] = mapped_column(String(200), index=True)
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    capture_time: Mapped[str | None] = mapped_column(String(40), index=True)
    place: Mapped[str | None] = mapped_column(String(200))
    fixity: Mapped[str] = mapped_column(String(16), default="success")
    # Latest nightly fixity check (migration 0004): rotation takes the oldest first.
    fixity_checked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    record_version: Mapped[str | None] = mapped_column(String(40))


class Submission(Base):
    """One arrival of an object under ``incoming/``: key, version, claims, and what became of it."""

    __tablename__ = "submissions"
    __table_args__ = (
        UniqueConstraint("store_key", "etag", name="uq_submission_key_etag"),
        # Case membership (migration 0005): an item belongs to every case it was submitted to.
        Index("ix_submissions_case_item", "case_id", "item_sha256"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    store_key: Mapped[str] = mapped_column(String(1024))
    etag: Mapped[str] = mapped_column(String(200))
    version_id: Mapped[str | None] = mapped_column(String(200))
    item_sha256: Mapped[str | None] = mapped_column(ForeignKey("items.sha256"), index=True)
    case_id: Mapped[str] = mapped_column(String(200), index=True)
    submitter: Mapped[str | None] = mapped_column(String(200))
    claims: Mapped[dict[str, Any]] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    state: Mapped[str] = mapped_column(String(16), default="processed", index=True)
    error: Mapped[str | None] = mapped_column(Text)


class ItemReview(Base):
    """Review state of an item as its custody chain's ``review`` events leave it (migration 0005).

    A projection for filtering the queue in the database, rewritten from the chain in the same
    transaction as each review event; the signed chain stays the source of truth.
    """

    __tablename__ = "item_reviews"
    __table_args__ = (
        Index("ix_item_reviews_decision", "decision", "item_sha256"),
        Index("ix_item_reviews_assignee", "assignee", "item_sha256"),
        Index("ix_item_reviews_disagree", "disagree", "item_sha256"),
    )

    item_sha256: Mapped[str] = mapped_column(ForeignKey("items.sha256"), primary_key=True)
    decision: Mapped[str | None] = mapped_column(String(32))
    decided_by: Mapped[str | None] = mapped_column(String(200))
    decided_at: Mapped[str | None] = mapped_column(String(32))
    decisions: Mapped[int] = mapped_column(Integer, default=0)
    disagree: Mapped[bool] = mapped_column(Boolean, default=False)
    assignee: Mapped[str | None] = mapped_column(String(200))
    comments: Mapped[int] = mapped_column(Integer, default=0)
    notes: Mapped[str] = mapped_column(Text, default="")
    last_seq: Mapped[int] = mapped_column(Integer, default=0)


class Record(Base):
    """A verification record of an item by one pipeline version; reprocessing adds a new one."""

    __tablename__ = "records"
    __table_args__ = (
        UniqueConstraint("item_sha256", "pipeline_version", name="uq_record_version"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    item_sha256: Mapped[str] = mapped_column(ForeignKey("items.sha256"), index=True)
    pipeline_version: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)


class ItemFinding(Base):
    """Finding codes of an item's current record, for filtering the review queue in the database."""

    __tablename__ = "item_findings"
    __table_args__ = (Index("ix_item_findings_code_item", "code", "item_sha256"),)

    item_sha256: Mapped[str] = mapped_column(ForeignKey("items.sha256"), primary_key=True)
    code: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)
    severity: Mapped[str] = mapped_column(String(16))


class PerceptualHash(Base):
    """PDQ hashes of an item (frame 0 for photos, one per keyframe for videos)."""

    __tablename__ = "perceptual_hashes"

    item_sha256: Mapped[str] = mapped_column(ForeignKey("items.sha256"), primary_key=True)
    frame: Mapped[int] = mapped_column(Integer, primary_key=True)
    pdq: Mapped[bytes] = mapped_column(LargeBinary(32))
    quality: Mapped[int | None] = mapped_column(Integer)


class DuplicateLink(Base):
    """A near or exact duplicate relation, stored in both directions.

    ``evidence`` (migration 0003) is how the pair matched, seen from ``item_sha256``: the
    keyframes and dihedral transform that matched, and for crops the ORB evidence and where
    one picture sits in the other (docs/usage.md lists the fields).
    """

    __tablename__ = "duplicate_links"

    item_sha256: Mapped[str] = mapped_column(ForeignKey("items.sha256"), primary_key=True)
    other_sha256: Mapped[str] = mapped_column(ForeignKey("items.sha256"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    distance: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    evidence: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class PerceptualLog(Base):
    """One row each time an item's perceptual hashes are stored, in commit order (migration 0003).

    Written only under the dedupe lock (:func:`verification.pipeline.dedupe.lock_dedupe`), so
    ids become visible in increasing order: a batch keeps the collection's PDQ index in memory
    and reads only the rows past the last id it saw.
    """

    __tablename__ = "perceptual_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    item_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ListingCursor(Base):
    """How far a listing of ``incoming/`` (or one case's part of it) can skip (migration 0006).

    Every object last modified before ``listed_from`` was seen by an earlier listing and is
    processed, rejected or failed (failed ones are retried from the submissions table), so the
    next listing reads only objects modified since (less a margin for clocks and uploads in
    flight); ``full_at`` is when the whole prefix was last listed.
    """

    __tablename__ = "listing_cursors"

    prefix: Mapped[str] = mapped_column(String(1024), primary_key=True)
    listed_from: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    full_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Event(Base):
    """One custody event; events of an item form a hash chain by ``seq``."""

    __tablename__ = "custody_events"
    __table_args__ = (
        UniqueConstraint("item_sha256", "seq", name="uq_event_seq"),
        UniqueConstraint("item_sha256", "step_key", name="uq_event_step"),
        Index("ix_event_type_time", "event_type", "event_time"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    item_sha256: Mapped[str] = mapped_column(String(64), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    event_type: Mapped[str] = mapped_column(String(48))
    event_time: Mapped[str] = mapped_column(String(32))
    outcome: Mapped[str] = mapped_column(String(16))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)
    agents: Mapped[list[Any]] = mapped_column(JSON)
    step_key: Mapped[str] = mapped_column(String(200))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(String(128))


class SigningKey(Base):
    """Public keys that signed events, so chains verify offline after a key rotation."""

    __tablename__ = "signing_keys"

    key_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    public_key: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Checkpoint(Base):
    """A signed Merkle root over every item's chain head at one moment."""

    __tablename__ = "checkpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[str] = mapped_column(String(32))
    root: Mapped[str] = mapped_column(String(64))
    heads: Mapped[dict[str, Any]] = mapped_column(JSON)
    key_id: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(String(128))
    tsa_status: Mapped[str] = mapped_column(String(16), default="pending")
    tsa_token: Mapped[bytes | None] = mapped_column(LargeBinary)
    tsa_url: Mapped[str | None] = mapped_column(String(500))
    stored_key: Mapped[str | None] = mapped_column(String(200))
    complete: Mapped[bool] = mapped_column(Boolean, default=True)


def insert_if_absent(
    session: Session, model: type[Base], values: dict[str, Any], keys: Sequence[str]
) -> bool:
    """``INSERT ... ON CONFLICT (keys) DO NOTHING``: True when this call inserted the row.

    Two runs recording the same thing at once both try; the one that loses the race inserts
    nothing instead of failing (PostgreSQL waits for the winner's transaction first).
    """
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    table = cast("Table", model.__table__)
    statement = insert(table).values(**values).on_conflict_do_nothing(index_elements=list(keys))
    session.flush()  # what the session holds first, as an ORM statement would autoflush it
    result = session.connection().execute(statement)  # Core: no ORM bulk-insert machinery
    return bool(getattr(result, "rowcount", 0))


READ_ONLY = "evidence_read_only"


def reader(engine: Engine) -> Engine:
    """``engine`` for transactions that only read: on SQLite they begin deferred (a snapshot of
    the WAL, no lock), so they never wait for a writer; elsewhere nothing changes."""
    return engine.execution_options(**{READ_ONLY: True})


def make_engine(url: str) -> Engine:
    """Create an engine; SQLite gets WAL, a busy timeout and ``BEGIN IMMEDIATE`` transactions.

    ``BEGIN IMMEDIATE`` takes the write lock at the start of every transaction, so concurrent
    appenders to the ledger queue up instead of failing half-way with "database is locked".
    Transactions on :func:`reader` engines only read: they begin deferred instead, and so do
    not queue behind a recording transaction.
    """
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)
    engine = create_engine(url, connect_args={"timeout": 60})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        read_only = conn.get_execution_options().get(READ_ONLY)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision (idempotent)."""
    from alembic import command
    from alembic.config import Config

    if engine.url.get_backend_name() == "sqlite" and engine.url.database:
        Path(engine.url.database).parent.mkdir(parents=True, exist_ok=True)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.connect() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
