"""Checkpoints: a signed Merkle root over every chain head, which makes deleting or rolling back
whole items detectable; and the check of one against the chains as they are now."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import rfc8785

from verification.ledger.signing import verify_signature


def merkle_root(heads: Mapping[str, str]) -> str:
    """Merkle root (RFC 6962 style leaf/node prefixes) over ``item -> head hash``, sorted by item."""
    level = [
        hashlib.sha256(b"\x00" + f"{k}:{v}".encode()).digest() for k, v in sorted(heads.items())
    ]
    if not level:
        return hashlib.sha256(b"").hexdigest()
    while len(level) > 1:
        nxt = [
            hashlib.sha256(b"\x01" + a + b).digest()
            for a, b in zip(level[::2], level[1::2], strict=False)
        ]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0].hex()


def checkpoint_message(created_at: str, root: str, count: int) -> bytes:
    """The bytes a checkpoint signature covers."""
    return rfc8785.dumps({"created_at": created_at, "root": root, "items": count})


def check_checkpoint(
    heads: Mapping[str, str],
    root: str,
    created_at: str,
    key_id: str,
    signature: str,
    keys: Mapping[str, str],
    events_of: Any,
) -> list[tuple[str, str]]:
    """Problems with a checkpoint: bad signature, wrong root, items gone or rolled back."""
    problems: list[tuple[str, str]] = []
    public = keys.get(key_id)
    if public is None or not verify_signature(
        public, checkpoint_message(created_at, root, len(heads)), signature
    ):
        problems.append(("checkpoint", "checkpoint signature does not verify"))
    if merkle_root(heads) != root:
        problems.append(("checkpoint", "checkpoint Merkle root does not match its heads"))
    for item, head in heads.items():
        hashes = {e.hash for e in events_of(item)}
        if not hashes:
            problems.append((item, "item in checkpoint has no events now (deleted)"))
        elif head not in hashes:
            problems.append(
                (item, "checkpointed chain head is gone (chain rolled back or rewritten)")
            )
    return problems
