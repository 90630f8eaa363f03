"""verification/pipeline/uploads.py and the hash at collection: claims checked as the CLI checks
them, tokens, references, composite checksums, and the pipeline's comparison of the submitter's
SHA-256 with its own (ingestion event, fixity check at stage collection, finding)."""

from __future__ import annotations

import base64
import hashlib
import io
from pathlib import Path

import pytest

from tests.helpers import init_context, make_settings, photo
from verification import pipeline
from verification.core.claims import InvalidClaim
from verification.ledger.models import Item
from verification.pipeline import Context, uploads
from verification.pipeline.submission import SubmitError
from verification.storage.presigned import BrowserUploadsUnsupported, composite_sha256

SECRET = b"k" * 32


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    return init_context(make_settings(tmp_path / "home"))


def _put(ctx: Context, key: str, data: bytes, **metadata: str) -> None:
    ctx.store.put(key, io.BytesIO(data), metadata={"case-id": "case-1", **metadata})


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"case": "../x"}, "case id '../x' must be 1-100 letters"),
        ({"location": "50.1"}, "claimed location must be LAT,LON in decimal degrees"),
        ({"location": "91,0"}, "claimed location is out of range"),
        ({"location": "a,b"}, "claimed location must be two decimal numbers"),
        ({"time": "yesterday"}, "claimed time is not ISO 8601"),
    ],
)
def test_form_claims_fail_with_the_cli_messages(fields: dict[str, str], error: str) -> None:
    """Each bad field raises the one-line error `evidence submit` prints for it."""
    values = {"case": "case-1", **fields}
    with pytest.raises((SubmitError, InvalidClaim), match=error.replace("(", r"\(")):
        uploads.claims_from_form(**values)


def test_form_claims_keep_the_time_zone_offset() -> None:
    """A claimed time with an offset keeps it; location and blanks parse as the CLI does."""
    claims = uploads.claims_from_form("case-1", " ", "50.45, 30.52", "2024-03-14T09:30+02:00")
    assert claims.submitter is None
    assert (claims.lat, claims.lon) == (50.45, 30.52)
    assert claims.time is not None and claims.time.isoformat() == "2024-03-14T09:30:00+02:00"


def test_reference_is_quotable_and_checked() -> None:
    """References read EV-<date>-<8 Crockford characters>; other shapes are refused."""
    reference = uploads.new_reference()
    assert uploads.check_reference(reference) == reference
    with pytest.raises(SubmitError, match="receipt reference"):
        uploads.check_reference("EV-1-<script>")


def test_tampered_token_is_refused() -> None:
    """A token changed by the browser (another key, say) is not accepted."""
    token = uploads._sign(SECRET, {"k": "incoming/c/a", "t": 2**40})
    _body, mac = token.split(".")
    other = base64.urlsafe_b64encode(b'{"k": "vault/x", "t": 1099511627776}').decode()
    assert uploads.read_token(SECRET, token)["k"] == "incoming/c/a"
    with pytest.raises(SubmitError, match="not valid"):
        uploads.read_token(SECRET, f"{other}.{mac}")
    with pytest.raises(SubmitError, match="not valid"):
        uploads.read_token(b"other secret", token)


def test_composite_checksum_is_sha256_of_the_part_digests() -> None:
    """The composite form S3 stores for multipart objects: b64(sha256(d1 || d2)) + "-2"."""
    parts = [b"a" * 10, b"b" * 3]
    digests = [hashlib.sha256(p).digest() for p in parts]
    b64 = [base64.b64encode(d).decode() for d in digests]
    expected = base64.b64encode(hashlib.sha256(b"".join(digests)).digest()).decode()
    assert composite_sha256(b64) == f"{expected}-2"


def test_local_store_refuses_browser_uploads(ctx: Context) -> None:
    """The embedded local store cannot sign requests: one clear error, nothing written."""
    claims = uploads.claims_from_form("case-1")
    file = {"name": "a.jpg", "size": 3, "sha256": "0" * 64}
    with pytest.raises(BrowserUploadsUnsupported, match="need an S3 store"):
        uploads.plan_upload(ctx.store, SECRET, claims, uploads.new_reference(), file)
    assert not list(ctx.store.list("incoming/"))


def test_collection_hash_is_compared_and_recorded(ctx: Context) -> None:
    """A matching hash at collection: the ingestion event carries it and a fixity check at stage
    collection succeeds."""
    data = photo(1)
    sha = hashlib.sha256(data).hexdigest()
    _put(ctx, "incoming/case-1/a.jpg", data, sha256=sha)
    outcome = pipeline.process_submission(ctx, "incoming/case-1/a.jpg")
    assert "collection-hash-mismatch" not in outcome.findings
    events = ctx.ledger.events(sha)
    assert events[0].type == "ingestion"
    assert events[0].detail["collection_sha256"] == f"sha256:{sha}"
    collection = [e for e in events if e.detail.get("stage") == "collection"]
    assert [(e.type, e.outcome) for e in collection] == [("fixity check", "success")]


def test_receipt_reference_is_in_the_first_custody_event(ctx: Context) -> None:
    """The receipt's line (reference, name, size, SHA-256, time) is the item's first event."""
    data = photo(2)
    sha = hashlib.sha256(data).hexdigest()
    meta = {"sha256": sha, "receipt": "EV-20261202-ABCD1234", "submitted-name": "façade.jpg"}
    _put(ctx, "incoming/case-1/facade.jpg", data, **meta)
    pipeline.process_submission(ctx, "incoming/case-1/facade.jpg")
    first = ctx.ledger.events(sha)[0]
    receipt = first.detail["receipt"]
    assert first.type == "ingestion" and first.seq == 1
    assert receipt["reference"] == "EV-20261202-ABCD1234"
    assert (receipt["name"], receipt["size"], receipt["sha256"]) == ("façade.jpg", len(data), sha)
    assert receipt["received_at"] == first.detail["received_at"]


def test_collection_hash_mismatch_is_a_critical_finding(ctx: Context) -> None:
    """A hash at collection that is not the received bytes' hash is never silent: a critical
    finding (item inconsistent) and a failed fixity check with expected and found, kept when the
    item is reprocessed."""
    data = photo(3)
    sha = hashlib.sha256(data).hexdigest()
    wrong = hashlib.sha256(data + b"changed").hexdigest()
    _put(ctx, "incoming/case-1/b.jpg", data, sha256=wrong)
    outcome = pipeline.process_submission(ctx, "incoming/case-1/b.jpg")
    assert outcome.status == "inconsistent"
    assert "collection-hash-mismatch" in outcome.findings
    (check,) = [e for e in ctx.ledger.events(sha) if e.detail.get("stage") == "collection"]
    assert check.outcome == "failure"
    assert (check.detail["expected"], check.detail["found"]) == (f"sha256:{wrong}", f"sha256:{sha}")
    assert ctx.ledger.verify(sha).ok

    again = pipeline.reprocess_item(ctx, sha)
    assert "collection-hash-mismatch" in again.findings
    from sqlalchemy.orm import Session

    with Session(ctx.engine) as session:
        assert session.get(Item, sha).status == "inconsistent"  # type: ignore[union-attr]
