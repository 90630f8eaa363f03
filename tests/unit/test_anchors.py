"""verification/ledger/anchors.py and reconcile.py: each way an anchor chain or a reconciliation
can fail has its own case, on documents built here."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text

from tests.helpers import init_context, make_settings, photo
from verification.core.claims import Claims
from verification.ledger.anchors import (
    AnchorError,
    anchor_hash,
    append_anchor,
    check_anchors,
    pin_key,
    read_anchors,
    rotate_key,
    sign_anchor,
)
from verification.ledger.signing import Signer
from verification.pipeline import Context, fixity, ingest
from verification.pipeline.submission import submit_file
from verification.storage.local import LocalStore

T = "2026-01-01T00:00:00.000000Z"


def signer() -> Signer:
    return Signer(Ed25519PrivateKey.generate())


def pinned(store: LocalStore, key: Signer) -> list[dict[str, Any]]:
    pin_key(store, key, T)
    append_anchor(store, key, {"kind": "checkpoint", "created_at": T, "checkpoint": {"root": "r"}})
    return read_anchors(store)


def first_problem(docs: list[dict[str, Any]], pins: tuple[str, ...] = ()) -> str:
    state = check_anchors(docs, pins)
    assert not state.ok
    return state.failures[0]


def test_pin_and_checkpoint_verify(tmp_path: Path) -> None:
    """A pin and a checkpoint anchor by the pinned key verify; the pin trusts that key."""
    key = signer()
    state = check_anchors(pinned(LocalStore(tmp_path), key))
    assert state.ok and set(state.trusted) == {key.key_id}
    assert state.latest_checkpoint is not None and state.latest_checkpoint["seq"] == 1


def test_empty_store_has_no_pin() -> None:
    """No anchors at all is a failure, with the command that fixes it."""
    assert first_problem([]) == "no anchored key pin in the store (run `evidence init`)"


def test_edited_anchor_breaks_the_next_link(tmp_path: Path) -> None:
    """An edited anchor's signature no longer verifies, whichever anchor it is."""
    docs = pinned(LocalStore(tmp_path), signer())
    docs[0]["created_at"] = "2020-01-01T00:00:00.000000Z"
    assert first_problem(docs) == "anchor #0: the key pin's signature does not verify"
    docs = pinned(LocalStore(tmp_path / "b"), signer())
    docs[1]["checkpoint"]["root"] = "forged"
    assert first_problem(docs) == "anchor #1: signature does not verify"


def test_pin_with_a_wrong_fingerprint_is_refused(tmp_path: Path) -> None:
    """A pin whose key id is not its public key's fingerprint is refused."""
    key = signer()
    doc = sign_anchor(
        key,
        {
            "seq": 0,
            "prev": "0" * 64,
            "kind": "pin",
            "created_at": T,
            "trusted_keys": {"f" * 64: key.public_pem},
        },
    )
    assert first_problem([doc]) == "anchor #0: a pinned fingerprint does not match its public key"


def test_first_anchor_must_be_a_pin(tmp_path: Path) -> None:
    """Anchor #0 of another kind is not a key pin."""
    key = signer()
    doc = sign_anchor(
        key,
        {
            "seq": 0,
            "prev": "0" * 64,
            "kind": "checkpoint",
            "created_at": T,
            "trusted_keys": {key.key_id: key.public_pem},
        },
    )
    assert first_problem([doc]) == "anchor #0 is not a key pin"


def test_checkpoint_that_adds_a_key_without_rotation_is_refused(tmp_path: Path) -> None:
    """Trusted keys change only through a rotation."""
    key, other = signer(), signer()
    docs = pinned(LocalStore(tmp_path), key)
    forged = sign_anchor(
        key,
        {
            "seq": 2,
            "prev": anchor_hash(docs[1]),
            "kind": "checkpoint",
            "created_at": T,
            "trusted_keys": {key.key_id: key.public_pem, other.key_id: other.public_pem},
        },
    )
    assert first_problem([*docs, forged]) == (
        "anchor #2: changes the trusted keys without a rotation"
    )


def test_rotation_must_be_signed_by_the_key_it_replaces(tmp_path: Path) -> None:
    """A rotation signed by a trusted key that is not the one replaced is refused."""
    key, new = signer(), signer()
    store = LocalStore(tmp_path)
    docs = pinned(store, key)
    rotate_key(store, key, new, T)
    assert check_anchors(read_anchors(store)).ok
    bad = sign_anchor(
        key,
        {
            "seq": 2,
            "prev": anchor_hash(docs[1]),
            "kind": "rotation",
            "created_at": T,
            "rotation": {"old": new.key_id, "new": new.key_id, "public_key": new.public_pem},
            "trusted_keys": {new.key_id: new.public_pem},
        },
    )
    assert first_problem([*docs, bad]) == (
        "anchor #2: a rotation must be signed by the key it replaces"
    )


