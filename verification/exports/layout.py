"""Where things are in an exported package, and the Merkle inclusion proofs it carries.

Shared by the writer (:mod:`.bagit`) and the verifier (:mod:`.verify`), so both read one layout.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

FORMAT_VERSION = "evidence-export/1"
ALGORITHMS = ("sha256", "sha512")
EVIDENCE = "evidence"
INDEX = "evidence/manifest.json"
RECORDS = "evidence/records"
CUSTODY = "evidence/custody"
KEYS = "evidence/keys"
CHECKPOINT = "evidence/checkpoint/checkpoint.json"
CHECKPOINT_MESSAGE = "evidence/checkpoint/signed-message.json"
TIMESTAMP = "evidence/checkpoint/timestamp.tsr"
TIMESTAMP_PENDING = "evidence/checkpoint/timestamp-pending.txt"
SIGNATURE = "tagmanifest-signature.json"
ORIGINALS = "data/originals"
REDACTED = "data/redacted"


def _leaf(item: str, head: str) -> bytes:
    return hashlib.sha256(b"\x00" + f"{item}:{head}".encode()).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def inclusion_proof(heads: Mapping[str, str], item: str) -> dict[str, Any]:
    """The audit path from ``item``'s leaf to the root of :func:`custody.merkle_root` over ``heads``.

    A package carries proofs instead of every head of the installation, so it proves its items
    are under the signed root without disclosing the hashes of other cases' items.
    """
    keys = sorted(heads)
    index = keys.index(item)
    level = [_leaf(k, heads[k]) for k in keys]
    path, position = [], index
    while len(level) > 1:
        sibling = position ^ 1
        if sibling < len(level):
            path.append(level[sibling].hex())
        level = [_node(a, b) for a, b in zip(level[::2], level[1::2], strict=False)] + (
            [level[-1]] if len(level) % 2 else []
        )
        position //= 2
    return {"head": heads[item], "index": index, "path": path}


def root_from_proof(item: str, head: str, index: int, size: int, path: Sequence[str]) -> str:
    """The Merkle root that ``item``'s head and audit path lead to (for a tree of ``size`` leaves)."""
    if not 0 <= index < size:
        msg = "leaf index outside the tree"
        raise ValueError(msg)
    node, position, width, siblings = _leaf(item, head), index, size, iter(path)
    while width > 1:
        if position % 2:
            node = _node(bytes.fromhex(next(siblings)), node)
        elif position + 1 < width:
            node = _node(node, bytes.fromhex(next(siblings)))
        position, width = position // 2, (width + 1) // 2
    if next(siblings, None) is not None:
        msg = "audit path longer than the tree is deep"
        raise ValueError(msg)
    return node.hex()


# ---------------------------------------------------------------------------------------------
