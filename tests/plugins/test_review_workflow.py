"""The analyst's workflow in the review app: cases as submitted, review state, comparison,
search and lookup, forms that survive a token refresh (real Airflow JWTs, real SQLite)."""

from __future__ import annotations

import itertools
import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.plugins.evidence_fixtures import LAGOS, Evidence, build_evidence
from verification.ledger.custody import CustodyEvent, verify_chain

ORIGIN = "http://testserver"
CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]{64})"')
LAGOS_NOTE = "seen on a Lagos channel"


@pytest.fixture(scope="module")
def evidence(tmp_path_factory: pytest.TempPathFactory) -> Evidence:
    """The five photos, the Kyiv photo sent again to case-lagos with a Lagos claim (recycled
    media), and a smaller, recompressed copy of the plain photo (a near-duplicate)."""
    from verification import pipeline
    from verification.core.claims import Claims
    from verification.media.samples import jpeg, scene
    from verification.pipeline.submission import submit_file

    root = tmp_path_factory.mktemp("workflow")
    evidence = build_evidence(root / "home")
    again = root / "kyiv-again.jpg"
    again.write_bytes(evidence.originals["kyiv"])
    when = datetime(2024, 3, 14, 9, tzinfo=UTC)
    claims = Claims("case-lagos", "Lagos Witness", LAGOS[0], LAGOS[1], when, None, LAGOS_NOTE)
    submit_file(evidence.ctx.store, again, claims)
    copy = root / "plain-copy.jpg"
    copy.write_bytes(jpeg(scene(4, size=(640, 480)).resize((320, 240)), quality=60))
    evidence.items["copy"] = submit_file(evidence.ctx.store, copy, Claims("case-b", "dave")).sha256
    pipeline.ingest(evidence.ctx, workers=1)
    return evidence


def token_of(client: Any, path: str) -> str:
    page = client.get(path)
    assert page.status_code == 200, page.text
    match = CSRF.search(page.text)
    assert match
    return match.group(1)


def post(client: Any, path: str, data: dict[str, str]) -> Any:
    return client.post(path, data=data, headers={"Origin": ORIGIN})


def queue(client: Any, query: str) -> list[str]:
    response = client.get(f"/?{query}")
    assert response.status_code == 200, response.text
    return re.findall(r'<a class="mono" href="/item/([0-9a-f]{64})">', response.text)


# ---------------------------------------------------------------------------------------------
# Cases as submitted


def test_resubmitted_item_belongs_to_both_cases(make_client: Any, evidence: Evidence) -> None:
    """The Kyiv photo sent again to case-lagos is in case-lagos's queue and page, with that
    case's submitter, filename and claim gap."""
    client = make_client("viewer")
    kyiv = evidence.items["kyiv"]
    assert queue(client, "case=case-lagos") == [kyiv]
    assert kyiv in queue(client, "case=case-a")
    page = client.get("/?case=case-lagos").text
    assert "Lagos Witness" in page
    assert "kyiv-again.jpg" in page
    assert re.search(r"\d{3,4}\.\d km", page), "the Lagos claim is thousands of km away"
    assert ">2 / 2<" in page.replace(" ", "").replace("/", " / ")
    case = client.get("/case/case-lagos").text
    assert re.search(r"1 item submitted to this case", case)
    assert "kyiv-again.jpg" in case
    assert 'value="case-lagos"' in client.get("/").text
    cases = client.get(f"/item/{kyiv}").text
    cases = cases[cases.index('id="item-cases"') :][:400]
    assert 'href="/case/case-a"' in cases and 'href="/case/case-lagos"' in cases


def test_export_with_other_cases_needs_a_choice(make_client: Any, evidence: Evidence) -> None:
    """Exporting case-lagos warns that case-a's submitter and claims would go along, and an
    export without a choice is refused before anything is recorded."""
    client = make_client("analyst")
    page = client.get("/case/case-lagos").text
    assert 'id="other-cases-warning"' in page
    assert "case-a" in page[page.index('id="other-cases-warning"') :]
    before = len(evidence.ctx.ledger.events(evidence.items["kyiv"]))
    token = token_of(client, "/case/case-lagos")
    response = post(client, "/cases/case-lagos/export", {"format": "html", "csrf_token": token})
    assert response.status_code == 400
    assert "choose to include them or leave them out" in response.text
    assert len(evidence.ctx.ledger.events(evidence.items["kyiv"])) == before


