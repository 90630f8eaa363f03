"""Submitting files: upload to ``incoming/<case>/`` with the claims as object metadata."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from verification.core.claims import Claims
from verification.core.hashing import hash_stream
from verification.storage import ObjectExists, ObjectStore

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_CASE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class SubmitError(ValueError):
    """A submission that cannot be made as asked (bad case id, unreadable file)."""


@dataclass(frozen=True, slots=True)
class Submitted:
    """Where a file went and the SHA-256 the store verified on upload."""

    path: Path
    key: str
    sha256: str
    size: int


def check_case_id(case: str) -> str:
    """Case ids become key components: letters, digits, ``.``, ``_``, ``-`` only."""
    if not _CASE.match(case) or case in {".", ".."}:
        msg = f"case id {case!r} must be 1-100 letters, digits, '.', '_' or '-'"
        raise SubmitError(msg)
    return case


def safe_name(name: str) -> str:
    """A file name usable as the last key component."""
    cleaned = _SAFE_NAME.sub("_", name).strip("._") or "file"
    return cleaned[:200]


def submit_file(store: ObjectStore, path: Path, claims: Claims) -> Submitted:
    """Upload ``path`` write-once under ``incoming/<case>/`` with the claims as metadata.

    The SHA-256 is computed first and sent along, so the store refuses a corrupted transfer. A
    different file already under the same name is never replaced: the new one gets a prefix.
    """
    check_case_id(claims.case_id)
    try:
        with path.open("rb") as handle:
            digests = hash_stream(handle)
    except OSError as exc:
        msg = f"cannot read {path}: {exc.strerror or exc}"
        raise SubmitError(msg) from exc
    base = f"incoming/{claims.case_id}/"
    for key in (base + safe_name(path.name), f"{base}{digests.sha256[:12]}-{safe_name(path.name)}"):
        try:
            with path.open("rb") as handle:
                meta = {**claims.to_metadata(), "sha256": digests.sha256}
                store.put(key, handle, metadata=meta, sha256=digests.sha256, if_absent=True)
        except ObjectExists:
            if store.head(key).metadata.get("sha256") == digests.sha256:
                return Submitted(path, key, digests.sha256, digests.size)
            continue
        return Submitted(path, key, digests.sha256, digests.size)
    msg = f"{path.name}: another file with this name was already submitted to case {claims.case_id}"
    raise SubmitError(msg)
