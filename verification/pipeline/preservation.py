"""The store side of a submission: read it once while hashing, keep it write-once in the vault,
prove the vault copy, and store the derivatives the analysis made.

Runs in the process that owns the batch (the analysis workers never touch the store), so the
store a task was given (an Airflow Connection's client, say) is the store that is used.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from verification.core.claims import Claims, InvalidClaim, claims_from_metadata
from verification.core.findings import Finding
from verification.core.hashing import Digests, hash_stream, sha256_stream
from verification.media import Derivative
from verification.pipeline.layout import (
    MAX_SIDECAR_BYTES,
    SIDECAR_SUFFIX,
    case_of,
    derivative_key,
    vault_key,
)
from verification.storage import InvalidKey, ObjectExists, ObjectInfo, ObjectStore, StoreError

log = logging.getLogger(__name__)


class PreservationError(StoreError):
    """The vault copy could not be written or does not match what was read."""


@dataclass(frozen=True, slots=True)
class Preserved:
    """A submission read, hashed and kept in the vault; ``working`` is the local copy to analyse."""

    info: ObjectInfo
    claims: Claims
    claim_problems: tuple[Finding, ...]
    digests: Digests
    vault_version: str | None
    vault_check: dict[str, Any]
    working: Path

    @property
    def intact(self) -> bool:
        """True when the vault copy was read back with the submission's digest."""
        return self.vault_check.get("outcome") == "success"


def fetch_and_preserve(store: ObjectStore, info: ObjectInfo, scratch: Path) -> Preserved:
    """Stream the submission to ``scratch/original`` while hashing it, then preserve it.

    Raises :class:`StoreError` (or ``OSError``) when it cannot be read or preserved; the caller
    records the submission as failed, to be tried again.
    """
    claims, claim_problem = read_claims(store, info)
    working = scratch / "original"
    with store.open(info.key, info.version_id) as source, working.open("wb") as sink:
        digests = hash_stream(source, sink)
    if digests.size != info.size:
        msg = f"read {digests.size} bytes but the store announced {info.size}"
        raise PreservationError(msg)
    version, check = preserve(store, working, digests)
    problems = (claim_problem, collection_problem(info, digests))
    found = tuple(p for p in problems if p is not None)
    return Preserved(info, claims, found, digests, version, check, working)


def collection_check(info: ObjectInfo, digests: Digests) -> dict[str, Any] | None:
    """The submitter's hash at collection (``sha256`` metadata: the browser's or ``evidence
    submit``'s) against the pipeline's own: outcome, expected and found; None when none was sent.
    """
    sent = info.metadata.get("sha256")
    if sent is None:
        return None
    outcome = "success" if sent.strip().lower() == digests.sha256 else "failure"
    return {
        "outcome": outcome,
        "stage": "collection",
        "expected": f"sha256:{sent[:80]}",
        "found": f"sha256:{digests.sha256}",
    }


def collection_problem(info: ObjectInfo, digests: Digests) -> Finding | None:
    """A ``collection-hash-mismatch`` finding when the hash at collection differs from ours."""
    check = collection_check(info, digests)
    if check is None or check["outcome"] == "success":
        return None
    message = (
        "the SHA-256 computed when the file was collected differs from the SHA-256 of the bytes "
        "received: the file changed between collection and the pipeline"
    )
    evidence = {"expected": check["expected"], "found": check["found"]}
    return Finding("collection-hash-mismatch", "critical", message, evidence)


def read_claims(store: ObjectStore, info: ObjectInfo) -> tuple[Claims, Finding | None]:
    """Claims from the object's metadata, overlaid by a ``.claims.json`` sidecar when present.

    Unparsable claims do not stop the pipeline: they become a ``claims-invalid`` finding.
    """
    meta = dict(info.metadata)
    try:
        meta.update(_sidecar(store, info.key))
        return claims_from_metadata(meta, case_of(info.key)), None
    except (InvalidClaim, ValueError) as exc:
        finding = Finding("claims-invalid", "warning", f"submitter claims could not be read: {exc}")
        return Claims(meta.get("case-id") or case_of(info.key), meta.get("submitter")), finding


def _sidecar(store: ObjectStore, key: str) -> dict[str, str]:
    sidecar = key + SIDECAR_SUFFIX
    try:
        if not store.exists(sidecar):
            return {}
        with store.open(sidecar) as handle:
            raw = handle.read(MAX_SIDECAR_BYTES + 1)
    except InvalidKey:
        return {}
    if len(raw) > MAX_SIDECAR_BYTES:
        msg = "claims sidecar is larger than 64 KiB"
        raise ValueError(msg)
    data = json.loads(raw)
    if not isinstance(data, dict):
        msg = "claims sidecar is not a JSON object"
        raise ValueError(msg)
    return {str(k).replace("_", "-"): str(v) for k, v in data.items() if v is not None}


def preserve(
    store: ObjectStore, working: Path, digests: Digests
) -> tuple[str | None, dict[str, Any]]:
    """Write the original to the vault once, then re-read the vault copy and compare digests.

    An existing vault object is never overwritten: it is verified instead. Returns the vault
    version id and the fixity outcome (expected and found digests).
    """
    key = vault_key(digests.sha256)
    info: ObjectInfo | None = None
    if not store.exists(key):
        try:
            with working.open("rb") as handle:
                info = store.put(key, handle, sha256=digests.sha256, if_absent=True)
        except ObjectExists:
            log.info("vault copy of %s appeared concurrently; verifying it", digests.sha256[:12])
    if info is None:  # put describes what it stored; an existing copy is described here
        info = store.head(key)
    with store.open(key, info.version_id) as handle:
        found, size = sha256_stream(handle)
    outcome = "success" if (found, size) == (digests.sha256, digests.size) else "failure"
    check = {
        "outcome": outcome,
        "vault_key": key,
        "expected": f"sha256:{digests.sha256}",
        "found": f"sha256:{found}",
        "expected_size": digests.size,
        "found_size": size,
    }
    return info.version_id, check


def store_derivatives(
    store: ObjectStore, sha256: str, derivatives: Iterable[Derivative]
) -> list[dict[str, Any]]:
    """Write derivatives next to (never over) the original; existing ones are kept."""
    written = []
    for derivative in derivatives:
        key = derivative_key(sha256, derivative.name)
        digest = hashlib.sha256(derivative.data).hexdigest()
        with contextlib.suppress(ObjectExists):
            store.put(key, io.BytesIO(derivative.data), sha256=digest, if_absent=True)
        written.append(
            {
                "name": derivative.name,
                "key": key,
                "sha256": digest,
                "mime": derivative.mime,
                "tool": derivative.tool,
            }
        )
    return written