def test_export_leaving_other_cases_out(make_client: Any, evidence: Evidence) -> None:
    """A JSON report without other cases names neither case-a nor its submitter and claims;
    the withheld events still link the chain; included, they are there."""
    client = make_client("analyst")
    token = token_of(client, "/case/case-lagos")
    fields = {"format": "json", "csrf_token": token}
    omitted = post(client, "/cases/case-lagos/export", {**fields, "other_cases": "omit"})
    assert omitted.status_code == 200, omitted.text
    text = omitted.text
    assert "alice" not in text and "incoming/case-a" not in text
    assert LAGOS_NOTE in text and "Lagos Witness" in text
    entry = omitted.json()["items"][0]
    withheld = [e for e in entry["custody"] if "withheld" in e["detail"]]
    assert withheld, "the case-a ingestion is withheld"
    chain = [CustodyEvent.from_dict(e) for e in entry["custody"]]
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(chain))
    included = post(client, "/cases/case-lagos/export", {**fields, "other_cases": "include"})
    assert "alice" in included.text
    keys = {k["key_id"]: k["pem"] for k in included.json()["public_keys"]}
    full = [CustodyEvent.from_dict(e) for e in included.json()["items"][0]["custody"]]
    assert verify_chain(entry["sha256"], full, keys) is None


def test_html_report_without_other_cases(make_client: Any) -> None:
    """The HTML report left without other cases names none of their submitters."""
    client = make_client("analyst")
    token = token_of(client, "/case/case-lagos")
    response = post(
        client,
        "/cases/case-lagos/export",
        {"format": "html", "other_cases": "omit", "csrf_token": token},
    )
    assert response.status_code == 200
    assert "alice" not in response.text and "Lagos Witness" in response.text
    assert "withheld: concerns a submission to another case" in response.text


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"format": "bagit", "other_cases": "omit"}, "cannot leave out"),
        ({"format": "json", "other_cases": "some"}, "other_cases must be one of"),
    ],
)
def test_impossible_export_choices_are_refused(
    make_client: Any, fields: dict[str, str], message: str
) -> None:
    """A package cannot withhold events, and the choice has two values only."""
    client = make_client("analyst")
    token = token_of(client, "/case/case-lagos")
    response = post(client, "/cases/case-lagos/export", {**fields, "csrf_token": token})
    assert response.status_code == 400
    assert message in response.text


# ---------------------------------------------------------------------------------------------
# Review state


def decide(client: Any, sha: str, decision: str) -> None:
    token = token_of(client, f"/item/{sha}")
    response = post(
        client,
        f"/item/{sha}/decision",
        {"decision": decision, "note": f"{decision} after checks", "csrf_token": token},
    )
    assert response.status_code == 303, response.text


def test_decision_select_starts_empty(make_client: Any, evidence: Evidence) -> None:
    """No decision is preselected: a careless click records nothing."""
    page = make_client("analyst").get(f"/item/{evidence.items['hostile']}").text
    select = page[
        page.index('id="decision"') : page.index("</select>", page.index('id="decision"'))
    ]
    assert '<option value="" selected>' in select
    assert select.count("selected") == 1


def test_review_filters_and_reviewed_count(make_client: Any, evidence: Evidence) -> None:
    """Decided items leave "undecided"; two analysts with different decisions are "disputed";
    the case page counts reviewed items; the queue shows the decision in force."""
    analyst, admin = make_client("analyst"), make_client("admin")
    lagos = evidence.items["lagos"]
    decide(analyst, lagos, "verified")
    assert lagos in queue(analyst, "review=decided")
    assert lagos not in queue(analyst, "review=undecided")
    assert lagos not in queue(analyst, "review=disagree")
    decide(admin, lagos, "rejected")
    assert lagos in queue(analyst, "review=disagree")
    row = analyst.get("/?review=disagree").text
    assert "<strong>rejected</strong>" in row and "analysts disagree" in row
    assert re.search(
        r"reviewed <strong id=\"reviewed\">[1-9]\d* of 3", analyst.get("/case/case-a").text
    )
    decide(analyst, lagos, "rejected")
    assert lagos not in queue(analyst, "review=disagree")


