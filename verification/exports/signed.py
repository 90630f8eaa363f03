"""What the installation key signs in an export, and the checks a recipient runs on it.

BagIt's manifests are unsigned checksums: anyone who edits a record can regenerate them. So:

* each item's exported record has its canonical hash (SHA-256 over RFC 8785 JSON) in the item's
  signed ``export`` custody event, and the record's decisions must be the chain's signed
  ``review`` events: an edited record is named by its file;
* a package's tag manifests are signed (``tagmanifest-signature.json`` at the bag's root, the
  one file no manifest can list);
* a JSON export signs each item entry and the whole document.

A recipient who knows the installation's key fingerprint (``--expect-key``) also rules out a
package forged end to end under a key of the forger's own.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import rfc8785

from verification.exports.layout import ALGORITHMS, SIGNATURE

SIGNATURE_FORMAT = "evidence-signature/1"


def canonical_sha256(value: Any) -> str:
    """SHA-256 over the RFC 8785 canonical JSON of ``value`` (how records are hashed)."""
    return hashlib.sha256(rfc8785.dumps(value)).hexdigest()


def _body(doc: Mapping[str, Any]) -> bytes:
    return bytes(rfc8785.dumps({k: v for k, v in doc.items() if k != "signature"}))


def sign(signer: Any, doc: Mapping[str, Any]) -> dict[str, Any]:
    """``doc`` with ``key_id`` and a ``signature`` over the rest of it."""
    body = {**doc, "key_id": signer.key_id}
    return {**body, "signature": signer.sign(_body(body))}


def signature_problem(doc: Mapping[str, Any], keys: Mapping[str, str], what: str) -> str | None:
    """Why ``doc``'s signature does not hold under ``keys``, or None."""
    from verification.ledger.signing import verify_signature

    key_id, signature = doc.get("key_id"), doc.get("signature")
    if not isinstance(key_id, str) or not isinstance(signature, str):
        return f"{what} is not signed"
    public = keys.get(key_id)
    if public is None:
        return f"{what} is signed by unknown key {key_id[:16]}…"
    if not verify_signature(public, _body(doc), signature):
        return f"{what}: signature does not verify (edited after export)"
    return None


# ---------------------------------------------------------------------------------------------
# BagIt


def sign_tag_manifests(signer: Any, bag: Path) -> None:
    """Write ``tagmanifest-signature.json``: the SHA-256 of each tag manifest, signed."""
    files = {
        f"tagmanifest-{alg}.txt": hashlib.sha256(
            (bag / f"tagmanifest-{alg}.txt").read_bytes()
        ).hexdigest()
        for alg in ALGORITHMS
    }
    doc = sign(signer, {"format": SIGNATURE_FORMAT, "files": files})
    (bag / SIGNATURE).write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def tag_manifest_problem(bag: Path, keys: Mapping[str, str]) -> str | None:
    """Why the tag manifests are not the ones the installation signed, or None."""
    try:
        doc = json.loads((bag / SIGNATURE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return f"{SIGNATURE} is missing: the tag manifests are not signed"
    except (ValueError, UnicodeDecodeError):
        return f"{SIGNATURE} is not valid JSON"
    if not isinstance(doc, dict) or doc.get("format") != SIGNATURE_FORMAT:
        return f"{SIGNATURE} is not an {SIGNATURE_FORMAT} signature"
    problem = signature_problem(doc, keys, SIGNATURE)
    if problem:
        return problem
    for alg in ALGORITHMS:
        name = f"tagmanifest-{alg}.txt"
        found = hashlib.sha256((bag / name).read_bytes()).hexdigest()
        if doc["files"].get(name) != found:
            return f"{name} is not the signed tag manifest (regenerated after export)"
    return None


# ---------------------------------------------------------------------------------------------
# Records against the signed chain


def record_problem(
    rel: str, record: Mapping[str, Any], events: Sequence[Any], export_id: Any
) -> str | None:
    """Why an exported record is not the one signed into its item's chain, or None.

    The record's hash must be the ``record_sha256`` of the item's ``export`` event for this
    export, and its decisions the chain's ``review`` events.
    """
    from verification.ledger.review_events import decisions

    mine = [e for e in events if e.type == "export" and e.detail.get("export") == export_id]
    signed = mine[-1].detail.get("record_sha256") if mine else None
    if not signed:
        return f"{rel} is not covered by a signed record hash in its custody chain"
    if canonical_sha256(dict(record)) != signed:
        return f"{rel} differs from the record signed in its custody chain (edited after export)"
    if record.get("decisions") != decisions(events):
        return f"{rel}: its decisions are not the signed review events of the chain"
    return None


def pinned_keys(keys: Mapping[str, str], expected: Sequence[str]) -> dict[str, str]:
    """The package's keys restricted to the fingerprints the recipient expects (all without)."""
    if not expected:
        return dict(keys)
    return {k: v for k, v in keys.items() if k in set(expected)}
