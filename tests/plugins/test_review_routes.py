"""The review app's routes under real Airflow authentication (SimpleAuthManager JWTs)."""

from __future__ import annotations

import hashlib
import html
import io
import logging
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.plugins.evidence_fixtures import KYIV, LAGOS, XSS, Evidence, build_evidence
from verification.ledger.custody import verify_chain
from verification.ledger.models import Event, Item, Record

ORIGIN = "http://testserver"
CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]{64})"')


@pytest.fixture(scope="module")
def evidence(tmp_path_factory: pytest.TempPathFactory) -> Evidence:
    """Five processed items in two cases (one hostile), shared read-mostly by this module."""
    return build_evidence(tmp_path_factory.mktemp("evidence") / "home")


@pytest.fixture
def make_client(airflow_home: dict[str, str], tokens: dict[str, str], evidence: Evidence) -> Any:
    """A TestClient factory: ``make_client("analyst")``, or ``make_client(None)`` for anonymous."""
    from evidence_review.app import build_app
    from fastapi.testclient import TestClient

    clients: list[Any] = []

    def make(user: str | None, ctx: Any = None) -> Any:
        app = build_app(lambda: ctx or evidence.ctx)
        client = TestClient(app, follow_redirects=False)
        if user:
            client.cookies.set("_token", tokens[user])
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def sha(evidence: Evidence, name: str) -> str:
    return evidence.items[name]


def event_count(evidence: Evidence) -> int:
    with Session(evidence.ctx.engine) as session:
        return session.scalar(select(func.count()).select_from(Event)) or 0


def db_snapshot(evidence: Evidence) -> tuple[Any, ...]:
    with Session(evidence.ctx.engine) as session:
        events = session.execute(select(Event.id, Event.hash).order_by(Event.id)).all()
        items = session.execute(select(Item.sha256, Item.status).order_by(Item.sha256)).all()
        records = session.scalar(select(func.count()).select_from(Record))
    return tuple(events), tuple(items), records


def csrf_of(client: Any, path: str) -> str:
    page = client.get(path)
    assert page.status_code == 200, page.text
    match = CSRF.search(page.text)
    assert match, "page has no CSRF token"
    return match.group(1)


def csrf_for(token: str) -> str:
    """The form token the app derives for a session token (for users shown no form)."""
    from evidence_review import security
    from starlette.requests import Request

    scope = {"type": "http", "headers": [(b"cookie", f"_token={token}".encode())]}
    return security.csrf_token(Request(scope), security.airflow_secret())


def post(client: Any, path: str, data: dict[str, str], **headers: str) -> Any:
    return client.post(path, data=data, headers={"Origin": ORIGIN, **headers})


def routes(evidence: Evidence) -> list[tuple[str, str]]:
    item = sha(evidence, "kyiv")
    return [
        ("GET", "/"),
        ("GET", "/?case=case-a&status=consistent"),
        ("GET", f"/item/{item}"),
        ("GET", f"/item/{item}/derivative/thumbnail.jpg"),
        ("GET", "/case/case-a"),
        ("POST", f"/item/{item}/decision"),
        ("POST", f"/item/{item}/original"),
        ("POST", "/cases/case-a/export"),
    ]


# ---------------------------------------------------------------------------------------------
# Authentication and permissions


def test_every_route_refuses_anonymous_with_401(make_client: Any, evidence: Evidence) -> None:
    """Without an Airflow token every route answers 401 and writes nothing."""
    client = make_client(None)
    before = event_count(evidence)
    for method, path in routes(evidence):
        response = client.request(method, path, headers={"Origin": ORIGIN})
        assert response.status_code == 401, (method, path)
        assert "Log in" in response.text
    assert event_count(evidence) == before


