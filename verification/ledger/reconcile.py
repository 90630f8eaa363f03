"""Reconciliation: items, custody chains, vault objects and the anchored checkpoints agree.

Verifying each chain on its own cannot see what is *absent*: an item whose events were all
deleted, a chain rolled back together with the ``checkpoints`` table, an object planted in the
vault. :func:`reconcile` compares four sets, each from a different place, and names the item of
every disagreement:

* the ``items`` table (what the database says was preserved);
* the custody chains (every event hash-linked and signed by a *pinned* key: one the anchored
  key pin or a rotation signed by its predecessor introduced, not merely one registered in the
  database);
* the vault objects listed in the store;
* the latest anchored checkpoint, read from the store (its heads and root), and the chain of
  anchors before it (no gap, each linked to the one before).

Chains are read in one pass ordered by item, so memory stays at one chain plus the sets.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from verification.ledger.anchors import AnchorState
from verification.ledger.checkpoints import merkle_root
from verification.ledger.custody import ChainFailure, CustodyEvent, VerifyReport, verify_chain
from verification.ledger.models import Checkpoint, Event, Item

VAULT_PREFIX = "vault/sha256/"
# An event written in a transaction that began before a checkpoint read the heads can commit
# after it: such an item is legitimately absent from that checkpoint.
CHECKPOINT_GRACE = timedelta(hours=1)
CHECKPOINT = "checkpoint"


@dataclass(frozen=True, slots=True)
class Anchored:
    """What the store holds outside the database: the anchors and the latest checkpoint's heads."""

    state: AnchorState
    heads: Mapping[str, str] | None = None
    heads_problem: str | None = None


def reconcile(
    engine: Engine,
    anchored: Anchored,
    vault_keys: Iterable[str] | None,
    *,
    item: str | None = None,
) -> VerifyReport:
    """Verify every chain (or ``item``'s) under the pinned keys and reconcile the four sets.

    ``vault_keys`` are the object keys under ``vault/`` (None: the vault was not listed, which
    is itself reported). Returns the report with one failure per problem, each naming an item
    (or ``checkpoint``/the object key where there is no item).
    """
    failures: list[ChainFailure] = [
        ChainFailure(CHECKPOINT, None, None, f"anchors: {p}") for p in anchored.state.failures
    ]
    items = _items(engine, item)
    cp = anchored.state.latest_checkpoint
    heads = dict(anchored.heads or {})
    failures.extend(_check_heads_copy(anchored, cp))
    seen, count = set(), 0
    for sha, events in _chains(engine, item):
        seen.add(sha)
        count += len(events)
        failures.extend(_check_chain(sha, events, items, anchored.state.ever, heads, cp))
    for sha in sorted(set(items) - seen):
        failures.append(ChainFailure(sha, None, None, "no custody events recorded"))
    if item is None:
        failures.extend(_checkpoint_rows(engine, anchored.state))
        missing = sorted(set(heads) - seen)
    else:
        missing = [item] if item in heads and item not in seen else []
    for sha in missing:
        where = "in the database" if sha in items else "and its item record are gone"
        failures.append(
            ChainFailure(sha, None, None, f"item in the anchored checkpoint has no chain {where}")
        )
    failures.extend(_check_vault(items, vault_keys, whole=item is None))
    return VerifyReport(len(set(items) | seen), count, tuple(failures))


def _items(engine: Engine, only: str | None) -> dict[str, str]:
    query = select(Item.sha256, Item.vault_key)
    if only is not None:
        query = query.where(Item.sha256 == only)
    with Session(engine) as session:
        return dict(session.execute(query).all())


_COLUMNS = (
    Event.uuid,
    Event.item_sha256,
    Event.seq,
    Event.event_type,
    Event.event_time,
    Event.outcome,
    Event.detail,
    Event.agents,
    Event.prev_hash,
    Event.key_id,
    Event.hash,
    Event.signature,
)


def _chains(engine: Engine, only: str | None) -> Iterator[tuple[str, list[CustodyEvent]]]:
    """Each item's chain in seq order, one item at a time, from one ordered query."""
    query = select(*_COLUMNS).order_by(Event.item_sha256, Event.seq)
    if only is not None:
        query = query.where(Event.item_sha256 == only)
    current: str | None = None
    chain: list[CustodyEvent] = []
    with engine.connect() as connection:
        for row in connection.execution_options(yield_per=5000).execute(query):
            if row[1] != current:
                if current is not None:
                    yield current, chain
                current, chain = row[1], []
            chain.append(_event(row))
    if current is not None:
        yield current, chain


