"""RFC 3161 time-stamps for checkpoints: ask a time-stamp authority (TSA), verify its tokens.

A checkpoint's signed message (:func:`verification.ledger.checkpoints.checkpoint_message`) is what gets
time-stamped: the token then proves that every chain head under the checkpoint's Merkle root
existed at the TSA's time, independently of our own clock and key. Offline by default: with no
``tsa_urls`` configured nothing leaves the machine and checkpoints stay ``pending``; an
unreachable TSA also leaves them pending, to be retried by the next nightly run.

The stored token is the TSA's whole DER ``TimeStampResp`` (status and token), which is what
``openssl ts -verify -in`` reads too.
"""

from __future__ import annotations

import hashlib
import logging
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from verification.core.text import printable

if TYPE_CHECKING:
    from cryptography.x509 import Certificate
    from rfc3161_client import TimeStampResponse

log = logging.getLogger(__name__)

CONTENT_TYPE_QUERY = "application/timestamp-query"
CONTENT_TYPE_REPLY = "application/timestamp-reply"
MAX_REPLY_BYTES = 1024 * 1024
GRANTED = (0, 1)  # PKIStatus granted, grantedWithMods


class TimestampError(Exception):
    """A token that does not verify; the message names the first failed check."""


@dataclass(frozen=True, slots=True)
class TimestampResult:
    """Outcome of asking the configured TSAs: a token, or pending with the reason."""

    status: Literal["granted", "pending"]
    token: bytes | None = None
    tsa_url: str | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """What a verified token says: when, by whom (serial and policy), over which imprint."""

    gen_time: datetime
    serial_number: int
    policy: str
    hash_algorithm: str
    imprint: str
    nonce: int | None


# ---------------------------------------------------------------------------------------------
# Asking a TSA


def request_token(data: bytes, urls: Sequence[str], timeout: float = 10.0) -> TimestampResult:
    """Time-stamp ``data`` (its SHA-256 goes to the TSA, never the data) at the first TSA that answers.

    Every configured URL is tried in order; a reply is accepted only when it is granted, carries
    our nonce and the SHA-256 imprint of ``data``. No URL configured, or none answering properly,
    gives ``pending`` with the reasons (one per URL).
    """
    if not urls:
        return TimestampResult("pending", error="no time-stamp authority configured")
    from rfc3161_client import HashAlgorithm, TimestampRequestBuilder

    request = TimestampRequestBuilder().data(data).hash_algorithm(HashAlgorithm.SHA256).build()
    reasons = []
    for url in urls:
        try:
            token = _ask(url, request.as_bytes(), timeout)
            _check_reply(token, hashlib.sha256(data).digest(), request.nonce)
        except (TimestampError, OSError, ValueError) as exc:
            reason = _reason(exc)
            log.warning("time-stamp authority %s: %s", url, printable(reason))
            reasons.append(f"{url}: {reason}")
            continue
        log.info("time-stamp granted by %s", url)
        return TimestampResult("granted", token=token, tsa_url=url)
    return TimestampResult("pending", error="; ".join(reasons))


def _ask(url: str, query: bytes, timeout: float) -> bytes:
    if not url.startswith(("http://", "https://")):
        msg = "TSA URL must be http:// or https://"
        raise ValueError(msg)
    request = urllib.request.Request(  # noqa: S310 (scheme checked above)
        url,
        data=query,
        method="POST",
        headers={"Content-Type": CONTENT_TYPE_QUERY, "Accept": CONTENT_TYPE_REPLY},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        body = response.read(MAX_REPLY_BYTES + 1)
    if len(body) > MAX_REPLY_BYTES:
        msg = "TSA reply larger than 1 MiB"
        raise TimestampError(msg)
    return bytes(body)


def _check_reply(token: bytes, imprint: bytes, nonce: int | None) -> None:
    """Reject a reply that is not granted, is for other data or answers another request."""
    response = _decode(token)
    _check_status(response)
    _check_imprint(response, imprint)
    if nonce is not None:
        _check_nonce(response, nonce)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code}"
    if isinstance(exc, urllib.error.URLError):
        return f"unreachable ({exc.reason})"
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__


# ---------------------------------------------------------------------------------------------
# Verifying a token


def load_certificates(pem: bytes) -> list[Certificate]:
    """Every certificate in a PEM bundle (a root, or a root followed by the TSA's chain)."""
    from cryptography import x509

    try:
        return list(x509.load_pem_x509_certificates(pem))
    except ValueError as exc:
        msg = "the roots file holds no readable PEM certificate"
        raise TimestampError(msg) from exc


def verify_token(
    token: bytes,
    data: bytes,
    roots: Sequence[Certificate] | bytes,
    *,
    intermediates: Sequence[Certificate] = (),
    nonce: int | None = None,
) -> TokenInfo:
    """Check that ``token`` time-stamps ``data`` and is signed by a TSA chaining to ``roots``.

    Checks, in order: the reply is a granted RFC 3161 response, its message imprint is the hash
    of ``data``, its nonce is ``nonce`` (when given), and its signature chains to one of
    ``roots`` through a certificate with the critical ``timeStamping`` key purpose. Raises
    :class:`TimestampError` naming the first failed check; returns what the token says.
    """
    response = _decode(token)
    _check_status(response)
    algorithm, digest = _digest_for(response, data)
    _check_imprint(response, digest)
    if nonce is not None:
        _check_nonce(response, nonce)
    _check_signature(response, digest, _as_certs(roots), intermediates)
    info = response.tst_info
    return TokenInfo(
        gen_time=info.gen_time,
        serial_number=info.serial_number,
        policy=info.policy.dotted_string,
        hash_algorithm=algorithm,
        imprint=digest.hex(),
        nonce=info.nonce,
    )