def test_forged_token_is_refused(make_client: Any, evidence: Evidence) -> None:
    """A token not signed by Airflow's secret is refused (Airflow answers 403 for it)."""
    client = make_client(None)
    client.cookies.set("_token", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZG1pbiJ9.forged")
    assert client.get("/").status_code in {401, 403}


def test_bearer_token_authenticates_like_the_cookie(
    make_client: Any, tokens: dict[str, str]
) -> None:
    """API clients authenticate with ``Authorization: Bearer`` as on Airflow's own API."""
    client = make_client(None)
    response = client.get("/", headers={"Authorization": f"Bearer {tokens['viewer']}"})
    assert response.status_code == 200


def test_viewer_reads_queue_item_and_case_without_forms(
    make_client: Any, evidence: Evidence
) -> None:
    """A viewer sees every page but gets no decision, download or export form."""
    client = make_client("viewer")
    item = client.get(f"/item/{sha(evidence, 'kyiv')}")
    assert item.status_code == 200
    assert 'id="decision-form"' not in item.text
    assert 'id="download-original"' not in item.text
    assert "may read this item but not record decisions" in item.text
    case = client.get("/case/case-a")
    assert case.status_code == 200
    assert "<form" not in case.text.split("<h2>Export</h2>")[1]
    assert "may read this case but not export it" in case.text


@pytest.mark.parametrize(
    ("path", "data"),
    [
        ("decision", {"decision": "verified", "note": "looks right"}),
        ("original", {"purpose": "curiosity"}),
    ],
)
def test_viewer_actions_are_forbidden(
    make_client: Any, evidence: Evidence, tokens: dict[str, str], path: str, data: dict[str, str]
) -> None:
    """A viewer's decision or download POST gets 403, even with a valid CSRF token."""
    client = make_client("viewer")
    item = sha(evidence, "kyiv")
    token = csrf_for(tokens["viewer"])  # a valid token: only the permission is missing
    before = event_count(evidence)
    response = post(client, f"/item/{item}/{path}", {**data, "csrf_token": token})
    assert response.status_code == 403
    assert event_count(evidence) == before


def test_viewer_export_is_forbidden(
    make_client: Any, evidence: Evidence, tokens: dict[str, str]
) -> None:
    """A viewer's export POST gets 403, even with a valid CSRF token, and records nothing."""
    client = make_client("viewer")
    before = event_count(evidence)
    data = {"format": "json", "csrf_token": csrf_for(tokens["viewer"])}
    response = post(client, "/cases/case-a/export", data)
    assert response.status_code == 403
    assert event_count(evidence) == before


# ---------------------------------------------------------------------------------------------
# Queue: filters, sorting, paging


def queue_shas(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return re.findall(r'href="/item/([0-9a-f]{64})"', response.text)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", {"kyiv", "lagos", "hostile", "plain", "broken"}),
        ("case=case-b", {"plain", "broken"}),
        ("status=inconsistent", {"lagos"}),
        ("finding=location-contradicts-claim", {"lagos"}),
        ("submitter=carol", {"plain", "broken"}),
        ("case=case-a&status=consistent", {"kyiv", "hostile"}),
        ("since=2000-01-01&until=2999-12-31", {"kyiv", "lagos", "hostile", "plain", "broken"}),
        ("until=2000-01-01", set()),
    ],
)
def test_queue_filters(
    make_client: Any, evidence: Evidence, query: str, expected: set[str]
) -> None:
    """Each filter narrows the queue to the matching items."""
    shas = queue_shas(make_client("viewer").get(f"/?{query}"))
    assert set(shas) == {sha(evidence, n) for n in expected}


def test_queue_pages_do_not_overlap(make_client: Any, evidence: Evidence) -> None:
    """Page size 2 over five items gives pages of 2, 2, 1 that together list each item once."""
    client = make_client("viewer")
    pages = [queue_shas(client.get(f"/?page_size=2&page={n}&sort=first_seen")) for n in (1, 2, 3)]
    assert [len(p) for p in pages] == [2, 2, 1]
    assert sorted(sha for page in pages for sha in page) == sorted(evidence.items.values())
    first = client.get("/?page_size=2&page=1&sort=first_seen&case=case-a")
    assert "page 1 of 2" in first.text
    assert 'rel="next" href="?case=case-a&amp;sort=first_seen&amp;page_size=2&amp;page=2"' in (
        first.text
    )