def _event(row: Any) -> CustodyEvent:
    return CustodyEvent(
        uuid=row[0],
        item=row[1],
        seq=row[2],
        type=row[3],
        time=row[4],
        outcome=row[5],
        detail=row[6],
        agents=row[7],
        prev_hash=row[8],
        key_id=row[9],
        hash=row[10],
        signature=row[11],
    )


def _check_chain(
    sha: str,
    events: list[CustodyEvent],
    items: Mapping[str, str],
    trusted: Mapping[str, str],
    heads: Mapping[str, str],
    cp: Mapping[str, Any] | None,
) -> list[ChainFailure]:
    problems: list[ChainFailure] = []
    if sha not in items:
        problems.append(ChainFailure(sha, None, None, "custody chain without an item record"))
    failure = verify_pinned_chain(sha, events, trusted)
    if failure is not None:
        problems.append(failure)
    problems.extend(_against_checkpoint(sha, events, heads, cp))
    return problems


def verify_pinned_chain(
    sha: str, events: Sequence[CustodyEvent], trusted: Mapping[str, str]
) -> ChainFailure | None:
    """One chain's first failure, accepting only signatures by the ``trusted`` (pinned) keys: an
    event signed by any other key is named by its fingerprint, before the chain is checked."""
    stranger = next((e for e in events if e.key_id not in trusted), None)
    if stranger is not None:
        why = f"signed by key {stranger.key_id[:16]}…, which is not a pinned installation key"
        return ChainFailure(sha, stranger.seq, stranger.uuid, why)
    return verify_chain(sha, events, trusted)


def _against_checkpoint(
    sha: str, events: list[CustodyEvent], heads: Mapping[str, str], cp: Mapping[str, Any] | None
) -> list[ChainFailure]:
    if cp is None:
        return []
    head = heads.get(sha)
    if head is None:
        if _before(events[0].time, cp["checkpoint"].get("heads_read_at", "")):
            return [
                ChainFailure(
                    sha,
                    None,
                    None,
                    "chain missing from the anchored checkpoint although it began before it",
                )
            ]
        return []
    if all(e.hash != head for e in events):
        return [
            ChainFailure(
                sha,
                None,
                None,
                f"chain head behind the anchored checkpoint #{cp['seq']}: its checkpointed head "
                "is not in the chain (rolled back or rewritten)",
            )
        ]
    return []


def _before(event_time: str, read_at: str) -> bool:
    try:
        when = datetime.strptime(event_time, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        cut = datetime.strptime(read_at, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except ValueError:
        return False
    return when < cut - CHECKPOINT_GRACE


def _check_heads_copy(anchored: Anchored, cp: Mapping[str, Any] | None) -> list[ChainFailure]:
    if cp is None:
        return []
    if anchored.heads_problem:
        return [ChainFailure(CHECKPOINT, None, None, anchored.heads_problem)]
    heads = anchored.heads or {}
    if merkle_root(heads) != cp["checkpoint"]["root"]:
        return [
            ChainFailure(
                CHECKPOINT,
                None,
                None,
                f"the heads copied for anchored checkpoint #{cp['seq']} do not match its signed root",
            )
        ]
    return []


def _checkpoint_rows(engine: Engine, state: AnchorState) -> list[ChainFailure]:
    """Every anchored checkpoint must still be in the database's ``checkpoints`` table."""
    with Session(engine) as session:
        rows = {(c, r) for c, r in session.execute(select(Checkpoint.created_at, Checkpoint.root))}
    return [
        ChainFailure(
            CHECKPOINT,
            None,
            None,
            f"anchored checkpoint #{doc['seq']} of {doc['checkpoint']['created_at']} is missing "
            "from the database (checkpoint rows deleted or rewritten)",
        )
        for doc in state.checkpoints
        if (doc["checkpoint"]["created_at"], doc["checkpoint"]["root"]) not in rows
    ]


def _check_vault(
    items: Mapping[str, str], vault_keys: Iterable[str] | None, *, whole: bool
) -> list[ChainFailure]:
    if vault_keys is None:
        return [ChainFailure(CHECKPOINT, None, None, "the vault could not be listed")]
    present = set(vault_keys)
    problems = [
        ChainFailure(sha, None, None, f"item without its vault object ({key})")
        for sha, key in sorted(items.items())
        if key not in present
    ]
    if whole:
        owned = set(items.values())
        problems.extend(
            ChainFailure(
                key.rsplit("/", 1)[-1], None, None, f"vault object without an item ({key})"
            )
            for key in sorted(present - owned)
        )
    return problems
