"""Anchors: the chain of signed statements kept outside the ledger database, in the object store.

An anchor is a small JSON document written write-once under ``checkpoints/anchors/`` (S3 Object
Lock retention where the bucket has it). Anchor #0 is the **key pin** that ``evidence init``
writes: it names the installation key's fingerprint and public key. Every later anchor names
the SHA-256 of the one before it (``prev``) and is either a **checkpoint** (the signed Merkle
root over every chain head, with the object key of its heads) or a **rotation** (a new key,
signed by the key it replaces). An anchor is accepted only when it is signed by a key that the
anchors before it trust, so a key generated later by someone who can write to the database and
the key file is not trusted: chains and checkpoints signed by it fail verification.

This module needs nothing but the documents; :class:`AnchorStore` is the part of the object
store it reads and writes (the storage layer's stores satisfy it).
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Protocol

import rfc8785

from verification.ledger.signing import Signer, verify_signature

ANCHOR_PREFIX = "checkpoints/anchors/"
GENESIS = "0" * 64


class AnchorStore(Protocol):
    """The object-store operations anchors need (list, open, write-once put)."""

    def list(self, prefix: str = "") -> Iterator[Any]:
        """Objects under ``prefix`` (each with ``.key``), in key order."""
        ...

    def open(self, key: str, version_id: str | None = None) -> BinaryIO:
        """A readable stream of the object."""
        ...

    def put(
        self,
        key: str,
        data: BinaryIO,
        *,
        metadata: Mapping[str, str] | None = None,
        sha256: str | None = None,
        if_absent: bool = False,
    ) -> Any:
        """Write ``data``; with ``if_absent`` refuse an existing key."""
        ...


class AnchorError(Exception):
    """An anchor cannot be written (the signing key is not trusted, the chain is broken)."""


def anchor_key(seq: int) -> str:
    """Object key of anchor ``seq`` (zero-padded, so key order is sequence order)."""
    return f"{ANCHOR_PREFIX}{seq:010d}.json"


def anchor_hash(doc: Mapping[str, Any]) -> str:
    """SHA-256 over the RFC 8785 canonical JSON of the whole anchor (signature included)."""
    return hashlib.sha256(rfc8785.dumps(dict(doc))).hexdigest()


def signed_body(doc: Mapping[str, Any]) -> bytes:
    """The bytes an anchor's signature covers: everything but the signature."""
    return bytes(rfc8785.dumps({k: v for k, v in doc.items() if k != "signature"}))


def sign_anchor(signer: Signer, body: Mapping[str, Any]) -> dict[str, Any]:
    """``body`` with the signer's key id and signature added."""
    doc = {**body, "key_id": signer.key_id}
    return {**doc, "signature": signer.sign(signed_body(doc))}