def test_queue_sorts_by_first_seen_both_ways(make_client: Any) -> None:
    """Ascending and descending first_seen give reversed orders."""
    client = make_client("viewer")
    ascending = queue_shas(client.get("/?sort=first_seen"))
    descending = queue_shas(client.get("/?sort=-first_seen"))
    assert ascending == list(reversed(descending))


def test_queue_shows_finding_badges(make_client: Any) -> None:
    """Warning and critical findings appear as badges, coloured by severity."""
    text = make_client("viewer").get("/").text
    assert (
        '<span class="badge sev-critical" title="critical">location-contradicts-claim</span>'
        in (text)
    )


@pytest.mark.parametrize("query", ["sort=sha256;drop", "since=yesterday", "page_size=5000"])
def test_queue_rejects_bad_parameters(make_client: Any, query: str) -> None:
    """An unknown sort, a malformed date or an oversized page is a 400, not a crash."""
    assert make_client("viewer").get(f"/?{query}").status_code == 400


# ---------------------------------------------------------------------------------------------
# Item page


def test_item_page_shows_facts_comparison_map_and_verified_chain(
    make_client: Any, evidence: Evidence
) -> None:
    """Hashes, metadata, claimed vs observed with distance, offline map, verified timeline."""
    item = sha(evidence, "lagos")
    text = make_client("viewer").get(f"/item/{item}").text
    assert item in text
    assert hashlib.sha1(evidence.originals["lagos"]).hexdigest() in text
    assert 'id="chain-badge">custody chain verified' in text
    assert f"{KYIV[0]:.5f}, {KYIV[1]:.5f}" in text  # claimed
    assert f"{LAGOS[0]:.5f}, {LAGOS[1]:.5f} (exif)" in text  # observed
    assert "km between claim and file" in text
    assert "location-contradicts-claim" in text
    assert '<svg class="map"' in text
    assert '<details id="raw-tags">' in text
    assert f'src="/item/{item}/derivative/thumbnail.jpg"' in text
    assert "ingestion" in text


def test_map_makes_no_outside_request_by_default(make_client: Any, evidence: Evidence) -> None:
    """Without tile_url no element points outside: only relative image sources, strict CSP."""
    response = make_client("viewer").get(f"/item/{sha(evidence, 'lagos')}")
    sources = re.findall(r'(?:src|href)="([^"]*)"', response.text)
    assert sources and all(s.startswith(("/", "?", "#")) for s in sources), sources
    csp = response.headers["content-security-policy"]
    assert "img-src 'self'" in csp and "http" not in csp


def test_configured_tile_server_renders_a_tile(
    make_client: Any, evidence: Evidence, tmp_path: Path
) -> None:
    """With tile_url set, one tile image is shown and its origin allowed by the CSP."""
    template = "https://tiles.example.org/{z}/{x}/{y}.png"
    ctx = evidence.ctx
    tiled = type(ctx)(ctx.settings.model_copy(update={"tile_url": template}), ctx.store, ctx.ledger)
    response = make_client("viewer", tiled).get(f"/item/{sha(evidence, 'lagos')}")
    assert re.search(r'<img src="https://tiles\.example\.org/12/\d+/\d+\.png"', response.text)
    assert "img-src 'self' https://tiles.example.org" in response.headers["content-security-policy"]


def test_near_duplicates_listed_earliest_first(tmp_path: Path, make_client: Any) -> None:
    """A resized, recompressed copy lists the earlier original with its thumbnail and distance."""
    from verification import pipeline
    from verification.core.claims import Claims
    from verification.media.samples import jpeg, scene
    from verification.pipeline.submission import submit_file

    evidence = build_evidence(tmp_path / "home")
    copy = tmp_path / "copy.jpg"
    # The same scene as the "plain" photo (seed 4), smaller and recompressed, without EXIF.
    copy.write_bytes(jpeg(scene(4, size=(640, 480)).resize((320, 240)), quality=60))
    copied = submit_file(evidence.ctx.store, copy, Claims("case-b", "dave")).sha256
    pipeline.ingest(evidence.ctx, workers=1)
    text = make_client("viewer", evidence.ctx).get(f"/item/{copied}").text
    table = text[text.index('id="duplicates"') :]
    assert f'href="/item/{evidence.items["plain"]}"' in table
    assert f'src="/item/{evidence.items["plain"]}/derivative/thumbnail.jpg"' in table