def test_comment_is_its_own_event_and_searchable(make_client: Any, evidence: Evidence) -> None:
    """A comment is a review event that is not a decision; its text is found by search."""
    client = make_client("analyst")
    item = evidence.items["plain"]
    token = token_of(client, f"/item/{item}")
    response = post(
        client, f"/item/{item}/comment", {"note": "Ask Carol for the raw file", "csrf_token": token}
    )
    assert response.status_code == 303
    last = evidence.ctx.ledger.events(item)[-1]
    assert last.type == "review" and last.detail["action"] == "comment"
    assert evidence.ctx.ledger.verify(item).ok
    page = client.get(f"/item/{item}").text
    assert "Ask Carol for the raw file" in page[page.index('id="remarks"') :]
    assert "No decision yet." in page
    assert item in queue(client, "review=undecided")
    assert queue(client, "q=carol+for+the+RAW") == [item]


def test_empty_comment_is_refused(make_client: Any, evidence: Evidence) -> None:
    """A comment needs text; nothing is recorded without it."""
    client = make_client("analyst")
    item = evidence.items["plain"]
    before = len(evidence.ctx.ledger.events(item))
    token = token_of(client, f"/item/{item}")
    response = post(client, f"/item/{item}/comment", {"note": "  ", "csrf_token": token})
    assert response.status_code == 400
    assert len(evidence.ctx.ledger.events(item)) == before


def test_assignment_and_mine_filter(make_client: Any, evidence: Evidence) -> None:
    """An item assigned to the analyst is in their "mine" queue, not in the admin's."""
    analyst, admin = make_client("analyst"), make_client("admin")
    item = evidence.items["hostile"]
    token = token_of(analyst, f"/item/{item}")
    response = post(
        analyst, f"/item/{item}/assignment", {"assignee": "analyst", "csrf_token": token}
    )
    assert response.status_code == 303
    assert queue(analyst, "mine=on") == [item]
    assert item not in queue(admin, "mine=on")
    token = token_of(admin, f"/item/{item}")
    post(admin, f"/item/{item}/assignment", {"assignee": "", "csrf_token": token})
    assert item not in queue(analyst, "mine=on")
    assert evidence.ctx.ledger.events(item)[-1].detail["assignee"] is None


# ---------------------------------------------------------------------------------------------
# Side-by-side comparison


def test_comparison_from_both_sides(make_client: Any, evidence: Evidence) -> None:
    """Original and copy link to each other and compare side by side: same-size frames, the
    match, the metadata diff, both claims and the earliest copy."""
    client = make_client("viewer")
    plain, copy = evidence.items["plain"], evidence.items["copy"]
    for one, other in ((plain, copy), (copy, plain)):
        item = client.get(f"/item/{one}").text
        assert f'href="/item/{one}/compare/{other}"' in item
        page = client.get(f"/item/{one}/compare/{other}")
        assert page.status_code == 200, page.text
        text = page.text
        assert text.count('class="frame"') == 2
        assert f"/item/{one}/derivative/thumbnail.jpg" in text
        assert f"/item/{other}/derivative/thumbnail.jpg" in text
        assert 'id="metadata-diff"' in text and 'id="transform"' in text
        assert "carol" in text and "dave" in text
        assert f'href="/item/{plain}">{plain[:12]}</a>' in text[text.index('id="earliest"') :]


def test_comparison_of_unlinked_items_is_404(make_client: Any, evidence: Evidence) -> None:
    """Only linked duplicates compare."""
    client = make_client("viewer")
    response = client.get(f"/item/{evidence.items['kyiv']}/compare/{evidence.items['plain']}")
    assert response.status_code == 404