@dataclass(frozen=True, slots=True)
class AnchorState:
    """What the anchored chain says: the keys trusted now (``trusted``: they may sign the next
    anchor) and at any time (``ever``: custody events signed before a rotation stay valid), the
    latest checkpoint, and the first problem."""

    anchors: int
    trusted: Mapping[str, str]
    latest_checkpoint: Mapping[str, Any] | None
    checkpoints: tuple[Mapping[str, Any], ...] = ()
    last: Mapping[str, Any] | None = None
    failures: tuple[str, ...] = field(default_factory=tuple)
    ever: Mapping[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when the chain of anchors verified."""
        return not self.failures


def check_anchors(docs: Sequence[Mapping[str, Any]], pinned: Iterable[str] = ()) -> AnchorState:
    """Walk the anchors in sequence order and return what they establish.

    Checks: no gap in the sequence (an anchor removed), each ``prev`` is the hash of the anchor
    before, each signature verifies under a key trusted *before* it (the pin trusts itself, or
    the operator's ``pinned`` fingerprints when given), a rotation is signed by the key it
    replaces. Stops at the first broken anchor: nothing after it can be trusted.
    """
    operator = set(pinned)
    trusted: dict[str, str] = {}
    ever: dict[str, str] = {}
    checkpoints: list[Mapping[str, Any]] = []
    prev, last = GENESIS, None
    for expected, doc in enumerate(docs):
        problem = _check_one(doc, expected, prev, trusted, operator)
        if problem:
            return AnchorState(
                expected, trusted, _last(checkpoints), tuple(checkpoints), last, (problem,), ever
            )
        trusted = _trusted_after(doc, trusted)
        ever.update(trusted)
        if doc.get("kind") == "checkpoint":
            checkpoints.append(doc)
        prev, last = anchor_hash(doc), doc
    if not docs:
        return AnchorState(
            0, {}, None, (), None, ("no anchored key pin in the store (run `evidence init`)",)
        )
    return AnchorState(len(docs), trusted, _last(checkpoints), tuple(checkpoints), last, (), ever)


def _last(checkpoints: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    return checkpoints[-1] if checkpoints else None


def _check_one(
    doc: Mapping[str, Any], seq: int, prev: str, trusted: Mapping[str, str], operator: set[str]
) -> str | None:
    where = f"anchor #{seq}"
    try:
        if doc["seq"] != seq:
            return f"gap in the checkpoint sequence: expected anchor #{seq}, found #{doc['seq']}"
        if doc["prev"] != prev:
            return f"{where}: does not link to the anchor before it (rewritten or reordered)"
        kind, key_id = doc["kind"], doc["key_id"]
        if seq == 0:
            return _check_pin(doc, operator)
        if kind not in {"checkpoint", "rotation"}:
            return f"{where}: unknown kind {str(kind)[:20]!r}"
        if key_id not in trusted:
            return f"{where}: signed by key {str(key_id)[:16]}…, which the anchors before it do not trust"
        if not verify_signature(trusted[key_id], signed_body(doc), doc["signature"]):
            return f"{where}: signature does not verify"
        if kind == "rotation":
            return _check_rotation(doc, trusted)
        if dict(doc["trusted_keys"]) != dict(trusted):
            return f"{where}: changes the trusted keys without a rotation"
    except (KeyError, TypeError, ValueError, AttributeError):
        return f"{where}: malformed"
    return None


def _check_pin(doc: Mapping[str, Any], operator: set[str]) -> str | None:
    keys = dict(doc["trusted_keys"])
    if doc["kind"] != "pin" or not keys:
        return "anchor #0 is not a key pin"
    from verification.ledger.signing import key_id as fingerprint

    if any(fingerprint(pem) != kid for kid, pem in keys.items()):
        return "anchor #0: a pinned fingerprint does not match its public key"
    if operator and not set(keys) <= operator:
        return "anchor #0 pins a key that is not in EVIDENCE_TRUSTED_KEYS"
    public = keys.get(doc["key_id"])
    if public is None or not verify_signature(public, signed_body(doc), doc["signature"]):
        return "anchor #0: the key pin's signature does not verify"
    return None


def _check_rotation(doc: Mapping[str, Any], trusted: Mapping[str, str]) -> str | None:
    from verification.ledger.signing import key_id as fingerprint

    rotation = doc["rotation"]
    old, new, pem = rotation["old"], rotation["new"], rotation["public_key"]
    if doc["key_id"] != old or old not in trusted:
        return f"anchor #{doc['seq']}: a rotation must be signed by the key it replaces"
    if fingerprint(pem) != new:
        return f"anchor #{doc['seq']}: the new key's fingerprint does not match its public key"
    expected = {k: v for k, v in trusted.items() if k != old} | {new: pem}
    if dict(doc["trusted_keys"]) != expected:
        return f"anchor #{doc['seq']}: trusted keys are not the old set with the key replaced"
    return None


def _trusted_after(doc: Mapping[str, Any], trusted: Mapping[str, str]) -> dict[str, str]:
    return dict(doc["trusted_keys"]) if doc["kind"] in {"pin", "rotation"} else dict(trusted)


# ---------------------------------------------------------------------------------------------
# Reading and writing through the store


def read_anchors(store: AnchorStore) -> list[dict[str, Any]]:
    """Every anchor in the store, in key (= sequence) order; an unreadable one is a dict
    that :func:`check_anchors` reports as malformed."""
    docs: list[dict[str, Any]] = []
    for info in store.list(ANCHOR_PREFIX):
        docs.append(read_json(store, info.key))
    return docs


def read_json(store: AnchorStore, key: str) -> dict[str, Any]:
    """A JSON object from the store (``{}`` when it is not one)."""
    with store.open(key) as handle:
        try:
            data = json.load(handle)
        except ValueError:
            return {}
    return data if isinstance(data, dict) else {}


def append_anchor(store: AnchorStore, signer: Signer, body: Mapping[str, Any]) -> dict[str, Any]:
    """Sign ``body`` as the next anchor and write it write-once; return the document.

    Refuses when the chain read from the store does not verify, or when the signer is not a
    trusted key (a new key must come in through :func:`rotate_key`).
    """
    docs = read_anchors(store)
    state = check_anchors(docs)
    if docs and not state.ok:
        msg = f"the anchored chain in the store does not verify: {state.failures[0]}"
        raise AnchorError(msg)
    if docs and signer.key_id not in state.trusted and body.get("kind") != "rotation":
        msg = (
            f"the signing key {signer.key_id[:16]}… is not trusted by the anchored key pin; "
            "a new key comes in only through `evidence custody rotate-key`"
        )
        raise AnchorError(msg)
    seq = len(docs)
    doc = sign_anchor(
        signer,
        {
            "seq": seq,
            "prev": anchor_hash(docs[-1]) if docs else GENESIS,
            "trusted_keys": dict(state.trusted) if docs else {},
            **body,
        },
    )
    data = json.dumps(doc, sort_keys=True, indent=2).encode()
    store.put(anchor_key(seq), io.BytesIO(data), if_absent=True)
    return doc


def pin_key(store: AnchorStore, signer: Signer, created_at: str) -> dict[str, Any] | None:
    """Write anchor #0, the key pin, unless the store already has one; return it when written."""
    if next(iter(store.list(ANCHOR_PREFIX)), None) is not None:
        return None
    return append_anchor(
        store,
        signer,
        {
            "kind": "pin",
            "created_at": created_at,
            "trusted_keys": {signer.key_id: signer.public_pem},
        },
    )


def rotate_key(store: AnchorStore, old: Signer, new: Signer, created_at: str) -> dict[str, Any]:
    """Replace ``old`` by ``new`` in the trusted keys: an anchor signed by ``old``."""
    state = check_anchors(read_anchors(store))
    if not state.ok or old.key_id not in state.trusted:
        msg = "the key to replace is not the trusted installation key (or the anchors are broken)"
        raise AnchorError(msg)
    trusted = {k: v for k, v in state.trusted.items() if k != old.key_id}
    trusted[new.key_id] = new.public_pem
    return append_anchor(
        store,
        old,
        {
            "kind": "rotation",
            "created_at": created_at,
            "rotation": {"old": old.key_id, "new": new.key_id, "public_key": new.public_pem},
            "trusted_keys": trusted,
        },
    )
