"""Append-only, hash-chained, signed custody ledger.

Every event of an item links to the previous one by hash (a chain per item, so items are processed
in parallel); each event's hash is SHA-256 over the RFC 8785 canonical JSON of its content and is
signed with the installation's Ed25519 key. Checkpoints put a signed Merkle root over all chain
heads, which makes deleting or rolling back whole items detectable. Verification needs only the
events and the public keys: it runs offline, on an export, without our database.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
import uuid as uuidlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import rfc8785
from sqlalchemy import Engine, func, insert, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from verification import __version__
from verification.ledger.checkpoints import check_checkpoint, checkpoint_message, merkle_root
from verification.ledger.models import Checkpoint, Event, Item, SigningKey, utcnow
from verification.ledger.signing import Signer, verify_signature

if TYPE_CHECKING:
    from verification.core.config import Settings

log = logging.getLogger(__name__)

GENESIS = "0" * 64
Outcome = Literal["success", "failure", "warning", "not-run", "missing"]

# PREMIS 3 event types (plus the analyst's review and access of the original).
EVENT_TYPES = frozenset(
    {
        "ingestion",
        "message digest calculation",
        "fixity check",
        "format identification",
        "metadata extraction",
        "validation",
        "quarantine",
        "replication",
        "deletion",
        "creation",
        "access",
        "review",
        "export",
        "redaction",
    }
)

SOFTWARE_AGENT = {"type": "software", "name": "evidence-verification", "version": __version__}


def timestamp(moment: datetime | None = None) -> str:
    """UTC time as fixed-width ISO 8601 with microseconds and ``Z``: stable under hashing."""
    moment = (moment or utcnow()).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True, slots=True)
class CustodyEvent:
    """One event as hashed and signed. ``to_dict`` is the exported, canonical form."""

    uuid: str
    item: str
    seq: int
    type: str
    time: str
    outcome: str
    detail: Mapping[str, Any]
    agents: Sequence[Mapping[str, Any]]
    prev_hash: str
    key_id: str
    hash: str = ""
    signature: str = ""

    def body(self) -> dict[str, Any]:
        """The hashed content: everything but the hash and the signature."""
        return {
            "uuid": self.uuid,
            "item": self.item,
            "seq": self.seq,
            "type": self.type,
            "time": self.time,
            "outcome": self.outcome,
            "detail": dict(self.detail),
            "agents": [dict(a) for a in self.agents],
            "prev_hash": self.prev_hash,
            "key_id": self.key_id,
        }

    def compute_hash(self) -> str:
        """SHA-256 over the RFC 8785 canonical JSON of :meth:`body`."""
        return hashlib.sha256(rfc8785.dumps(self.body())).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        """Body plus hash and signature."""
        return {**self.body(), "hash": self.hash, "signature": self.signature}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CustodyEvent:
        """Inverse of :meth:`to_dict`."""
        return cls(
            uuid=data["uuid"],
            item=data["item"],
            seq=data["seq"],
            type=data["type"],
            time=data["time"],
            outcome=data["outcome"],
            detail=data["detail"],
            agents=data["agents"],
            prev_hash=data["prev_hash"],
            key_id=data["key_id"],
            hash=data.get("hash", ""),
            signature=data.get("signature", ""),
        )

    @classmethod
    def from_row(cls, row: Event) -> CustodyEvent:
        """Build from a database row."""
        return cls(
            uuid=row.uuid,
            item=row.item_sha256,
            seq=row.seq,
            type=row.event_type,
            time=row.event_time,
            outcome=row.outcome,
            detail=row.detail,
            agents=row.agents,
            prev_hash=row.prev_hash,
            key_id=row.key_id,
            hash=row.hash,
            signature=row.signature,
        )


@dataclass(frozen=True, slots=True)
class CustodyStep:
    """One event to append (:meth:`Ledger.append_many`): ``agents`` beyond our software."""

    event_type: str
    outcome: str
    detail: Mapping[str, Any]
    step_key: str
    agents: Sequence[Mapping[str, Any]] = ()


@dataclass(frozen=True, slots=True)
class ChainFailure:
    """The first bad event of a chain and why it is bad."""

    item: str
    seq: int | None
    uuid: str | None
    reason: str

    def __str__(self) -> str:
        where = f"event #{self.seq} ({self.uuid})" if self.seq is not None else "chain"
        return f"item {self.item[:12]}: {where}: {self.reason}"


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """Outcome of verifying one or many chains."""

    items: int
    events: int
    failures: tuple[ChainFailure, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        """True when every chain verified."""
        return not self.failures


def verify_chain(
    item: str, events: Sequence[CustodyEvent], public_keys: Mapping[str, str]
) -> ChainFailure | None:
    """Check one item's chain (sorted by seq); return the first failure or None.

    Checks, per event: it belongs to the item, its sequence number follows the previous one, its
    ``prev_hash`` links to the previous event's hash, its hash matches its content, and its
    signature verifies under a known public key.
    """
    expected_prev, expected_seq = GENESIS, 1
    for ev in events:
        fail = _check_event(item, ev, expected_seq, expected_prev, public_keys)
        if fail:
            return ChainFailure(item, ev.seq, ev.uuid, fail)
        expected_prev, expected_seq = ev.hash, ev.seq + 1
    return None


def _check_event(
    item: str, ev: CustodyEvent, seq: int, prev: str, public_keys: Mapping[str, str]
) -> str | None:
    if ev.item != item:
        return f"belongs to another item ({ev.item[:12]})"
    if ev.seq != seq:
        return f"sequence gap: expected #{seq}, found #{ev.seq} (an event was removed or reordered)"
    if ev.prev_hash != prev:
        return f"broken link: prev_hash {ev.prev_hash[:16]}… does not match previous event {prev[:16]}…"
    found = ev.compute_hash()
    if found != ev.hash:
        return f"content changed: stored hash {ev.hash[:16]}…, recomputed {found[:16]}…"
    public = public_keys.get(ev.key_id)
    if public is None:
        return f"signed by unknown key {ev.key_id[:16]}…"
    if not verify_signature(public, ev.hash.encode(), ev.signature):
        return "signature does not verify"
    return None


def describe_agent(agent: Mapping[str, Any]) -> str:
    """One line naming who acted: a person or operator by name, software with its version, an
    Airflow task by DAG, run, task, try and map index."""
    kind = agent.get("type")
    if kind == "execution":
        task = str(agent.get("task_id", "?"))
        index = agent.get("map_index")
        if isinstance(index, int) and index >= 0:
            task += f"[{index}]"
        return (
            f"airflow {agent.get('dag_id', '?')} run {agent.get('run_id', '?')} "
            f"task {task} try {agent.get('try_number', '?')}"
        )
    name = str(agent.get("name") or kind or "unknown agent")
    version = agent.get("version")
    label = f"{name} {version}" if version else name
    return f"{kind} {label}" if kind in {"person", "operator"} else label


class Ledger:
    """The custody ledger in the database. Appends are safe under concurrency."""

    def __init__(self, engine: Engine, signer: Signer | None = None) -> None:
        self.engine = engine
        self.signer = signer

    def register_key(self) -> None:
        """Store the signer's public key (idempotent) so verifiers find it."""
        signer = self._require_signer()
        with Session(self.engine) as session, session.begin():
            if session.get(SigningKey, signer.key_id) is None:
                session.add(
                    SigningKey(
                        key_id=signer.key_id, public_key=signer.public_pem, created_at=utcnow()
                    )
                )

    def public_keys(self) -> dict[str, str]:
        """Every known public key by id."""
        with Session(self.engine) as session:
            return {k.key_id: k.public_key for k in session.scalars(select(SigningKey))}

    def append(
        self,
        item: str,
        event_type: str,
        outcome: Outcome,
        detail: Mapping[str, Any],
        *,
        step_key: str,
        agents: Iterable[Mapping[str, Any]] = (),
        session: Session | None = None,
    ) -> CustodyEvent:
        """Append an event to ``item``'s chain, or return the existing one for ``step_key``.

        ``step_key`` names the step (e.g. ``ingestion:<submission>``): running a step twice
        yields one event. Concurrent appenders race on the unique ``(item, seq)``; the loser
        retries on the new head, so the chain never forks. With ``session`` the event joins the
        caller's transaction (no retry: the caller owns it).
        """
        if event_type not in EVENT_TYPES:
            msg = f"unknown custody event type {event_type!r}"
            raise ValueError(msg)
        agent_list = [SOFTWARE_AGENT, *agents]
        if session is not None:
            return self._append_in(session, item, event_type, outcome, detail, step_key, agent_list)
        for attempt in range(100):
            try:
                with Session(self.engine) as own, own.begin():
                    return self._append_in(
                        own, item, event_type, outcome, detail, step_key, agent_list
                    )
            except (IntegrityError, OperationalError) as exc:
                log.debug(
                    "custody append retry %s for item %s: %s",
                    attempt,
                    item[:12],
                    type(exc).__name__,
                )
                time.sleep(random.uniform(0.005, 0.05) * (1 + attempt / 10))  # noqa: S311 (jitter)
        msg = f"could not append custody event for item {item[:12]} after 100 attempts"
        raise RuntimeError(msg)

    def append_many(
        self, item: str, steps: Sequence[CustodyStep], *, session: Session
    ) -> list[CustodyEvent]:
        """Append several events to ``item``'s chain in ``session``'s transaction, in order, as
        :meth:`append` would one by one (a step already recorded returns its event), with one
        look-up of the steps, one row lock and one read of the chain head for them all."""
        for step in steps:
            if step.event_type not in EVENT_TYPES:
                msg = f"unknown custody event type {step.event_type!r}"
                raise ValueError(msg)
        return self._append_steps(session, item, steps)

    def _append_in(
        self,
        session: Session,
        item: str,
        event_type: str,
        outcome: str,
        detail: Mapping[str, Any],
        step_key: str,
        agents: list[Mapping[str, Any]],
    ) -> CustodyEvent:
        step = CustodyStep(event_type, outcome, detail, step_key, tuple(agents[1:]))
        return self._append_steps(session, item, [step])[0]

    def _append_steps(
        self, session: Session, item: str, steps: Sequence[CustodyStep]
    ) -> list[CustodyEvent]:
        signer = self._require_signer()
        keys = sorted({step.step_key for step in steps})
        found = {
            row.step_key: CustodyEvent.from_row(row)
            for row in session.scalars(
                select(Event).where(Event.item_sha256 == item, Event.step_key.in_(keys))
            )
        }
        if all(step.step_key in found for step in steps):
            return [found[step.step_key] for step in steps]
        # Row lock on PostgreSQL serialises appenders per item; SQLite already holds the write lock.
        if session.get_bind().dialect.name != "sqlite":
            session.execute(select(Item.sha256).where(Item.sha256 == item).with_for_update())
        head = session.execute(
            select(Event.seq, Event.hash)
            .where(Event.item_sha256 == item)
            .order_by(Event.seq.desc())
            .limit(1)
        ).first()
        seq, prev = (head[0] + 1, head[1]) if head else (1, GENESIS)
        events, rows = [], []
        for step in steps:
            if step.step_key not in found:
                event = self._new_event(signer, item, seq, prev, step)
                found[step.step_key] = event
                rows.append(_row(event, step.step_key))
                seq, prev = seq + 1, event.hash
            events.append(found[step.step_key])
        session.execute(insert(Event), rows)  # one statement for the item's new events
        return events

    def _new_event(
        self, signer: Signer, item: str, seq: int, prev: str, step: CustodyStep
    ) -> CustodyEvent:
        draft = CustodyEvent(
            uuid=str(uuidlib.uuid4()),
            item=item,
            seq=seq,
            type=step.event_type,
            time=timestamp(),
            outcome=step.outcome,
            detail=step.detail,
            agents=[SOFTWARE_AGENT, *step.agents],
            prev_hash=prev,
            key_id=signer.key_id,
        )
        # One canonical serialisation: hashed as it is, and parsed back for what is stored and
        # returned, so what is hashed is exactly what is stored (as compute_hash re-derives it).
        canonical = rfc8785.dumps(draft.body())
        body = json.loads(canonical)
        digest = hashlib.sha256(canonical).hexdigest()
        return CustodyEvent(
            **{
                **_fields(draft),
                "detail": body["detail"],
                "agents": body["agents"],
                "hash": digest,
                "signature": signer.sign(digest.encode()),
            }
        )

    def events(self, item: str) -> list[CustodyEvent]:
        """``item``'s chain in order."""
        with Session(self.engine) as session:
            rows = session.scalars(
                select(Event).where(Event.item_sha256 == item).order_by(Event.seq)
            )
            return [CustodyEvent.from_row(r) for r in rows]

    def items(self) -> list[str]:
        """Every item with at least one event."""
        with Session(self.engine) as session:
            return list(
                session.scalars(select(Event.item_sha256).distinct().order_by(Event.item_sha256))
            )

    def heads(self) -> dict[str, str]:
        """Latest event hash per item."""
        with Session(self.engine) as session:
            latest = (
                select(Event.item_sha256, func.max(Event.seq).label("seq"))
                .group_by(Event.item_sha256)
                .subquery()
            )
            rows = session.execute(
                select(Event.item_sha256, Event.hash).join(
                    latest,
                    (Event.item_sha256 == latest.c.item_sha256) & (Event.seq == latest.c.seq),
                )
            )
            return dict(rows.all())

    def verify(self, item: str | None = None) -> VerifyReport:
        """Verify one chain or every chain (and the newest checkpoint when checking all)."""
        keys = self.public_keys()
        targets = [item] if item else self.items()
        failures: list[ChainFailure] = []
        count = 0
        for target in targets:
            events = self.events(target)
            count += len(events)
            if not events:
                failures.append(ChainFailure(target, None, None, "no custody events recorded"))
                continue
            failure = verify_chain(target, events, keys)
            if failure:
                failures.append(failure)
        if item is None:
            failures.extend(self._verify_latest_checkpoint(keys))
        return VerifyReport(len(targets), count, tuple(failures))

    def write_checkpoint(self) -> Checkpoint:
        """Sign a Merkle root over every chain head and store it."""
        signer = self._require_signer()
        heads = self.heads()
        created = timestamp()
        root = merkle_root(heads)
        signature = signer.sign(checkpoint_message(created, root, len(heads)))
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            row = Checkpoint(
                created_at=created,
                root=root,
                heads=heads,
                key_id=signer.key_id,
                signature=signature,
                tsa_status="pending",
            )
            session.add(row)
        return row

    def latest_checkpoint(self) -> Checkpoint | None:
        """The newest checkpoint, if any."""
        with Session(self.engine, expire_on_commit=False) as session:
            return session.scalar(select(Checkpoint).order_by(Checkpoint.id.desc()).limit(1))

    def _verify_latest_checkpoint(self, keys: Mapping[str, str]) -> list[ChainFailure]:
        cp = self.latest_checkpoint()
        if cp is None:
            return []
        return [
            ChainFailure(item, None, None, reason)
            for item, reason in check_checkpoint(
                cp.heads, cp.root, cp.created_at, cp.key_id, cp.signature, keys, self.events
            )
        ]

    def _require_signer(self) -> Signer:
        if self.signer is None:
            msg = "this ledger was opened read-only (no signing key)"
            raise RuntimeError(msg)
        return self.signer


def initialise_ledger(settings: Settings) -> Ledger:
    """What ``evidence init`` does to the ledger: migrate the schema, create the signing key
    (once) and register its public half. Safe to run again."""
    from verification.ledger.models import make_engine, migrate
    from verification.ledger.signing import create_key

    engine = make_engine(settings.resolved_database_url)
    migrate(engine)
    ledger = Ledger(engine, create_key(settings.resolved_key_path))
    ledger.register_key()
    return ledger


def _row(event: CustodyEvent, step_key: str) -> dict[str, Any]:
    """The ``custody_events`` row of ``event``."""
    return {
        "uuid": event.uuid,
        "item_sha256": event.item,
        "seq": event.seq,
        "event_type": event.type,
        "event_time": event.time,
        "outcome": event.outcome,
        "detail": dict(event.detail),
        "agents": [dict(a) for a in event.agents],
        "step_key": step_key,
        "prev_hash": event.prev_hash,
        "hash": event.hash,
        "key_id": event.key_id,
        "signature": event.signature,
    }


def _fields(ev: CustodyEvent) -> dict[str, Any]:
    return {name: getattr(ev, name) for name in ev.__slots__}