def test_malformed_anchor_is_named(tmp_path: Path) -> None:
    """An anchor that is not the expected JSON object is malformed."""
    docs = pinned(LocalStore(tmp_path), signer())
    docs[1] = {"seq": 1, "prev": anchor_hash(docs[0])}
    assert first_problem(docs) == "anchor #1: malformed"


def test_untrusted_key_cannot_append_and_broken_chain_refuses_writes(tmp_path: Path) -> None:
    """append_anchor refuses a key the anchors do not trust, and a chain that does not verify."""
    store = LocalStore(tmp_path)
    pinned(store, signer())
    with pytest.raises(AnchorError, match="not trusted by the anchored key pin"):
        append_anchor(store, signer(), {"kind": "checkpoint", "created_at": T, "checkpoint": {}})
    path = tmp_path / "objects" / "checkpoints" / "anchors" / "0000000001.json"
    path.chmod(0o644)
    path.write_text(json.dumps({"seq": 1}))
    with pytest.raises(AnchorError, match="does not verify"):
        append_anchor(store, signer(), {"kind": "checkpoint", "created_at": T, "checkpoint": {}})


# Reconciliation cases that need a database -----------------------------------------------------


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    """Two ingested photos and one anchored checkpoint."""
    context = init_context(make_settings(tmp_path / "home"))
    for seed in (1, 2):
        path = tmp_path / f"p{seed}.jpg"
        path.write_bytes(photo(seed))
        submit_file(context.store, path, Claims("case-1"))
    assert all(o.status != "failed" for o in ingest(context, workers=1))
    fixity.write_checkpoint(context)
    return context


def reasons(ctx: Context) -> list[str]:
    return [f.reason for f in fixity.verify_collection(ctx).failures]


def test_chain_without_item_record_is_named(ctx: Context) -> None:
    """Events for an item the items table does not know are reported."""
    victim = fixity.vault_items(ctx)[0]
    with ctx.engine.begin() as conn:
        conn.execute(text("PRAGMA foreign_keys=OFF"))
        for table in ("item_findings", "perceptual_hashes", "records", "duplicate_links"):
            conn.execute(text(f"DELETE FROM {table} WHERE item_sha256 = :s"), {"s": victim})  # noqa: S608
        conn.execute(
            text("UPDATE submissions SET item_sha256 = NULL WHERE item_sha256 = :s"), {"s": victim}
        )
        conn.execute(text("DELETE FROM items WHERE sha256 = :s"), {"s": victim})
    assert "custody chain without an item record" in reasons(ctx)


def test_backdated_chain_absent_from_the_checkpoint_is_named(ctx: Context, tmp_path: Path) -> None:
    """A chain added after the checkpoint but dated well before it was slipped in."""
    path = tmp_path / "late.jpg"
    path.write_bytes(photo(7))
    submit_file(ctx.store, path, Claims("case-1"))
    assert all(o.status != "failed" for o in ingest(ctx, workers=1))
    assert fixity.verify_collection(ctx).ok
    late = (set(fixity.vault_items(ctx)) - set(read_anchors_heads(ctx))).pop()
    with ctx.engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE custody_events SET event_time = '2020-01-01T00:00:00.000000Z' "
                "WHERE item_sha256 = :s"
            ),
            {"s": late},
        )
    assert "chain missing from the anchored checkpoint although it began before it" in reasons(ctx)


def read_anchors_heads(ctx: Context) -> dict[str, str]:
    heads_key = read_anchors(ctx.store)[-1]["checkpoint"]["heads_key"]
    with ctx.store.open(heads_key) as handle:
        return dict(json.load(handle)["heads"])


def test_heads_copy_rewritten_in_the_store_is_named(ctx: Context) -> None:
    """A heads copy edited in the store no longer matches the anchored, signed root."""
    heads_key = read_anchors(ctx.store)[-1]["checkpoint"]["heads_key"]
    with ctx.store.open(heads_key) as handle:
        document = json.load(handle)
    document["heads"].pop(next(iter(document["heads"])))
    assert isinstance(ctx.store, LocalStore)
    path = ctx.store.root / "objects" / Path(*heads_key.split("/"))
    path.chmod(0o644)
    path.write_text(json.dumps(document))
    assert any("do not match its signed root" in r for r in reasons(ctx))


def test_unreadable_heads_copy_is_named(ctx: Context) -> None:
    """The heads of the latest anchored checkpoint must be readable from the store."""
    heads_key = read_anchors(ctx.store)[-1]["checkpoint"]["heads_key"]
    assert isinstance(ctx.store, LocalStore)
    path = ctx.store.root / "objects" / Path(*heads_key.split("/"))
    path.chmod(0o644)
    path.unlink()
    assert any(
        r.startswith("the heads of anchored checkpoint #1 cannot be read") for r in reasons(ctx)
    )


def test_planted_anchor_bytes_are_malformed(ctx: Context) -> None:
    """Garbage planted as the next anchor is reported (not ignored)."""
    ctx.store.put("checkpoints/anchors/0000000002.json", io.BytesIO(b"not json"))
    assert "anchors: anchor #2: malformed" in reasons(ctx)
