"""Submitting from a browser: claims checked as ``evidence submit`` checks them, files hashed at
collection, sent straight to the store through signed requests, and a receipt.

The flow, one file at a time: :func:`plan_upload` picks the key under ``incoming/<case>/`` and
signs either one PUT (small files) or opens a multipart upload whose parts are signed one by one
(:func:`sign_part_request`), each with its SHA-256. :func:`complete` joins the parts (the object appears
only then; :func:`abort` leaves nothing) and checks what the store holds against what the browser
hashed. :func:`issue_receipt` writes the receipt of a whole submission once, write-once, under
``receipts/``. Tokens (HMAC-signed, stateless) tie each step to the upload it was planned for.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import io
import json
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from verification.core.claims import (
    METADATA_KEYS,
    Claims,
    check_coordinates,
    parse_location,
    parse_time,
)
from verification.ledger.models import Submission
from verification.pipeline.context import Context
from verification.pipeline.submission import SubmitError, check_case_id, safe_name
from verification.storage import ObjectExists, ObjectNotFound, ObjectStore
from verification.storage.presigned import (
    MIN_PART,
    SignedRequest,
    abort_multipart,
    allow_browser_uploads,
    b64_digest,
    complete_multipart,
    composite_sha256,
    s3_of,
    sign_part,
    sign_put,
    start_multipart,
    stored_checksum,
    uploaded_parts,
    withdraw,
)
from verification.storage.s3 import S3Store

PART_SIZE = 8 * 1024 * 1024
MAX_SIZE = 5 * 1024**4  # S3's largest object
RECEIPTS = "receipts/"
TOKEN_TTL = 7 * 24 * 3600  # an interrupted upload can be resumed for a week
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_B64_SHA256 = re.compile(r"^[A-Za-z0-9+/]{43}=$")
_REFERENCE = re.compile(r"^EV-\d{8}-[0-9A-HJKMNP-TV-Z]{8}$")
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_TOKEN_CONTEXT = b"evidence-upload-token-v1\x00"


# The user metadata a signed PUT carries: the claims, the hash at collection, the receipt.
METADATA_NAMES = (*METADATA_KEYS, "sha256", "receipt", "submitted-name")


def allow_uploads_from(store: ObjectStore, origins: Sequence[str]) -> None:
    """Let the upload page at ``origins`` (the Airflow UI's address) send to the bucket (CORS)."""
    allow_browser_uploads(s3_of(store), origins, METADATA_NAMES)


class UploadRefused(SubmitError):
    """The store holds other bytes than the browser hashed: nothing is submitted."""


class UploadIncomplete(SubmitError):
    """Parts are missing; the browser sends them and completes again."""


@dataclass(frozen=True, slots=True)
class Planned:
    """A file ready to send: its key, how to send it (one PUT or parts) and its token."""

    key: str
    token: str
    part_size: int
    parts: int
    put: SignedRequest | None
    already: bool = False  # the same bytes are already under the key: nothing to send

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, for the page."""
        return {
            "key": self.key,
            "token": self.token,
            "part_size": self.part_size,
            "parts": self.parts,
            "put": self.put.to_dict() if self.put else None,
            "already": self.already,
        }


@dataclass(frozen=True, slots=True)
class Received:
    """One file as the store holds it: what a receipt lists."""

    name: str
    key: str
    size: int
    sha256: str
    received_at: str
    version_id: str | None
    store_checksum: str | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the receipt's ``files`` entries)."""
        return {
            "name": self.name,
            "key": self.key,
            "size": self.size,
            "sha256": self.sha256,
            "received_at": self.received_at,
            "version_id": self.version_id,
            "store_checksum": self.store_checksum,
        }


def claims_from_form(
    case: str,
    submitter: str = "",
    location: str = "",
    time: str = "",
    source_url: str = "",
    note: str = "",
) -> Claims:
    """The claims of a form, checked with the validators of ``evidence submit`` (same errors)."""
    check_case_id(case)
    lat, lon = parse_location(location) if location.strip() else (None, None)
    if lat is not None and lon is not None:
        check_coordinates(lat, lon)
    when = parse_time(time) if time.strip() else None
    return Claims(
        case,
        submitter.strip() or None,
        lat,
        lon,
        when,
        source_url.strip() or None,
        note.strip() or None,
    )


def new_reference(now: datetime | None = None) -> str:
    """A reference an investigator can read out: ``EV-<yyyymmdd>-<8 Crockford base32>``."""
    day = (now or datetime.now(UTC)).strftime("%Y%m%d")
    return f"EV-{day}-{''.join(secrets.choice(_CROCKFORD) for _ in range(8))}"


def check_reference(reference: str) -> str:
    """``reference`` when it has the shape :func:`new_reference` gives, else :class:`SubmitError`."""
    if not _REFERENCE.match(reference):
        msg = "receipt reference must look like EV-20260101-ABCD1234"
        raise SubmitError(msg)
    return reference


def check_file(name: str, size: int, sha256: str) -> None:
    """One-line errors for a file description the browser sent."""
    if not name.strip():
        raise SubmitError("file name is empty")
    if not 0 < size <= MAX_SIZE:
        msg = f"{name}: size must be 1 byte to 5 TiB (got {size})"
        raise SubmitError(msg)
    if not _SHA256.match(sha256):
        msg = f"{name}: sha256 must be 64 lower-case hex digits"
        raise SubmitError(msg)


def plan_upload(
    store: ObjectStore,
    secret: bytes,
    claims: Claims,
    reference: str,
    file: Mapping[str, Any],
    part_size: int = PART_SIZE,
    public_url: str | None = None,
) -> Planned:
    """Choose the key and sign the transfer of ``file`` (``name``, ``size``, ``sha256``).

    Like ``evidence submit``: a different file already under the name gets the SHA-256 prefix; the
    same bytes already under it are ``already`` received (nothing to send; the receipt lists
    them with the time the store first received them).
    """
    s3 = s3_of(store)
    check_reference(reference)
    name, size, sha = str(file.get("name", "")), _int(file.get("size")), str(file.get("sha256"))
    check_file(name, size, sha)
    key, already = _free_key(store, claims.case_id, name, sha)
    payload: dict[str, Any] = {"k": key, "s": size, "h": sha, "n": name, "r": reference}
    payload.update(c=claims.case_id, t=int(datetime.now(UTC).timestamp()))
    if already:
        return Planned(key, _sign(secret, {**payload, "a": 1, "p": size}), size, 0, None, True)
    metadata = {**claims.to_metadata(), "sha256": sha, "receipt": reference, "submitted-name": name}
    part_size = max(part_size, MIN_PART, -(-size // 10_000))
    payload["p"] = part_size
    if size <= part_size:
        put = sign_put(s3, key, sha, size, metadata, public_url)
        return Planned(key, _sign(secret, payload), size, 1, put)
    payload["u"] = start_multipart(s3, key, metadata)
    return Planned(key, _sign(secret, payload), part_size, -(-size // part_size), None)


def sign_part_request(
    store: ObjectStore,
    secret: bytes,
    token: str,
    number: int,
    checksum: str,
    public_url: str | None = None,
) -> SignedRequest:
    """The signed PUT of part ``number`` (its SHA-256 in base64 is ``checksum``)."""
    plan = read_token(secret, token)
    if "u" not in plan:
        raise SubmitError("this file is sent in one request, not in parts")
    count = -(-plan["s"] // plan["p"])
    if not 1 <= number <= count:
        msg = f"part number must be 1..{count}"
        raise SubmitError(msg)
    if not _B64_SHA256.match(checksum):
        raise SubmitError("part checksum must be a base64 SHA-256")
    size = min(plan["p"], plan["s"] - (number - 1) * plan["p"])
    return sign_part(s3_of(store), plan["k"], plan["u"], number, checksum, size, public_url)


def parts_done(store: ObjectStore, secret: bytes, token: str) -> list[int]:
    """Numbers of the parts the store already holds (a resumed upload sends only the others)."""
    plan = read_token(secret, token)
    if "u" not in plan:
        return []
    return [p.number for p in uploaded_parts(s3_of(store), plan["k"], plan["u"])]


def complete(
    store: ObjectStore, secret: bytes, token: str, checksums: Sequence[str] = ()
) -> Received:
    """Finish a file and check the store's checksum against the browser's hashes.

    A multipart object whose composite checksum differs from the one the browser's part digests
    give (a part the store took with other bytes) is withdrawn and :class:`UploadRefused`.
    """
    plan = read_token(secret, token)
    s3 = s3_of(store)
    if "a" in plan:
        return received_already(store, plan["k"])
    if "u" in plan:
        return _complete_parts(s3, plan, list(checksums))
    try:
        info = s3.head(plan["k"])
    except ObjectNotFound as exc:
        raise UploadIncomplete(f"{plan['n']}: the store has not received it yet") from exc
    if info.metadata.get("receipt") != plan["r"] or info.size != plan["s"]:
        raise UploadRefused(f"{plan['n']}: the store holds another object under this name")
    found = stored_checksum(s3, plan["k"], info.version_id)
    if found is not None and found != b64_digest(plan["h"]):
        withdraw(s3, plan["k"], info.version_id)
        raise UploadRefused(f"{plan['n']}: the store's checksum differs from the browser's hash")
    return _received(plan, info.last_modified, info.version_id, found)


def abort(store: ObjectStore, secret: bytes, token: str) -> None:
    """Cancel a file: its parts are discarded and nothing appears under ``incoming/``."""
    plan = read_token(secret, token)
    if "u" in plan:
        abort_multipart(s3_of(store), plan["k"], plan["u"])


def issue_receipt(
    store: ObjectStore, reference: str, files: Sequence[Received], submitter: str | None
) -> dict[str, Any]:
    """Write the receipt of a submission once (``receipts/<reference>.json``) and return it.

    Asked again, the stored receipt is returned unchanged: it is what the investigator was given.
    """
    check_reference(reference)
    if not files:
        raise SubmitError("nothing was received: no receipt")
    receipt = {
        "receipt": reference,
        "case": files[0].key.split("/")[1],
        "submitter": submitter,
        "issued_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "store": store.url,
        "files": [f.to_dict() for f in files],
    }
    data = json.dumps(receipt, indent=2, sort_keys=True, ensure_ascii=False).encode()
    digest = hashlib.sha256(data).hexdigest()
    try:
        store.put(_receipt_key(reference), io.BytesIO(data), sha256=digest, if_absent=True)
    except ObjectExists:
        return load_receipt(store, reference)
    return receipt


def received(store: ObjectStore, secret: bytes, token: str) -> Received:
    """What the store holds for a completed file (read again when the receipt is issued)."""
    plan = read_token(secret, token)
    if "a" in plan:
        return received_already(store, plan["k"])
    info = store.head(plan["k"])
    if info.metadata.get("receipt") != plan["r"]:
        raise SubmitError(f"{plan['n']} was not received with this submission")
    found = stored_checksum(s3_of(store), plan["k"], info.version_id)
    return _received(plan, info.last_modified, info.version_id, found)


def received_already(store: ObjectStore, key: str) -> Received:
    """A file already in the store (same bytes sent before) as a receipt entry."""
    info = store.head(key)
    meta = info.metadata
    found = stored_checksum(s3_of(store), key, info.version_id)
    return Received(
        meta.get("submitted-name") or key.rsplit("/", 1)[-1],
        key,
        info.size,
        meta.get("sha256", ""),
        info.last_modified.astimezone(UTC).isoformat(),
        info.version_id,
        found,
    )


def load_receipt(store: ObjectStore, reference: str) -> dict[str, Any]:
    """A stored receipt; raises :class:`~verification.storage.ObjectNotFound`."""
    check_reference(reference)
    with store.open(_receipt_key(reference)) as handle:
        receipt: dict[str, Any] = json.loads(handle.read(1024 * 1024))
    return receipt


def receipt_events(ctx: Context, receipt: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Per received key, the custody event that opened its submission (once it is ingested): the
    ingestion event carrying this receipt's line, with the item and the event's hash."""
    keys = [f["key"] for f in receipt.get("files", [])]
    with Session(ctx.engine) as session:
        rows = session.execute(
            select(Submission.store_key, Submission.item_sha256).where(
                Submission.store_key.in_(keys), Submission.item_sha256.is_not(None)
            )
        ).all()
    found: dict[str, dict[str, Any]] = {}
    for key, sha in rows:
        for event in ctx.ledger.events(str(sha)):
            if event.type == "ingestion" and event.detail.get("source", "").endswith("/" + key):
                found[key] = {"item": sha, **event.to_dict()}
                break
    return found


def token_reference(secret: bytes, token: str) -> tuple[str, str]:
    """The receipt reference and the case a token belongs to."""
    plan = read_token(secret, token)
    return plan["r"], plan["c"]


def read_token(secret: bytes, token: str) -> dict[str, Any]:
    """The plan inside a token this server signed; :class:`SubmitError` for any other."""
    body, _, mac = token.partition(".")
    expected = hmac.new(secret, _TOKEN_CONTEXT + body.encode(), hashlib.sha256).hexdigest()
    if not mac or not hmac.compare_digest(mac, expected):
        raise SubmitError("upload token is not valid; start the upload again")
    try:
        plan: dict[str, Any] = json.loads(base64.urlsafe_b64decode(body.encode()))
    except (binascii.Error, ValueError) as exc:
        raise SubmitError("upload token is not valid; start the upload again") from exc
    if plan["t"] + TOKEN_TTL < datetime.now(UTC).timestamp():
        raise SubmitError("upload token has expired; start the upload again")
    return plan


def _sign(secret: bytes, payload: Mapping[str, Any]) -> str:
    body = base64.urlsafe_b64encode(json.dumps(payload, sort_keys=True).encode()).decode()
    mac = hmac.new(secret, _TOKEN_CONTEXT + body.encode(), hashlib.sha256).hexdigest()
    return f"{body}.{mac}"


def _complete_parts(s3: S3Store, plan: Mapping[str, Any], checksums: list[str]) -> Received:
    count = -(-plan["s"] // plan["p"])
    if len(checksums) != count or not all(_B64_SHA256.match(c) for c in checksums):
        msg = f"{plan['n']}: send the checksums of all {count} parts"
        raise SubmitError(msg)
    parts = uploaded_parts(s3, plan["k"], plan["u"])
    missing = sorted(set(range(1, count + 1)) - {p.number for p in parts})
    if missing:
        msg = f"{plan['n']}: parts {', '.join(map(str, missing[:10]))} are not in the store yet"
        raise UploadIncomplete(msg)
    sizes = [min(plan["p"], plan["s"] - i * plan["p"]) for i in range(count)]
    if [p.size for p in parts] != sizes:
        abort_multipart(s3, plan["k"], plan["u"])
        raise UploadRefused(f"{plan['n']}: the parts in the store have other sizes; send it again")
    info = complete_multipart(s3, plan["k"], plan["u"], parts, checksums)
    found, expected = stored_checksum(s3, plan["k"], info.version_id), composite_sha256(checksums)
    # S3 answers HEAD with "<b64>-<parts>", moto with "<b64>" alone: the digest is what counts.
    if found is not None and found.partition("-")[0] != expected.partition("-")[0]:
        withdraw(s3, plan["k"], info.version_id)
        msg = f"{plan['n']}: the store's checksum differs from the browser's part hashes"
        raise UploadRefused(msg)
    return _received(plan, info.last_modified, info.version_id, found and expected)


def _received(
    plan: Mapping[str, Any], when: datetime, version: str | None, checksum: str | None
) -> Received:
    at = when.astimezone(UTC).isoformat()
    return Received(plan["n"], plan["k"], plan["s"], plan["h"], at, version, checksum)


def _free_key(store: ObjectStore, case: str, name: str, sha: str) -> tuple[str, bool]:
    base = f"incoming/{case}/"
    for key in (base + safe_name(name), f"{base}{sha[:12]}-{safe_name(name)}"):
        if not store.exists(key):
            return key, False
        if store.head(key).metadata.get("sha256") == sha:
            return key, True
    msg = f"{name}: another file with this name was already submitted to case {case}"
    raise SubmitError(msg)


def _receipt_key(reference: str) -> str:
    return f"{RECEIPTS}{reference}.json"


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SubmitError("file size must be a whole number of bytes")
    return value