def test_unknown_item_is_404_and_malformed_sha_rejected(make_client: Any) -> None:
    """A well-formed but unknown SHA-256 is 404; anything else never reaches the store."""
    client = make_client("viewer")
    assert client.get(f"/item/{'0' * 64}").status_code == 404
    assert client.get("/item/..%2F..%2Fetc").status_code in {404, 422}
    assert client.get(f"/item/{'0' * 64}/derivative/thumbnail.jpg").status_code == 404


def test_derivative_serves_thumbnail_only(make_client: Any, evidence: Evidence) -> None:
    """Thumbnails come back as JPEG; names not listed in the record are 404."""
    client = make_client("viewer")
    item = sha(evidence, "kyiv")
    thumb = client.get(f"/item/{item}/derivative/thumbnail.jpg")
    assert thumb.status_code == 200
    assert thumb.headers["content-type"] == "image/jpeg"
    assert thumb.content.startswith(b"\xff\xd8")
    assert client.get(f"/item/{item}/derivative/original.jpg").status_code == 404


# ---------------------------------------------------------------------------------------------
# Escaping


def test_hostile_exif_and_claims_render_escaped(make_client: Any, evidence: Evidence) -> None:
    """EXIF Make ``<script>`` and HTML in claims appear as text, never as markup."""
    text = make_client("viewer").get(f"/item/{sha(evidence, 'hostile')}").text
    assert XSS not in text
    assert html.escape(XSS, quote=False) in text
    assert "<b>bold</b>" not in text
    assert "&lt;b&gt;bold&lt;/b&gt;" in text
    assert "<img src=x" not in text
    assert "&lt;img src=x onerror=&#34;alert(3)&#34;&gt;" in text
    assert 'href="javascript:' not in text


def test_pages_forbid_scripts_and_framing_by_others(make_client: Any) -> None:
    """Every page's CSP allows no script at all and framing by Airflow's own origin only."""
    response = make_client("viewer").get("/")
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp
    assert "frame-ancestors 'self'" in csp
    assert response.headers["x-content-type-options"] == "nosniff"


# ---------------------------------------------------------------------------------------------
# Decisions


def test_decision_creates_signed_event_that_verifies(make_client: Any, evidence: Evidence) -> None:
    """A decision becomes a ``review`` event by the Airflow user, the chain still verifies."""
    client = make_client("analyst")
    item = sha(evidence, "lagos")
    token = csrf_of(client, f"/item/{item}")
    response = post(
        client,
        f"/item/{item}/decision",
        {"decision": "disputed", "note": "GPS says Lagos", "csrf_token": token},
    )
    assert response.status_code == 303
    assert response.headers["location"] == f"/item/{item}#decisions"
    last = evidence.ctx.ledger.events(item)[-1]
    assert last.type == "review"
    assert dict(last.detail) == {
        "action": "decision",
        "decision": "disputed",
        "note": "GPS says Lagos",
        "analyst": "analyst",
    }
    assert {"type": "person", "name": "analyst"} in [dict(a) for a in last.agents]
    assert evidence.ctx.ledger.verify(item).ok
    page = client.get(f"/item/{item}").text
    assert "GPS says Lagos" in page
    assert "(in force)" in page


