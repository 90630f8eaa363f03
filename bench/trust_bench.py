"""Benchmark: `evidence custody verify` reconciliation and the nightly fixity rotation at scale.

Generates N items in SQLite, each with a real signed two-event chain (ingestion, digest), a
vault listing and an anchored checkpoint over every head, then times:

* ``reconcile``: every chain verified (hashes, links, Ed25519 signatures under the pinned key)
  and the four sets reconciled (items, chains, vault objects, the checkpoint's heads);
* the per-event cost of verification alone, to separate the crypto from the reconciliation;
* ``due_items``: choosing one night's originals, oldest-verified first, within a byte budget.

Run: ``python -m bench.trust_bench [--items N] [--budget-gb G]``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from verification.ledger.anchors import check_anchors, sign_anchor
from verification.ledger.checkpoints import merkle_root
from verification.ledger.custody import GENESIS, CustodyEvent, verify_chain
from verification.ledger.models import Checkpoint, Event, Item, make_engine, migrate
from verification.ledger.reconcile import Anchored, reconcile
from verification.ledger.signing import Signer
from verification.pipeline.layout import vault_key

SIZE = 3 * 1024 * 1024  # a 12 MP JPEG
START = datetime(2025, 1, 1, tzinfo=UTC)


def _chain(signer: Signer, sha: str, n: int) -> list[CustodyEvent]:
    events, prev = [], GENESIS
    for seq, kind in enumerate(("ingestion", "message digest calculation")[:n], start=1):
        draft = CustodyEvent(
            f"{sha[:8]}-{seq:04d}-0000-0000-{sha[8:20]}",
            sha,
            seq,
            kind,
            "2025-01-01T00:00:00.000000Z",
            "success",
            {"sha256": f"sha256:{sha}"},
            [{"type": "software", "name": "bench"}],
            prev,
            signer.key_id,
        )
        digest = draft.compute_hash()
        events.append(
            CustodyEvent(
                **{**_fields(draft), "hash": digest, "signature": signer.sign(digest.encode())}
            )
        )
        prev = digest
    return events


def _fields(ev: CustodyEvent) -> dict[str, Any]:
    return {name: getattr(ev, name) for name in ev.__slots__}


def populate(url: str, items: int, signer: Signer) -> tuple[dict[str, str], list[str]]:
    """Items, signed chains and the vault listing; returns the heads and the vault keys."""
    engine = make_engine(url)
    migrate(engine)
    heads: dict[str, str] = {}
    keys: list[str] = []
    batch_items: list[dict[str, Any]] = []
    batch_events: list[dict[str, Any]] = []
    for number in range(items):
        sha = hashlib.sha256(number.to_bytes(8, "big")).hexdigest()
        key = vault_key(sha)
        keys.append(key)
        batch_items.append(_item(sha, key, number))
        chain = _chain(signer, sha, 2)
        heads[sha] = chain[-1].hash
        batch_events.extend(_event_row(e) for e in chain)
        if len(batch_items) >= 5000:
            _flush(engine, batch_items, batch_events)
    _flush(engine, batch_items, batch_events)
    engine.dispose()
    return heads, sorted(keys)


def _item(sha: str, key: str, number: int) -> dict[str, Any]:
    return {
        "sha256": sha,
        "size": SIZE,
        "sha1": "0" * 40,
        "md5": "0" * 32,
        "format": "jpeg",
        "mime": "image/jpeg",
        "kind": "image",
        "vault_key": key,
        "first_seen": START + timedelta(seconds=number),
        "case_id": "bench",
        "status": "consistent",
        "fixity": "success",
    }


def _event_row(ev: CustodyEvent) -> dict[str, Any]:
    return {
        "uuid": ev.uuid,
        "item_sha256": ev.item,
        "seq": ev.seq,
        "event_type": ev.type,
        "event_time": ev.time,
        "outcome": ev.outcome,
        "detail": dict(ev.detail),
        "agents": [dict(a) for a in ev.agents],
        "step_key": f"bench:{ev.seq}",
        "prev_hash": ev.prev_hash,
        "hash": ev.hash,
        "key_id": ev.key_id,
        "signature": ev.signature,
    }


def _flush(engine: Any, items: list[dict[str, Any]], events: list[dict[str, Any]]) -> None:
    if items:
        with engine.begin() as conn:
            conn.execute(insert(Item), items)
            conn.execute(insert(Event), events)
    items.clear()
    events.clear()


def anchored(signer: Signer, heads: dict[str, str]) -> Anchored:
    """A key pin and one checkpoint anchor over ``heads`` (as the store would hold them)."""
    from verification.ledger.anchors import anchor_hash

    pin = sign_anchor(
        signer,
        {
            "seq": 0,
            "prev": GENESIS,
            "kind": "pin",
            "created_at": "2025-01-01T00:00:00.000000Z",
            "trusted_keys": {signer.key_id: signer.public_pem},
        },
    )
    cp = sign_anchor(
        signer,
        {
            "seq": 1,
            "prev": anchor_hash(pin),
            "kind": "checkpoint",
            "created_at": "2025-01-02T00:00:00.000000Z",
            "trusted_keys": {signer.key_id: signer.public_pem},
            "checkpoint": {
                "id": 1,
                "created_at": "2025-01-02T00:00:00.000000Z",
                "heads_read_at": "2025-01-02T00:00:00.000000Z",
                "root": merkle_root(heads),
                "items": len(heads),
                "heads_key": "checkpoints/bench.json",
                "signature": "",
            },
        },
    )
    return Anchored(check_anchors([pin, cp]), heads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--budget-gb", type=float, default=100.0)
    args = parser.parse_args()
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    signer = Signer(Ed25519PrivateKey.generate())
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        started = time.perf_counter()
        heads, keys = populate(url, args.items, signer)
        print(
            f"populated {args.items:,} items, {2 * args.items:,} signed events "
            f"in {time.perf_counter() - started:.1f} s"
        )
        state = anchored(signer, heads)
        engine = make_engine(url)
        with engine.begin() as conn:  # the database's row of the anchored checkpoint
            conn.execute(
                insert(Checkpoint),
                [
                    {
                        "created_at": "2025-01-02T00:00:00.000000Z",
                        "root": merkle_root(heads),
                        "heads": {},
                        "key_id": signer.key_id,
                        "signature": "",
                    }
                ],
            )
        started = time.perf_counter()
        report = reconcile(engine, state, keys)
        total = time.perf_counter() - started
        assert report.ok, report.failures[:3]
        print(
            f"reconcile: {total:.1f} s for {report.items:,} items / {report.events:,} events "
            f"({total / report.items * 1e6:.0f} µs per item); "
            f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB"
        )
        sample = [_chain(signer, hashlib.sha256(bytes([i])).hexdigest(), 2) for i in range(200)]
        keyring = {signer.key_id: signer.public_pem}
        started = time.perf_counter()
        for chain in sample:
            verify_chain(chain[0].item, chain, keyring)
        per_event = (time.perf_counter() - started) / (2 * len(sample))
        crypto = per_event * report.events
        print(
            f"verification alone: {per_event * 1e6:.0f} µs per event, {crypto:.1f} s of the "
            f"total; reconciliation and reading {total - crypto:.1f} s"
        )
        budget = int(args.budget_gb * 1024**3)
        from verification.pipeline.fixity import due_items

        ctx = _FakeContext(engine)
        started = time.perf_counter()
        due = due_items(ctx, budget)  # type: ignore[arg-type]
        took = time.perf_counter() - started
        print(
            f"due_items: {len(due):,} originals ({args.budget_gb:g} GiB of 3 MiB files) chosen "
            f"from {args.items:,} in {took * 1000:.0f} ms"
        )
        rate = _hash_rate(Path(tmp))
        print(
            f"re-reading: SHA-256 over a 256 MiB file at {rate / 1024**2:.0f} MiB/s (page cache, "
            f"one core): a {args.budget_gb:g} GiB night takes {budget / rate / 60:.1f} min of hashing"
        )
        nights = args.items * SIZE / budget
        print(
            f"rotation: {args.items:,} originals x 3 MiB at {args.budget_gb:g} GiB a night = "
            f"every original every {nights:.1f} nights"
        )
        engine.dispose()


def _hash_rate(tmp: Path) -> float:
    """Bytes per second of the fixity check's read-and-hash loop over a local file."""
    from verification.core.hashing import sha256_stream

    path = tmp / "blob"
    with path.open("wb") as handle:
        for _ in range(256):
            handle.write(os.urandom(1024 * 1024))
    started = time.perf_counter()
    with path.open("rb") as handle:
        _digest, size = sha256_stream(handle)
    return size / (time.perf_counter() - started)


class _FakeContext:
    """Only what ``due_items`` reads: the engine."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine


if __name__ == "__main__":
    main()
