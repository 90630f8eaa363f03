"""The store side of a submission: read it once while hashing, keep it write-once in the vault,
prove the vault copy, and store the derivatives the analysis made.

One read of the submission feeds the digests, the vault copy and the analysis's working copy
when the store can stage (:class:`StagingStore`: the local store): the bytes go to a staged
object while they are hashed, which is then published under its SHA-256 and read back once; the
analysis reads the staged file. Other stores (S3) get a local working copy written while hashing,
then a verified write-once put of it (docs/benchmarks.md, "Intake speed", says why).

Runs in the process that owns the batch (the analysis workers never touch the store), so the
store a task was given (an Airflow Connection's client, say) is the store that is used.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from verification.core.claims import Claims, InvalidClaim, claims_from_metadata
from verification.core.findings import Finding
from verification.core.hashing import CHUNK_SIZE, Digests, hash_stream, sha256_stream
from verification.media import Derivative
from verification.pipeline.layout import (
    MAX_SIDECAR_BYTES,
    SIDECAR_SUFFIX,
    case_of,
    derivative_key,
    vault_key,
)
from verification.storage import (
    InvalidKey,
    ObjectExists,
    ObjectInfo,
    ObjectStore,
    StagedObject,
    StagingStore,
    StoreError,
)

log = logging.getLogger(__name__)


class PreservationError(StoreError):
    """The vault copy could not be written or does not match what was read."""


@dataclass(frozen=True, slots=True)
class Preserved:
    """A submission read, hashed and kept in the vault; ``working`` is the local file to analyse
    (the staged file, one with the vault object, on a store that stages), readable while the
    :func:`fetch_and_preserve` context lasts."""

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


@contextlib.contextmanager
def fetch_and_preserve(store: ObjectStore, info: ObjectInfo) -> Iterator[Preserved]:
    """Read the submission once while hashing it, preserve it, and hold its working copy.

    ``working`` is readable inside the context and removed when it ends, on every path. Raises
    :class:`StoreError` (or ``OSError``) when the submission cannot be read or preserved; the
    caller records it as failed, to be tried again. Nothing reaches the vault before the whole
    submission was read and its size checked.
    """
    claims, claim_problem = read_claims(store, info)
    with _read_once(store, info) as (copy, digests):
        version, check = preserve(store, copy, digests)
        problems = (claim_problem, collection_problem(info, digests))
        found = tuple(p for p in problems if p is not None)
        working = copy if isinstance(copy, Path) else copy.path
        yield Preserved(info, claims, found, digests, version, check, working)


@contextlib.contextmanager
def _read_once(
    store: ObjectStore, info: ObjectInfo
) -> Iterator[tuple[StagedObject | Path, Digests]]:
    """The submission's bytes copied once, with their digests: into a staged object when the
    store can stage, else into a temporary working file."""
    if isinstance(store, StagingStore):
        with store.stage() as staged:
            with store.open(info.key, info.version_id) as source:
                while chunk := source.read(CHUNK_SIZE):
                    staged.write(chunk)
            digests = staged.digests()
            _check_size(info, digests)
            yield staged, digests
        return
    with tempfile.TemporaryDirectory(prefix="evidence-") as scratch:
        working = Path(scratch) / "original"
        with store.open(info.key, info.version_id) as source, working.open("wb") as sink:
            digests = hash_stream(source, sink)
        _check_size(info, digests)
        yield working, digests


def _check_size(info: ObjectInfo, digests: Digests) -> None:
    if digests.size != info.size:
        msg = f"read {digests.size} bytes but the store announced {info.size}"
        raise PreservationError(msg)


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
    store: ObjectStore, copy: StagedObject | Path, digests: Digests
) -> tuple[str | None, dict[str, Any]]:
    """Write the original to the vault once, then re-read the vault copy and compare digests.

    ``copy`` is the staged object to publish (a store that stages) or the working file to put.
    An existing vault object is never overwritten: it is verified instead. Returns the vault
    version id and the fixity outcome (expected and found digests).
    """
    key = vault_key(digests.sha256)
    info: ObjectInfo | None = None
    if not store.exists(key):
        try:
            info = _write_vault(store, key, copy, digests)
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


def _write_vault(
    store: ObjectStore, key: str, copy: StagedObject | Path, digests: Digests
) -> ObjectInfo:
    """Publish the staged copy, or put the working file; both verify the SHA-256 first."""
    if not isinstance(copy, Path):
        return copy.publish(key, sha256=digests.sha256)
    with copy.open("rb") as handle:
        return store.put(key, handle, sha256=digests.sha256, if_absent=True)


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