def test_reversal_is_a_new_event(make_client: Any, evidence: Evidence) -> None:
    """Deciding twice leaves both events; the later one is in force."""
    client = make_client("admin")
    item = sha(evidence, "plain")
    for decision in ("rejected", "verified"):
        token = csrf_of(client, f"/item/{item}")
        data = {"decision": decision, "note": f"now {decision}", "csrf_token": token}
        assert post(client, f"/item/{item}/decision", data).status_code == 303
    reviews = [e for e in evidence.ctx.ledger.events(item) if e.type == "review"]
    assert [e.detail["decision"] for e in reviews[-2:]] == ["rejected", "verified"]
    history = client.get(f"/item/{item}").text
    assert history.index("now verified") < history.index("now rejected")


@pytest.mark.parametrize(
    "data",
    [
        {"decision": "verified", "note": ""},
        {"decision": "verified", "note": "   "},
        {"decision": "authentic", "note": "not a decision we make"},
        {"decision": "verified", "note": "x" * 4001},
    ],
)
def test_invalid_decision_is_400_and_writes_nothing(
    make_client: Any, evidence: Evidence, data: dict[str, str]
) -> None:
    """An empty or too long note, or an unknown decision, is refused."""
    client = make_client("analyst")
    item = sha(evidence, "kyiv")
    token = csrf_of(client, f"/item/{item}")
    before = event_count(evidence)
    assert post(client, f"/item/{item}/decision", {**data, "csrf_token": token}).status_code == 400
    assert event_count(evidence) == before


# ---------------------------------------------------------------------------------------------
# CSRF


@pytest.mark.parametrize(
    ("headers", "token"),
    [
        ({}, "own"),  # no Origin, no Referer
        ({"Origin": "https://evil.example"}, "own"),
        ({"Origin": "null"}, "own"),
        ({"Referer": "https://evil.example/item"}, "own"),
        ({"Origin": ORIGIN}, None),  # token missing
        ({"Origin": ORIGIN}, "viewer"),  # someone else's session token
        ({"Origin": ORIGIN}, "0" * 64),
    ],
)
def test_csrf_failures_are_rejected(
    make_client: Any,
    evidence: Evidence,
    tokens: dict[str, str],
    headers: dict[str, str],
    token: str | None,
) -> None:
    """Cross-origin posts and posts without this session's token are refused with 403."""
    client = make_client("analyst")
    item = sha(evidence, "kyiv")
    forms = {"own": csrf_of(client, f"/item/{item}"), "viewer": csrf_for(tokens["viewer"])}
    data = {"decision": "verified", "note": "forged"}
    if token is not None:
        data["csrf_token"] = forms.get(token, token)
    before = event_count(evidence)
    response = client.post(f"/item/{item}/decision", data=data, headers=headers)
    assert response.status_code == 403
    assert event_count(evidence) == before


def test_same_origin_referer_is_accepted_without_origin(
    make_client: Any, evidence: Evidence
) -> None:
    """Browsers that send only a Referer still pass the same-origin check."""
    client = make_client("analyst")
    item = sha(evidence, "kyiv")
    token = csrf_of(client, f"/item/{item}")
    data = {"decision": "needs-more-work", "note": "ask for the video", "csrf_token": token}
    response = client.post(
        f"/item/{item}/decision", data=data, headers={"Referer": f"{ORIGIN}/item/{item}"}
    )
    assert response.status_code == 303


def test_get_never_changes_state(make_client: Any, evidence: Evidence) -> None:
    """Visiting every page (and sending GET to the action URLs) writes nothing."""
    client = make_client("admin")
    before = db_snapshot(evidence)
    for method, path in routes(evidence):
        response = client.get(path)
        assert response.status_code == (200 if method == "GET" else 405), path
    assert db_snapshot(evidence) == before


# ---------------------------------------------------------------------------------------------
# Originals, cases, exports


def test_download_original_records_access_then_streams_bytes(
    make_client: Any, evidence: Evidence
) -> None:
    """The original comes back byte-identical as an attachment, after an ``access`` event."""
    client = make_client("analyst")
    item = sha(evidence, "kyiv")
    token = csrf_of(client, f"/item/{item}")
    response = post(
        client, f"/item/{item}/original", {"purpose": "court filing", "csrf_token": token}
    )
    assert response.status_code == 200
    assert hashlib.sha256(response.content).hexdigest() == item
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["content-disposition"] == f'attachment; filename="{item}.jpeg"'
    access = evidence.ctx.ledger.events(item)[-1]
    assert access.type == "access"
    assert access.detail["analyst"] == "analyst"
    assert access.detail["purpose"] == "court filing"