def token_imprint_matches(token: bytes, data: bytes) -> bool:
    """Whether ``token`` is over ``data`` (no trust check: for reports made without roots)."""
    response = _decode(token)
    _algorithm, digest = _digest_for(response, data)
    return bool(response.tst_info.message_imprint.message == digest)


def token_time(token: bytes) -> datetime:
    """The TSA's generation time written in ``token`` (unverified)."""
    return _decode(token).tst_info.gen_time


def _decode(token: bytes) -> TimeStampResponse:
    from rfc3161_client import decode_timestamp_response

    try:
        return decode_timestamp_response(token)
    except (ValueError, TypeError) as exc:
        msg = "not a DER-encoded RFC 3161 time-stamp response"
        raise TimestampError(msg) from exc


def _check_status(response: TimeStampResponse) -> None:
    if response.status not in GRANTED:
        msg = f"TSA did not grant the time-stamp (PKIStatus {response.status})"
        raise TimestampError(msg)


_ALGORITHMS = {
    "2.16.840.1.101.3.4.2.1": "sha256",
    "2.16.840.1.101.3.4.2.2": "sha384",
    "2.16.840.1.101.3.4.2.3": "sha512",
}


def _digest_for(response: TimeStampResponse, data: bytes) -> tuple[str, bytes]:
    oid = response.tst_info.message_imprint.hash_algorithm.dotted_string
    name = _ALGORITHMS.get(oid)
    if name is None:
        msg = f"unsupported message imprint hash algorithm {oid}"
        raise TimestampError(msg)
    return name, hashlib.new(name, data).digest()


def _check_imprint(response: TimeStampResponse, digest: bytes) -> None:
    found = response.tst_info.message_imprint.message
    if found != digest:
        msg = (
            f"message imprint mismatch: the token is over {found.hex()[:16]}…, "
            f"the data hashes to {digest.hex()[:16]}… (the data or the token was changed)"
        )
        raise TimestampError(msg)


def _check_nonce(response: TimeStampResponse, nonce: int) -> None:
    found = response.tst_info.nonce
    if found != nonce:
        msg = (
            f"nonce mismatch: expected {nonce}, token carries {found} (a replayed or foreign reply)"
        )
        raise TimestampError(msg)


def _check_signature(
    response: TimeStampResponse,
    digest: bytes,
    roots: Sequence[Certificate],
    intermediates: Sequence[Certificate],
) -> None:
    from rfc3161_client import VerificationError, VerifierBuilder

    if not roots:
        msg = "no trusted root certificate given"
        raise TimestampError(msg)
    verifier = VerifierBuilder(roots=list(roots), intermediates=list(intermediates)).build()
    try:
        verifier.verify(response, digest)
    except VerificationError as exc:
        msg = f"signature does not chain to the given roots: {exc}"
        raise TimestampError(msg) from exc


def _as_certs(roots: Sequence[Certificate] | bytes) -> list[Certificate]:
    return load_certificates(roots) if isinstance(roots, bytes) else list(roots)


# ---------------------------------------------------------------------------------------------
# The nightly job


def stamp_pending(ctx: Any) -> list[dict[str, Any]]:
    """Time-stamp every pending checkpoint at the configured TSAs; one result dict per checkpoint.

    With no TSA configured nothing is contacted and nothing changes (offline by default). A
    checkpoint the TSAs could not stamp stays ``pending`` and is retried on the next run; one
    already granted is never asked again, so running this twice is harmless.
    """
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from verification.ledger.models import Checkpoint

    urls = list(ctx.settings.tsa_urls)
    with Session(ctx.engine) as session:
        pending = list(
            session.scalars(
                select(Checkpoint).where(Checkpoint.tsa_status == "pending").order_by(Checkpoint.id)
            )
        )
    if not urls:
        log.info("no time-stamp authority configured: %s checkpoint(s) stay pending", len(pending))
        return []
    return [_stamp_one(ctx, cp, urls) for cp in pending]


def _stamp_one(ctx: Any, checkpoint: Any, urls: Sequence[str]) -> dict[str, Any]:
    from sqlalchemy import update
    from sqlalchemy.orm import Session

    from verification.ledger.checkpoints import checkpoint_message
    from verification.ledger.models import Checkpoint

    message = checkpoint_message(checkpoint.created_at, checkpoint.root, len(checkpoint.heads))
    result = request_token(message, urls)
    if result.status == "granted":
        with Session(ctx.engine) as session, session.begin():
            session.execute(
                update(Checkpoint)
                .where(Checkpoint.id == checkpoint.id, Checkpoint.tsa_status == "pending")
                .values(tsa_status="granted", tsa_token=result.token, tsa_url=result.tsa_url)
            )
    return {
        "checkpoint": checkpoint.id,
        "status": result.status,
        "tsa_url": result.tsa_url,
        "error": result.error,
    }
