"""Fixity: re-read every preserved original, recompute its SHA-256 and record the outcome.

Each check leaves a ``fixity check`` custody event whose ``step_key`` names the run
(``fixity:<run_id>``): re-running the same nightly run records nothing new, the next night adds an
event. Outcomes follow PREMIS: ``success`` (the bytes still match), ``failure`` (the vault object's
digest differs: tampered or corrupted), ``missing`` (the object or its recorded version is gone) and
``not-run`` (the store could not be read; nothing is known). Checkpoints sign a Merkle root over
every chain head and are copied write-once into the bucket, so they survive the database.
"""

from __future__ import annotations

import io
import json
import logging
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from verification.core.hashing import sha256_stream
from verification.core.text import printable
from verification.ledger.anchors import AnchorError
from verification.ledger.custody import VerifyReport
from verification.ledger.models import Checkpoint, Event, Item, utcnow
from verification.pipeline import Context, vault_key
from verification.pipeline.trust import forget_pinned_keys
from verification.storage import ObjectNotFound, ObjectStore, StoreError

log = logging.getLogger(__name__)

FixityOutcome = Literal["success", "failure", "missing", "not-run", "untracked"]
EVENT_TYPE = "fixity check"
CHECKPOINT_PREFIX = "checkpoints/"
VAULT_PREFIX = "vault/"
DERIVATIVES_PREFIX = "derivatives/"
# Outcomes that mean the preserved original can no longer be trusted.
PROBLEMS = frozenset({"failure", "missing"})
# Outcomes that fail a fixity run: nothing known (not-run) is never a pass, and an object in the
# vault or under derivatives/ that no item owns was put there by someone other than the pipeline.
FAILING = frozenset({"failure", "missing", "not-run", "untracked"})


