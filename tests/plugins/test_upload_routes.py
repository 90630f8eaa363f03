"""The "Submit evidence" routes under real Airflow authentication, against moto's S3 over HTTP.

The test plays the browser: it hashes, asks for signed requests and sends the bytes to the S3
server itself with ``requests``. What moto enforces is tested as it is: it stores the checksum a
request carries and computes a multipart object's composite checksum from the bytes it received,
but it does not refuse a body that does not match its checksum header (S3 and MinIO answer
``BadDigest``); so a corrupted part is caught at completion (the composite differs) and a
corrupted single PUT by the pipeline's checksummed read.
"""

from __future__ import annotations

import base64
import hashlib
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.helpers import init_context, make_settings, photo
from verification import pipeline
from verification.pipeline import Context, uploads
from verification.storage import open_store
from verification.storage.s3 import S3Store

pytestmark = pytest.mark.integration

ORIGIN = "http://testserver"
CSRF = re.compile(r'data-csrf="([0-9a-f]{64})"')
MIB = 1024 * 1024


def _s3_context(tmp_path: Path, s3_server: str, **settings: Any) -> Context:
    """What `evidence init --create-bucket` sets up: a fresh versioned moto bucket, the SQLite
    ledger in tmp and the key pinned in the store."""
    config = make_settings(
        tmp_path / "home",
        store="s3",
        s3_bucket=f"up-{uuid.uuid4().hex[:12]}",
        s3_endpoint_url=s3_server,
        s3_region="us-east-1",
        **settings,
    )
    store = open_store(config)
    assert isinstance(store, S3Store)
    store.ensure_bucket(versioning=True)
    return init_context(config, store=store)


@pytest.fixture
def s3_ctx(tmp_path: Path, s3_server: str) -> Iterator[Context]:
    """A pipeline context on a fresh moto bucket (SQLite ledger in tmp)."""
    ctx = _s3_context(tmp_path, s3_server)
    yield ctx
    ctx.engine.dispose()


@pytest.fixture
def client(airflow_home: dict[str, str], tokens: dict[str, str], s3_ctx: Context) -> Iterator[Any]:
    """The analyst's TestClient on the review app, with the page's CSRF token in its headers."""
    from evidence_review.app import build_app
    from fastapi.testclient import TestClient

    with TestClient(build_app(lambda: s3_ctx), follow_redirects=False) as test_client:
        test_client.cookies.set("_token", tokens["analyst"])
        page = test_client.get("/submit")
        assert page.status_code == 200, page.text
        match = CSRF.search(page.text)
        assert match
        test_client.headers.update({"Origin": ORIGIN, "x-csrf-token": match.group(1)})
        yield test_client


CLAIMS = {
    "case": "case-up",
    "submitter": "witness-7",
    "location": "50.4501,30.5234",
    "time": "2024-03-14T09:30:00+02:00",
}


def _start(client: Any, **claims: str) -> str:
    response = client.post("/submit/api/start", json={**CLAIMS, **claims})
    assert response.status_code == 200, response.text
    return str(response.json()["reference"])