# ---------------------------------------------------------------------------------------------
# Search, lookup, paging, errors


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("submitter=ALI", "kyiv"),
        ("q=LAGOS+WITNESS", "kyiv"),
        ("q=kyiv-again", "kyiv"),
        ("q=" + "plain-copy", "copy"),
    ],
)
def test_search_is_case_insensitive(
    make_client: Any, evidence: Evidence, query: str, name: str
) -> None:
    """Submitter substring, filename and note search ignore case."""
    assert evidence.items[name] in queue(make_client("viewer"), query)


def test_hash_prefix_search_and_url(make_client: Any, evidence: Evidence) -> None:
    """A 12-character prefix (what the CLI prints) finds the item in search and in the URL."""
    client = make_client("viewer")
    item = evidence.items["lagos"]
    assert queue(client, f"q={item[:12]}") == [item]
    response = client.get(f"/item/{item[:12]}")
    assert response.status_code == 303
    assert response.headers["location"] == f"/item/{item}"
    assert client.get(f"/item/{item[:12].upper()}").headers["location"] == f"/item/{item}"
    missing = client.get(
        "/item/ffffffffffff" if not item.startswith("ffff") else "/item/0000000000"
    )
    assert missing.status_code == 404
    assert "No item starts with" in missing.text


@pytest.mark.parametrize(
    "path", ["/?page=abc", "/?page_size=lots", "/item/xyz", "/?review=maybe", "/?mine=perhaps"]
)
def test_bad_parameters_get_the_pages_own_error(make_client: Any, path: str) -> None:
    """Never FastAPI's JSON: an HTML page saying what is wrong."""
    response = make_client("viewer").get(path)
    assert response.status_code in {400, 404}
    assert response.headers["content-type"].startswith("text/html")
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.text)


def test_page_past_the_end_shows_the_last_page(make_client: Any) -> None:
    """?page=99 on a short queue shows its last page, not "page 99 of 1"."""
    text = make_client("viewer").get("/?page=99&page_size=5").text
    pages = re.search(r"page (\d+) of (\d+) · items (\d+)–(\d+) of (\d+)", text)
    assert pages and pages.group(1) == pages.group(2)
    assert pages.group(4) == pages.group(5), "the last page ends with the last item"
    assert re.findall(r'<a class="mono" href="/item/', text)
    assert 'id="first-page"' in text and 'id="last-page"' not in text


def test_sort_labels_are_words(make_client: Any) -> None:
    """The sort menu says "Newest first", not "-first_seen"."""
    text = make_client("viewer").get("/").text
    assert '<option value="-first_seen" selected>Newest first</option>' in text
    assert ">-first_seen<" not in text


def test_stale_form_keeps_the_typed_note(
    make_client: Any, evidence: Evidence, tokens: dict[str, str]
) -> None:
    """A form token from an earlier session is refused, and the note comes back to send again."""
    client = make_client("analyst")
    item = evidence.items["kyiv"]
    before = len(evidence.ctx.ledger.events(item))
    note = "Shadows point <west>; checked against the sun"
    response = post(
        client,
        f"/item/{item}/decision",
        {"decision": "disputed", "note": note, "csrf_token": "0" * 64},
    )
    assert response.status_code == 403
    assert "Shadows point &lt;west&gt;; checked against the sun</textarea>" in response.text
    assert 'value="disputed"' in response.text
    assert len(evidence.ctx.ledger.events(item)) == before
    fresh = CSRF.search(response.text)
    assert fresh
    again = post(
        client,
        f"/item/{item}/decision",
        {"decision": "disputed", "note": note, "csrf_token": fresh.group(1)},
    )
    assert again.status_code == 303
    assert evidence.ctx.ledger.events(item)[-1].detail["note"] == note


def test_cross_origin_form_is_refused_without_echo(make_client: Any, evidence: Evidence) -> None:
    """Another site's form gets a plain 403, never a page that would send it again."""
    client = make_client("analyst")
    item = evidence.items["kyiv"]
    response = client.post(
        f"/item/{item}/comment",
        data={"note": "forged", "csrf_token": "0" * 64},
        headers={"Origin": "https://evil.example"},
    )
    assert response.status_code == 403
    assert "forged" not in response.text