def test_download_without_purpose_is_refused(make_client: Any, evidence: Evidence) -> None:
    """No purpose, no original (and no event)."""
    client = make_client("analyst")
    item = sha(evidence, "kyiv")
    token = csrf_of(client, f"/item/{item}")
    before = event_count(evidence)
    assert post(client, f"/item/{item}/original", {"csrf_token": token}).status_code == 400
    assert event_count(evidence) == before


def test_case_page_counts_statuses_and_findings(make_client: Any) -> None:
    """The case page counts items per status and per finding code."""
    text = make_client("viewer").get("/case/case-a").text
    assert "3 items" in text
    assert re.search(r"st-consistent\">consistent</span></a></td><td class=\"num\">2<", text)
    assert re.search(r"location-contradicts-claim</span></a></td><td class=\"num\">1<", text)
    assert make_client("viewer").get("/case/no-such-case").status_code == 404


def export(client: Any, case: str, **fields: str) -> Any:
    """POST the case page's export form with ``fields`` (format, redact)."""
    token = csrf_of(client, "/case/case-b")
    return post(client, f"/cases/{case}/export", {**fields, "csrf_token": token})


def assert_exported(evidence: Evidence, names: list[str], fmt: str, since: dict[str, int]) -> None:
    """Each item got one new ``export`` event, by the Airflow user, and its chain verifies."""
    for name in names:
        events = evidence.ctx.ledger.events(sha(evidence, name))
        exports = [e for e in events if e.seq > since[name] and e.type == "export"]
        assert len(exports) == 1, name
        assert exports[0].detail["format"] == fmt
        assert exports[0].detail["case"] == "case-b"
        assert exports[0].detail["destination"] == "download from the review UI"
        assert {"type": "person", "name": "analyst"} in [dict(a) for a in exports[0].agents]
        assert evidence.ctx.ledger.verify(sha(evidence, name)).ok


def heads(evidence: Evidence, names: list[str]) -> dict[str, int]:
    """The sequence number of each item's last event (to find the events added after it)."""
    return {n: evidence.ctx.ledger.events(sha(evidence, n))[-1].seq for n in names}


CASE_B = ["plain", "broken"]


def test_export_html_is_the_report_as_an_attachment(make_client: Any, evidence: Evidence) -> None:
    """format=html sends the self-contained report, named after the export, as a download."""
    client = make_client("analyst")
    before = heads(evidence, CASE_B)
    response = export(client, "case-b", format="html")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert re.fullmatch(
        r'attachment; filename="case-b-[0-9T-]+-[0-9a-f]{8}\.html"',
        response.headers["content-disposition"],
    )
    assert int(response.headers["content-length"]) == len(response.content)
    assert "<title>Case case-b: evidence report</title>" in response.text
    for name in CASE_B:
        assert sha(evidence, name) in response.text
    assert_exported(evidence, CASE_B, "html", before)


def test_export_json_is_the_export_document(make_client: Any, evidence: Evidence) -> None:
    """format=json sends the export document with every item and its verifying chain."""
    client = make_client("analyst")
    before = heads(evidence, CASE_B)
    response = export(client, "case-b", format="json")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["content-disposition"].endswith('.json"')
    body = response.json()
    assert body["export"]["analyst"] == "analyst"
    assert {entry["sha256"] for entry in body["items"]} == {sha(evidence, n) for n in CASE_B}
    keys = {k["key_id"]: k["pem"] for k in body["public_keys"]}
    from verification.ledger.custody import CustodyEvent

    for entry in body["items"]:
        chain = [CustodyEvent.from_dict(e) for e in entry["custody"]]
        assert verify_chain(entry["sha256"], chain, keys) is None
    assert_exported(evidence, CASE_B, "json", before)