def _plan(client: Any, reference: str, name: str, data: bytes) -> dict[str, Any]:
    file = {"name": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    response = client.post(
        "/submit/api/file", json={**CLAIMS, "reference": reference, "file": file}
    )
    assert response.status_code == 200, response.text
    plan: dict[str, Any] = response.json()
    return plan


def _b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def _send_parts(client: Any, plan: dict[str, Any], data: bytes, corrupt: int = 0) -> list[str]:
    size, checksums = plan["part_size"], []
    for number in range(1, plan["parts"] + 1):
        chunk = data[(number - 1) * size : number * size]
        checksums.append(_b64(chunk))
        signed = client.post(
            "/submit/api/part",
            json={"token": plan["token"], "number": number, "checksum": checksums[-1]},
        ).json()
        body = chunk[:-1] + bytes([chunk[-1] ^ 1]) if number == corrupt else chunk
        sent = requests.put(signed["url"], data=body, headers=signed["headers"], timeout=30)
        assert sent.status_code == 200, sent.text
    return checksums


def _video(size: int) -> bytes:
    """Bytes of a video-sized file (the store and the upload do not look inside)."""
    seed = photo(4)
    return (seed * (size // len(seed) + 1))[:size]


def _keys(ctx: Context, prefix: str = "incoming/") -> list[str]:
    return [info.key for info in ctx.store.list(prefix)]


def test_page_needs_the_review_permission(
    airflow_home: dict[str, str], tokens: dict[str, str], s3_ctx: Context
) -> None:
    """Viewers get 403 on the page and on every call; nothing is signed for them."""
    from evidence_review.app import build_app
    from fastapi.testclient import TestClient

    with TestClient(build_app(lambda: s3_ctx)) as viewer:
        viewer.cookies.set("_token", tokens["viewer"])
        assert viewer.get("/submit").status_code == 403
        answer = viewer.post("/submit/api/start", json=CLAIMS, headers={"Origin": ORIGIN})
        assert answer.status_code == 403


def test_page_csp_allows_only_own_scripts_and_the_store(client: Any, s3_server: str) -> None:
    """Scripts from this server only, requests to this server and the store only."""
    page = client.get("/submit")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert f"connect-src 'self' {s3_server}" in csp
    assert "default-src 'none'" in csp
    sources = re.findall(r'<script src="([^"]+)"', page.text)
    assert sources == ["/submit/static/sha256.js", "/submit/static/upload.js"]
    assert client.get("/submit/static/upload.js").status_code == 200
    assert client.get("/submit/static/..%2Fapp.py").status_code == 404


def test_calls_without_the_csrf_header_or_from_elsewhere_are_refused(client: Any) -> None:
    """A JSON call needs the session's token in a header and this host as its origin."""
    without = client.post("/submit/api/start", json=CLAIMS, headers={"x-csrf-token": ""})
    assert without.status_code == 403
    elsewhere = client.post("/submit/api/start", json=CLAIMS, headers={"Origin": "http://evil"})
    assert elsewhere.status_code == 403


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("case", "a/b", "case id 'a/b' must be 1-100 letters, digits, '.', '_' or '-'"),
        ("location", "50.4", "claimed location must be LAT,LON in decimal degrees"),
        ("time", "soon", "claimed time is not ISO 8601: 'soon'"),
    ],
)
def test_claims_are_refused_with_the_cli_one_line_errors(
    client: Any, field: str, value: str, error: str
) -> None:
    """Each bad field answers 400 with exactly the message `evidence submit` prints."""
    answer = client.post("/submit/api/start", json={**CLAIMS, field: value})
    assert answer.status_code == 400
    assert answer.json() == {"error": error}


def test_photo_and_multipart_video_arrive_with_checksums_and_a_receipt(
    client: Any, s3_ctx: Context
) -> None:
    """A photo in one signed PUT and a two-part video: the store keeps the photo's SHA-256 and the
    video's composite checksum; the receipt lists both; ingestion records the hash at collection,
    and the receipt page shows each file's first custody event."""
    reference = _start(client)
    image, video = photo(1), _video(uploads.PART_SIZE + 3 * MIB)
    small = _plan(client, reference, "scène 1.jpg", image)
    assert small["put"] and small["parts"] == 1
    put = requests.put(small["put"]["url"], data=image, headers=small["put"]["headers"], timeout=30)
    assert put.status_code == 200, put.text
    one = client.post("/submit/api/complete", json={"token": small["token"]}).json()
    assert one["store_checksum"] == _b64(image)

    large = _plan(client, reference, "clip.mp4", video)
    assert large["put"] is None and large["parts"] == 2
    assert _keys(s3_ctx) == [small["key"]]  # nothing of the video until it is complete
    checksums = _send_parts(client, large, video)
    two = client.post(
        "/submit/api/complete", json={"token": large["token"], "checksums": checksums}
    )
    assert two.status_code == 200, two.text
    digests = b"".join(base64.b64decode(c) for c in checksums)
    assert two.json()["store_checksum"] == _b64(digests) + "-2"

    tokens = [small["token"], large["token"]]
    receipt = client.post("/submit/api/receipt", json={"tokens": tokens, "submitter": "w"}).json()
    assert receipt["receipt"] == reference
    assert [(f["name"], f["size"], f["sha256"]) for f in receipt["files"]] == [
        ("scène 1.jpg", len(image), hashlib.sha256(image).hexdigest()),
        ("clip.mp4", len(video), hashlib.sha256(video).hexdigest()),
    ]
    download = client.get(f"/submit/receipt/{reference}.json")
    assert download.json() == receipt
    assert "attachment" in download.headers["content-disposition"]
    assert "not ingested yet" in client.get(f"/submit/receipt/{reference}").text

    outcomes = pipeline.ingest(s3_ctx, workers=1)
    photo_outcome = next(o for o in outcomes if o.key == small["key"])
    assert "collection-hash-mismatch" not in photo_outcome.findings
    first = s3_ctx.ledger.events(hashlib.sha256(image).hexdigest())[0]
    assert first.type == "ingestion"
    assert first.detail["receipt"]["reference"] == reference
    assert first.detail["collection_sha256"] == "sha256:" + hashlib.sha256(image).hexdigest()
    page = client.get(f"/submit/receipt/{reference}").text
    assert first.hash in page and "not ingested yet" not in page


def test_corrupted_part_is_refused_and_nothing_is_submitted(client: Any, s3_ctx: Context) -> None:
    """A part whose bytes differ from its signed SHA-256: completing answers 409, the object is
    withdrawn and nothing stays under incoming/ (S3 itself would refuse the part, moto keeps it)."""
    reference = _start(client)
    video = _video(uploads.PART_SIZE + MIB)
    plan = _plan(client, reference, "clip.mp4", video)
    checksums = _send_parts(client, plan, video, corrupt=2)
    answer = client.post(
        "/submit/api/complete", json={"token": plan["token"], "checksums": checksums}
    )
    assert answer.status_code == 409
    assert answer.json()["error"] == (
        "clip.mp4: the store's checksum differs from the browser's part hashes"
    )
    assert _keys(s3_ctx) == []


def test_corrupted_single_put_never_reaches_the_vault(client: Any, s3_ctx: Context) -> None:
    """moto stores a PUT whose body differs from its signed checksum; the pipeline's checksummed
    read refuses it: the submission fails with why, and the vault stays empty."""
    reference = _start(client)
    image = photo(2)
    plan = _plan(client, reference, "a.jpg", image)
    bad = image[:-1] + b"\x00"
    assert requests.put(plan["put"]["url"], data=bad, headers=plan["put"]["headers"], timeout=30).ok
    (outcome,) = pipeline.ingest(s3_ctx, workers=1)
    assert outcome.failed
    assert "FlexibleChecksumError" in (outcome.error or "")
    assert _keys(s3_ctx, "vault/") == []


def test_cancel_discards_the_parts_and_leaves_nothing(client: Any, s3_ctx: Context) -> None:
    """Cancelling after one of two parts: no object under incoming/, no open multipart upload."""
    reference = _start(client)
    video = _video(uploads.PART_SIZE + MIB)
    plan = _plan(client, reference, "clip.mp4", video)
    chunk = video[: plan["part_size"]]
    signed = client.post(
        "/submit/api/part", json={"token": plan["token"], "number": 1, "checksum": _b64(chunk)}
    ).json()
    assert requests.put(signed["url"], data=chunk, headers=signed["headers"], timeout=30).ok
    assert client.post("/submit/api/parts", json={"token": plan["token"]}).json() == {"done": [1]}
    incomplete = client.post(
        "/submit/api/complete", json={"token": plan["token"], "checksums": [_b64(chunk)] * 2}
    )
    assert incomplete.status_code == 400
    assert "parts 2 are not in the store yet" in incomplete.json()["error"]
    assert client.post("/submit/api/abort", json={"token": plan["token"]}).status_code == 200
    store = s3_ctx.store
    assert isinstance(store, S3Store)
    assert _keys(s3_ctx) == []
    assert not store.client.list_multipart_uploads(Bucket=store.bucket).get("Uploads")


def test_same_file_again_is_already_received_and_a_tampered_token_refused(
    client: Any, s3_ctx: Context
) -> None:
    """The same bytes under the same name are not sent twice; a token changed in the browser is
    refused with one line."""
    image = photo(3)
    first = _plan(client, _start(client), "a.jpg", image)
    assert requests.put(
        first["put"]["url"], data=image, headers=first["put"]["headers"], timeout=30
    ).ok
    again = _plan(client, _start(client), "a.jpg", image)
    assert again["already"] and again["key"] == first["key"]
    done = client.post("/submit/api/complete", json={"token": again["token"]}).json()
    assert done["sha256"] == hashlib.sha256(image).hexdigest()
    forged = again["token"][:-4] + "0000"
    answer = client.post("/submit/api/complete", json={"token": forged})
    assert answer.status_code == 400
    assert answer.json() == {"error": "upload token is not valid; start the upload again"}


def test_public_url_signs_for_the_host_browsers_reach(
    airflow_home: dict[str, str], tokens: dict[str, str], tmp_path: Path, s3_server: str
) -> None:
    """With EVIDENCE_S3_PUBLIC_URL the page allows that origin and signs requests for it (the
    services may know the store by another name, as in docker-compose); the PUT is accepted."""
    from evidence_review.app import build_app
    from fastapi.testclient import TestClient

    public = s3_server.replace("127.0.0.1", "localhost")
    ctx = _s3_context(tmp_path, s3_server, s3_public_url=public)
    with TestClient(build_app(lambda: ctx)) as test_client:
        test_client.cookies.set("_token", tokens["analyst"])
        page = test_client.get("/submit")
        assert f"connect-src 'self' {public}" in page.headers["content-security-policy"]
        test_client.headers.update(
            {"Origin": ORIGIN, "x-csrf-token": CSRF.search(page.text).group(1)}  # type: ignore[union-attr]
        )
        image = photo(5)
        plan = _plan(test_client, _start(test_client), "p.jpg", image)
        assert plan["put"]["url"].startswith(f"{public}/")
        sent = requests.put(
            plan["put"]["url"], data=image, headers=plan["put"]["headers"], timeout=30
        )
        assert sent.status_code == 200, sent.text
        assert (
            test_client.post("/submit/api/complete", json={"token": plan["token"]}).status_code
            == 200
        )
    ctx.engine.dispose()


def test_case_access_limits_what_a_user_may_submit_to_and_read(
    airflow_home: dict[str, str], tokens: dict[str, str], tmp_path: Path, s3_server: str
) -> None:
    """With ``case_access`` set, the analyst (role "user", mapped to case-lagos) is offered and
    may submit to case-lagos only; another case is refused with a one-line error, and a receipt
    of another case's submission is not found for them while the admin reads it."""
    from evidence_review.app import build_app
    from fastapi.testclient import TestClient

    ctx = _s3_context(tmp_path, s3_server, case_access={"user": ["case-lagos"], "Admin": ["*"]})
    clients = {}
    try:
        for user in ("analyst", "admin"):
            test_client = TestClient(build_app(lambda: ctx), follow_redirects=False)
            test_client.cookies.set("_token", tokens[user])
            page = test_client.get("/submit")
            assert page.status_code == 200, page.text
            match = CSRF.search(page.text)
            assert match
            test_client.headers.update({"Origin": ORIGIN, "x-csrf-token": match.group(1)})
            clients[user] = (test_client, page.text)
        analyst, page = clients["analyst"]
        assert "You may submit to these cases only: case-lagos" in page
        admin, admin_page = clients["admin"]
        assert 'id="case-scope"' not in admin_page

        refused = analyst.post("/submit/api/start", json=CLAIMS)
        assert refused.status_code == 400
        assert refused.json() == {
            "error": "case 'case-up' is not one of the cases you may submit to"
        }
        file = {"name": "a.jpg", "size": 3, "sha256": "0" * 64}
        planned = analyst.post("/submit/api/file", json={**CLAIMS, "reference": "x", "file": file})
        assert planned.status_code == 400 and _keys(ctx) == []
        assert _start(analyst, case="case-lagos").startswith("EV-")

        reference = _start(admin)
        image = photo(2)
        plan = _plan(admin, reference, "p.jpg", image)
        put = requests.put(
            plan["put"]["url"], data=image, headers=plan["put"]["headers"], timeout=30
        )
        assert put.status_code == 200, put.text
        assert admin.post("/submit/api/complete", json={"token": plan["token"]}).status_code == 200
        receipt = admin.post("/submit/api/receipt", json={"tokens": [plan["token"]]})
        assert receipt.status_code == 200, receipt.text
        assert admin.get(f"/submit/receipt/{reference}").status_code == 200
        assert analyst.get(f"/submit/receipt/{reference}").status_code == 404
        assert analyst.get(f"/submit/receipt/{reference}.json").status_code == 404
    finally:
        for test_client, _ in clients.values():
            test_client.close()
        ctx.engine.dispose()