@dataclass(frozen=True, slots=True)
class FixityResult:
    """One item's fixity check: what was expected, what was found, and why it ended that way."""

    item: str
    outcome: FixityOutcome
    expected: str
    found: str | None
    vault_key: str
    version_id: str | None
    reason: str | None = None

    @property
    def problem(self) -> bool:
        """True when the original is damaged or gone (``failure`` or ``missing``)."""
        return self.outcome in PROBLEMS

    @property
    def failing(self) -> bool:
        """True when this result fails the run (a problem, ``not-run`` or ``untracked``)."""
        return self.outcome in FAILING

    def detail(self) -> dict[str, Any]:
        """The custody event's outcome detail."""
        return {
            "expected": self.expected,
            "found": self.found,
            "vault_key": self.vault_key,
            "version_id": self.version_id,
            "outcome": self.outcome,
            "reason": self.reason,
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (for XComs and logs: digests and keys only, no content)."""
        return {"item": self.item, **self.detail()}

    @classmethod
    def from_detail(cls, item: str, detail: dict[str, Any]) -> FixityResult:
        """Rebuild a result from a recorded event's detail."""
        return cls(
            item=item,
            outcome=detail["outcome"],
            expected=detail["expected"],
            found=detail.get("found"),
            vault_key=detail["vault_key"],
            version_id=detail.get("version_id"),
            reason=detail.get("reason"),
        )


def step_key(run_id: str) -> str:
    """The custody step key of one fixity run: one event per item and run."""
    return f"fixity:{run_id}"


def new_run_id() -> str:
    """A fresh run id for checks started outside a scheduler (CLI, notebooks)."""
    return f"manual-{uuid.uuid4().hex[:12]}"


# ---------------------------------------------------------------------------------------------
# Checking


def check_item(ctx: Context, sha: str, run_id: str | None = None) -> FixityResult:
    """Re-read ``sha``'s vault copy, compare its SHA-256, record and return the outcome.

    Idempotent per ``run_id``: when this run already checked the item, the recorded result is
    returned without reading the object again.
    """
    run_id = run_id or new_run_id()
    recorded = _recorded(ctx, sha, run_id)
    if recorded is not None:
        return recorded
    with Session(ctx.engine) as session:
        item = session.get(Item, sha)
        recorded_version = item.vault_version if item else None
        key = item.vault_key if item else vault_key(sha)
    result = measure(ctx.store, sha, key, recorded_version)
    _record(ctx, result, run_id)
    return result


def measure(
    store: ObjectStore, sha: str, key: str, recorded_version: str | None = None
) -> FixityResult:
    """Stream the object at ``key`` through SHA-256 and classify the result; never raises.

    The current object is what anyone retrieving the original gets, so it is the one checked.
    A current version other than the recorded one is named in ``reason`` (the key was written
    again); when the recorded version itself is gone the item is ``missing``.
    """
    expected = f"sha256:{sha}"
    try:
        info = store.head(key)
        with store.open(key, info.version_id) as handle:
            found, _size = sha256_stream(handle)
        replaced = _replaced_version(store, key, recorded_version, info.version_id)
    except ObjectNotFound as exc:
        return FixityResult(sha, "missing", expected, None, key, recorded_version, _why(exc))
    except (StoreError, OSError) as exc:
        return FixityResult(sha, "not-run", expected, None, key, recorded_version, _why(exc))
    if found != sha:
        reason = "the vault object's SHA-256 differs from the one recorded at ingestion"
        return FixityResult(
            sha,
            "failure",
            expected,
            f"sha256:{found}",
            key,
            info.version_id,
            _join(reason, replaced),
        )
    return FixityResult(sha, "success", expected, f"sha256:{found}", key, info.version_id, replaced)


def _replaced_version(
    store: ObjectStore, key: str, recorded: str | None, current: str | None
) -> str | None:
    """Why the current version is not the recorded one, or None; raises when it is gone."""
    if recorded is None or recorded == current:
        return None
    store.head(key, recorded)  # ObjectNotFound: the preserved version was deleted
    return f"a newer version ({current}) was written over the preserved version ({recorded})"


def _join(*reasons: str | None) -> str:
    return "; ".join(r for r in reasons if r)


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


def _recorded(ctx: Context, sha: str, run_id: str) -> FixityResult | None:
    with Session(ctx.engine) as session:
        event = session.scalar(
            select(Event).where(Event.item_sha256 == sha, Event.step_key == step_key(run_id))
        )
        return FixityResult.from_detail(sha, dict(event.detail)) if event else None


def _record(ctx: Context, result: FixityResult, run_id: str) -> None:
    """Append the custody event, then mark the item's current fixity (not-run leaves it)."""
    assert result.outcome != "untracked"  # untracked objects have no item, hence no chain
    ctx.ledger.append(
        result.item,
        EVENT_TYPE,
        result.outcome,
        result.detail(),
        step_key=step_key(run_id),
        agents=ctx.agents,
    )
    if result.outcome == "not-run":
        log.warning(
            "fixity of %s not checked: %s", result.item[:12], printable(result.reason or "")
        )
        return
    with Session(ctx.engine) as session, session.begin():
        item = session.get(Item, result.item)
        if item is not None:
            item.fixity = result.outcome
            item.fixity_checked_at = utcnow()
    if result.problem:
        log.error(
            "fixity %s for item %s: %s",
            result.outcome,
            result.item[:12],
            printable(result.reason or ""),
        )


def vault_items(ctx: Context) -> list[str]:
    """Every item with a preserved original, in SHA-256 order (a stable input for batching)."""
    with Session(ctx.engine) as session:
        return list(session.scalars(select(Item.sha256).order_by(Item.sha256)))


def batches(items: Sequence[str], size: int) -> list[list[str]]:
    """``items`` split into lists of at most ``size``."""
    size = max(1, size)
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def check_items(ctx: Context, items: Iterable[str], run_id: str) -> list[FixityResult]:
    """Check each item in turn; one unreadable object never stops the rest."""
    return [check_item(ctx, sha, run_id) for sha in items]


def check_all(
    ctx: Context,
    run_id: str | None = None,
    batch_size: int | None = None,
    items: Sequence[str] | None = None,
    *,
    seconds: float | None = None,
) -> list[FixityResult]:
    """Check ``items`` (default: every preserved original), ``batch_size`` at a time.

    With ``seconds`` (a time budget) no new batch starts once it is spent: the rest stay the
    oldest-verified and come first next time.
    """
    run_id = run_id or new_run_id()
    results: list[FixityResult] = []
    todo = vault_items(ctx) if items is None else items
    deadline = None if seconds is None else time.monotonic() + seconds
    for number, batch in enumerate(batches(todo, batch_size or 500), start=1):
        if deadline is not None and time.monotonic() >= deadline:
            log.info("fixity run %s: time budget spent after %s items", run_id, len(results))
            break
        results.extend(check_items(ctx, batch, run_id))
        log.info("fixity run %s: batch %s done (%s items so far)", run_id, number, len(results))
    return results


# ---------------------------------------------------------------------------------------------
# Rotation and untracked objects


def due_items(ctx: Context, budget_bytes: int) -> list[str]:
    """Originals to check in one run: oldest-verified first (never checked by a run first), up
    to ``budget_bytes`` of originals (always at least one; 0 means every original)."""
    if budget_bytes <= 0:
        return vault_items(ctx)
    query = select(Item.sha256, Item.size).order_by(
        Item.fixity_checked_at.is_not(None), Item.fixity_checked_at, Item.sha256
    )
    chosen: list[str] = []
    total = 0
    with Session(ctx.engine) as session:
        for sha, size in session.execute(query.execution_options(yield_per=10_000)):
            if chosen and total + size > budget_bytes:
                break
            chosen.append(sha)
            total += size
    return chosen


def overdue_items(ctx: Context, cycle_days: int, now: datetime | None = None) -> list[str]:
    """Originals not checked within ``cycle_days`` before ``now`` (never checked by a run counts
    from the item's first sighting, when preservation checked it)."""
    cut = (now or utcnow()) - timedelta(days=cycle_days)
    last = func.coalesce(Item.fixity_checked_at, Item.first_seen)
    with Session(ctx.engine) as session:
        return list(session.scalars(select(Item.sha256).where(last < cut).order_by(Item.sha256)))


def untracked_objects(ctx: Context) -> list[FixityResult]:
    """Objects under ``vault/`` and ``derivatives/`` that no item owns, as ``untracked`` results.

    The pipeline writes only its items' originals and derivatives there: anything else (an
    object at a future item's path included) was planted or left by something outside it.
    """
    with Session(ctx.engine) as session:
        owned: dict[str, str] = dict(session.execute(select(Item.vault_key, Item.sha256)).all())
    items = set(owned.values())
    found: list[FixityResult] = []
    for info in ctx.store.list(VAULT_PREFIX):
        if info.key not in owned:
            found.append(_untracked(info.key, "vault object that no item owns"))
    for info in ctx.store.list(DERIVATIVES_PREFIX):
        sha = info.key[len(DERIVATIVES_PREFIX) :].split("/", 1)[0]
        if sha not in items:
            found.append(_untracked(info.key, "derivative of no item"))
    return found


def _untracked(key: str, reason: str) -> FixityResult:
    name = key.rsplit("/", 1)[-1] if key.startswith(VAULT_PREFIX) else key.split("/")[1]
    return FixityResult(name, "untracked", "no object", f"object {key}", key, None, reason)


def summarise(results: Iterable[FixityResult | dict[str, Any]]) -> dict[str, int]:
    """Count of results per outcome."""
    counts: Counter[str] = Counter()
    for result in results:
        counts[result.outcome if isinstance(result, FixityResult) else result["outcome"]] += 1
    return dict(sorted(counts.items()))


# ---------------------------------------------------------------------------------------------
# Checkpoints


def checkpoint_document(ctx: Context, checkpoint: Checkpoint) -> dict[str, Any]:
    """The checkpoint as stored in the bucket: enough to verify it offline."""
    return {
        "id": checkpoint.id,
        "created_at": checkpoint.created_at,
        "root": checkpoint.root,
        "items": len(checkpoint.heads),
        "heads": dict(checkpoint.heads),
        "key_id": checkpoint.key_id,
        "public_key": ctx.ledger.public_keys().get(checkpoint.key_id),
        "signature": checkpoint.signature,
    }


def write_checkpoint(ctx: Context) -> Checkpoint:
    """Sign a Merkle root over every chain head, copy it write-once to ``checkpoints/`` and
    anchor it: the next anchor under ``checkpoints/anchors/`` names it and links to the one before.

    The returned row carries ``stored_key``, the object key of the copy. Refuses (before writing
    anything) when the installation key is not the one the anchors trust.
    """
    from verification.ledger.anchors import append_anchor, check_anchors, pin_key, read_anchors
    from verification.ledger.custody import timestamp

    signer = ctx.ledger.signer
    assert signer is not None
    heads_read_at = timestamp()
    if pin_key(ctx.store, signer, heads_read_at) is not None:  # from before key pins
        forget_pinned_keys()
    state = check_anchors(read_anchors(ctx.store), ctx.settings.trusted_keys)
    if not state.ok or signer.key_id not in state.trusted:
        problem = state.failures[0] if state.failures else "the signing key is not pinned"
        msg = f"no checkpoint written: {problem}"
        raise AnchorError(msg)
    checkpoint = ctx.ledger.write_checkpoint()
    key = f"{CHECKPOINT_PREFIX}{checkpoint.created_at}.json"
    body = json.dumps(checkpoint_document(ctx, checkpoint), sort_keys=True, indent=2).encode()
    ctx.store.put(
        key, io.BytesIO(body), metadata={"checkpoint-id": str(checkpoint.id)}, if_absent=True
    )
    anchor = append_anchor(
        ctx.store,
        signer,
        {
            "kind": "checkpoint",
            "created_at": checkpoint.created_at,
            "checkpoint": {
                "id": checkpoint.id,
                "created_at": checkpoint.created_at,
                "heads_read_at": heads_read_at,
                "root": checkpoint.root,
                "items": len(checkpoint.heads),
                "heads_key": key,
                "signature": checkpoint.signature,
            },
        },
    )
    with Session(ctx.engine, expire_on_commit=False) as session, session.begin():
        row = session.get(Checkpoint, checkpoint.id)
        assert row is not None
        row.stored_key = key
    checkpoint.stored_key = key
    log.info(
        "checkpoint %s over %s items stored as %s, anchor #%s",
        checkpoint.id,
        len(checkpoint.heads),
        key,
        anchor["seq"],
    )
    return checkpoint


def pin_installation_key(ctx: Context) -> dict[str, Any] | None:
    """Anchor #0: the installation key's fingerprint, write-once in the store (``evidence init``)."""
    from verification.ledger.anchors import pin_key
    from verification.ledger.custody import timestamp

    assert ctx.ledger.signer is not None
    pin = pin_key(ctx.store, ctx.ledger.signer, timestamp())
    forget_pinned_keys()
    return pin


def verify_collection(ctx: Context, item: str | None = None) -> VerifyReport:
    """``evidence custody verify``: every chain under the pinned keys, reconciled with the items,
    the vault objects and the latest anchored checkpoint (all read from the store)."""
    from verification.ledger.anchors import check_anchors, read_anchors
    from verification.ledger.reconcile import Anchored, reconcile

    state = check_anchors(read_anchors(ctx.store), ctx.settings.trusted_keys)
    heads, problem = _anchored_heads(ctx, state.latest_checkpoint)
    try:
        if item is None:
            keys: list[str] | None = [o.key for o in ctx.store.list(VAULT_PREFIX)]
        else:
            keys = [k for k in [_item_vault_key(ctx, item)] if k and ctx.store.exists(k)]
    except StoreError as exc:
        log.error("vault listing failed: %s", printable(_why(exc)))
        keys = None
    return reconcile(ctx.engine, Anchored(state, heads, problem), keys, item=item)


def _item_vault_key(ctx: Context, sha: str) -> str | None:
    with Session(ctx.engine) as session:
        return session.scalar(select(Item.vault_key).where(Item.sha256 == sha))


def _anchored_heads(
    ctx: Context, anchor: Mapping[str, Any] | None
) -> tuple[dict[str, str] | None, str | None]:
    if anchor is None:
        return None, None
    key = anchor["checkpoint"]["heads_key"]
    try:
        with ctx.store.open(key) as handle:
            heads = json.load(handle)["heads"]
    except (StoreError, OSError, ValueError, KeyError, TypeError) as exc:
        return (
            None,
            f"the heads of anchored checkpoint #{anchor['seq']} cannot be read: {_why(exc)}",
        )
    return dict(heads), None


def checkpoint_and_stamp(ctx: Context) -> dict[str, Any]:
    """Write and store a checkpoint, then time-stamp pending checkpoints when that is installed.

    ``verification.ledger.timestamps`` is optional (RFC 3161 time-stamping); without it, or without a
    configured authority, the checkpoint stays ``pending``. Returns a summary without content.
    """
    import importlib
    import importlib.util

    checkpoint = write_checkpoint(ctx)
    if importlib.util.find_spec("verification.ledger.timestamps") is not None:
        module = importlib.import_module("verification.ledger.timestamps")
        if hasattr(module, "stamp_pending"):
            module.stamp_pending(ctx)
    with Session(ctx.engine) as session:
        row = session.get(Checkpoint, checkpoint.id)
        tsa = row.tsa_status if row is not None else checkpoint.tsa_status
    return {
        "id": checkpoint.id,
        "created_at": checkpoint.created_at,
        "root": checkpoint.root,
        "items": len(checkpoint.heads),
        "stored_key": checkpoint.stored_key,
        "tsa_status": tsa,
    }