def test_export_bagit_is_a_zipped_bag_that_verifies(
    make_client: Any, evidence: Evidence, tmp_path: Path
) -> None:
    """format=bagit sends a .zip of the bag directory; unzipped, verify-export accepts it."""
    from verification.exports.verify import verify_export

    client = make_client("analyst")
    before = heads(evidence, CASE_B)
    response = export(client, "case-b", format="bagit", redact="on")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    filename = re.fullmatch(
        r'attachment; filename="(case-b-[0-9T-]+-[0-9a-f]{8})\.zip"',
        response.headers["content-disposition"],
    )
    assert filename
    bag = filename.group(1)
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        names = archive.namelist()
        assert f"{bag}/bagit.txt" in names
        assert all(n.startswith(f"{bag}/") for n in names)
        archive.extractall(tmp_path)
    report = verify_export(tmp_path / bag)
    assert report.ok, report.first_failure
    assert report.items == len(CASE_B)
    assert any(n.startswith(f"{bag}/data/redacted/") for n in names)
    assert_exported(evidence, CASE_B, "bagit", before)


def test_export_leaves_no_temporary_files(
    make_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The export's working directory is gone once the file is sent."""
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    response = export(make_client("analyst"), "case-b", format="bagit")
    assert response.status_code == 200
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("case", "fields", "code", "message"),
    [
        ("case-b", {"format": "pdf"}, 400, "format must be one of bagit, html, json"),
        ("case-b", {}, 400, "format must be one of bagit, html, json"),
        ("case-b", {"format": "html", "redact": "on"}, 400, "only part of a BagIt package"),
        ("case-b", {"format": "bagit", "redact": "maybe"}, 400, "redact must be on or off"),
        ("no-such-case", {"format": "json"}, 404, "No such case"),
        ("bad..case%20id", {"format": "json"}, 404, "No such case"),
    ],
)
def test_export_errors_show_a_message_and_record_nothing(
    make_client: Any,
    evidence: Evidence,
    case: str,
    fields: dict[str, str],
    code: int,
    message: str,
) -> None:
    """An unknown format or case, or redaction of a report, is refused before any event."""
    before = event_count(evidence)
    response = export(make_client("analyst"), case, **fields)
    assert response.status_code == code
    assert response.headers["content-type"].startswith("text/html")
    assert message in response.text
    assert event_count(evidence) == before


def test_export_without_csrf_token_is_refused(make_client: Any, evidence: Evidence) -> None:
    """An export POST without the form token is a 403 and records nothing."""
    before = event_count(evidence)
    response = post(make_client("analyst"), "/cases/case-b/export", {"format": "json"})
    assert response.status_code == 403
    assert event_count(evidence) == before


def test_old_json_export_path_is_gone(make_client: Any, evidence: Evidence) -> None:
    """The former JSON-only route no longer answers: there is one way to export."""
    client = make_client("analyst")
    token = csrf_of(client, "/case/case-b")
    before = event_count(evidence)
    response = post(client, "/case/case-b/export", {"csrf_token": token})
    assert response.status_code in {404, 405}
    assert event_count(evidence) == before


def test_case_page_offers_the_three_formats(make_client: Any) -> None:
    """An analyst sees BagIt (with the redact option), HTML and JSON export buttons."""
    text = make_client("analyst").get("/case/case-a").text
    assert 'action="/cases/case-a/export"' in text
    for button in ("export-bagit", "export-redact", "export-html", "export-json"):
        assert f'id="{button}"' in text


def test_actions_log_no_coordinates(
    make_client: Any, evidence: Evidence, caplog: pytest.LogCaptureFixture
) -> None:
    """Deciding on and downloading an item with GPS and claims logs no coordinate."""
    client = make_client("analyst")
    item = sha(evidence, "lagos")
    caplog.set_level(logging.DEBUG)
    token = csrf_of(client, f"/item/{item}")
    post(
        client, f"/item/{item}/decision", {"decision": "verified", "note": "n", "csrf_token": token}
    )
    post(client, f"/item/{item}/original", {"purpose": "p", "csrf_token": token})
    for value in (*KYIV[:2], *LAGOS[:2]):
        assert f"{value}" not in caplog.text
        assert f"{value:.5f}" not in caplog.text


# ---------------------------------------------------------------------------------------------
# Airflow integration


def test_failed_submissions_are_shown_until_a_retry_succeeds(
    make_client: Any, tmp_path: Path
) -> None:
    """A submission the pipeline could not read shows in a banner and on the problems page, per
    case, with why; once the next intake processes it, it is gone from both."""
    from tests.helpers import init_context, make_settings, photo
    from verification import pipeline
    from verification.core.claims import Claims
    from verification.pipeline.submission import submit_file

    ctx = init_context(make_settings(tmp_path / "home"))
    path = tmp_path / "lost.jpg"
    path.write_bytes(photo(90))
    key = submit_file(ctx.store, path, Claims("case-lost", "dana")).key
    stored = ctx.store.root / "objects" / key  # type: ignore[attr-defined]
    hidden = tmp_path / "hidden"
    listed = [info.key for info in pipeline.list_new(ctx)]
    stored.rename(hidden)
    assert pipeline.process_batch(ctx, listed)[0].failed
    client = make_client("viewer", ctx)

    queue = client.get("/")
    assert "1 submission could not be processed" in queue.text
    case = client.get("/case/case-lost")
    assert case.status_code == 200 and "could not be processed in this case" in case.text
    problems = client.get("/problems?case=case-lost")
    assert key in problems.text and "ObjectNotFound" in problems.text

    hidden.rename(stored)
    assert pipeline.ingest(ctx)[0].status == "consistent"
    assert "could not be processed" not in client.get("/").text
    assert "None: every submission so far was processed." in client.get("/problems").text


def test_plugin_directory_loads_exactly_the_evidence_plugin(airflow_home: dict[str, str]) -> None:
    """Airflow's directory loader finds one plugin, with the app prefix and the nav entry."""
    from airflow._shared.plugins_manager.plugins_manager import (
        _load_plugins_from_plugin_directory,
    )

    plugins, errors = _load_plugins_from_plugin_directory(
        airflow_home["AIRFLOW__CORE__PLUGINS_FOLDER"]
    )
    assert errors == {}
    assert [p.name for p in plugins] == ["evidence_review"]
    (plugin,) = plugins
    assert plugin.fastapi_apps[0]["url_prefix"] == "/evidence"
    view = plugin.external_views[0]
    assert view["href"] == "/evidence/" and view["destination"] == "nav"


@pytest.fixture
def airflow_app(
    airflow_home: dict[str, str], evidence: Evidence, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    """Airflow's whole API server app (core), with our plugin mounted from the plugins folder."""
    from airflow.api_fastapi.app import create_app, purge_cached_app
    from evidence_review import app as plugin_app
    from fastapi.testclient import TestClient

    monkeypatch.setattr(plugin_app.app.state, "contexts", plugin_app._Lazy(lambda: evidence.ctx))
    app = create_app(apps="core")
    with TestClient(app, follow_redirects=False) as client:
        yield client
    purge_cached_app()


def test_mounted_in_airflow_at_evidence(
    airflow_app: Any, tokens: dict[str, str], evidence: Evidence
) -> None:
    """Inside Airflow's app the plugin answers under /evidence, links carry the prefix."""
    assert airflow_app.get("/evidence/").status_code == 401
    airflow_app.cookies.set("_token", tokens["viewer"])
    page = airflow_app.get("/evidence/")
    assert page.status_code == 200
    assert f'href="/evidence/item/{sha(evidence, "kyiv")}"' in page.text
    listed = airflow_app.get("/api/v2/plugins").json()["plugins"]
    views = [v for p in listed for v in p["external_views"]]
    assert any(v["name"] == "Evidence" and v["href"] == "/evidence/" for v in views)
