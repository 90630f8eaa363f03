"""Per-case access: an operator's mapping of Airflow roles to cases, enforced on every route.

SimpleAuthManager roles: ``analyst`` holds "user" (mapped to case-lagos only), ``admin`` holds
"admin" (every case), ``viewer`` holds "viewer" (not mapped: sees nothing).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.plugins.evidence_fixtures import LAGOS, Evidence, build_evidence

ORIGIN = "http://testserver"
CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]{64})"')
ACCESS = {"user": ["case-lagos"], "Admin": ["*"]}


@pytest.fixture(scope="module")
def evidence(tmp_path_factory: pytest.TempPathFactory) -> Evidence:
    """The five photos with case access configured; the Kyiv photo sent again to case-lagos."""
    from verification import pipeline
    from verification.core.claims import Claims
    from verification.pipeline.submission import submit_file

    root = tmp_path_factory.mktemp("access")
    evidence = build_evidence(root / "home", case_access=ACCESS)
    again = root / "kyiv-again.jpg"
    again.write_bytes(evidence.originals["kyiv"])
    when = datetime(2024, 3, 14, 9, tzinfo=UTC)
    claims = Claims("case-lagos", "Lagos Witness", LAGOS[0], LAGOS[1], when)
    submit_file(evidence.ctx.store, again, claims)
    pipeline.ingest(evidence.ctx, workers=1)
    return evidence


def listed(client: Any, query: str = "") -> list[str]:
    response = client.get(f"/?{query}")
    assert response.status_code == 200, response.text
    return re.findall(r'<a class="mono" href="/item/([0-9a-f]{64})">', response.text)


def token_of(client: Any, path: str) -> str:
    match = CSRF.search(client.get(path).text)
    assert match
    return match.group(1)


def test_queue_lists_only_the_users_cases(make_client: Any, evidence: Evidence) -> None:
    """The analyst sees case-lagos's item only, and only case-lagos in the case menu."""
    analyst = make_client("analyst")
    assert listed(analyst) == [evidence.items["kyiv"]]
    page = analyst.get("/").text
    assert 'value="case-lagos"' in page and "case-a" not in page
    assert "Lagos Witness" in page and "alice" not in page and "kyiv.jpg" not in page
    case = analyst.get("/case/case-lagos").text
    assert "case-a" not in case and "1 case you may not see" in case
    assert listed(analyst, f"q={evidence.items['lagos'][:12]}") == []
    assert analyst.get("/?case=case-a").status_code == 404


def test_unmapped_role_sees_nothing_and_admin_everything(
    make_client: Any, evidence: Evidence
) -> None:
    """No mapped role: an empty queue; "*": every item."""
    assert listed(make_client("viewer")) == []
    assert len(listed(make_client("admin"), "page_size=200")) == len(evidence.items)


@pytest.mark.parametrize(
    "path",
    [
        "/item/{lagos}",
        "/item/{lagos12}",
        "/item/{lagos}/derivative/thumbnail.jpg",
        "/case/case-a",
    ],
)
def test_other_cases_pages_are_404(make_client: Any, evidence: Evidence, path: str) -> None:
    """An item or case outside the user's cases answers as if it did not exist."""
    lagos = evidence.items["lagos"]
    url = path.format(lagos=lagos, lagos12=lagos[:12])
    assert make_client("analyst").get(url).status_code == 404


@pytest.mark.parametrize("action", ["decision", "comment", "assignment", "original"])
def test_actions_on_other_cases_items_are_404(
    make_client: Any, evidence: Evidence, action: str
) -> None:
    """No decision, comment, assignment or download on an item the user may not see."""
    analyst = make_client("analyst")
    item = evidence.items["lagos"]
    before = len(evidence.ctx.ledger.events(item))
    token = token_of(analyst, f"/item/{evidence.items['kyiv']}")
    fields = {
        "csrf_token": token,
        "decision": "verified",
        "note": "n",
        "assignee": "analyst",
        "purpose": "p",
    }
    response = analyst.post(f"/item/{item}/{action}", data=fields, headers={"Origin": ORIGIN})
    assert response.status_code == 404
    assert len(evidence.ctx.ledger.events(item)) == before


def test_shared_item_shows_only_the_users_cases(make_client: Any, evidence: Evidence) -> None:
    """The Kyiv photo in case-lagos: the Lagos submission is shown, case-a's is withheld, also
    in the custody timeline."""
    text = make_client("analyst").get(f"/item/{evidence.items['kyiv']}").text
    assert "Lagos Witness" in text
    assert "alice" not in text and "case-a" not in text
    assert "withheld: a submission to a case you may not see" in text
    admin = make_client("admin").get(f"/item/{evidence.items['kyiv']}").text
    assert "alice" in admin and "withheld" not in admin


def test_export_cannot_include_cases_the_user_may_not_see(
    make_client: Any, evidence: Evidence
) -> None:
    """Exporting case-lagos with other cases included is refused; without them it works."""
    analyst = make_client("analyst")
    token = token_of(analyst, "/case/case-lagos")
    fields = {"format": "json", "csrf_token": token}
    included = analyst.post(
        "/cases/case-lagos/export",
        data={**fields, "other_cases": "include"},
        headers={"Origin": ORIGIN},
    )
    assert included.status_code == 403
    omitted = analyst.post(
        "/cases/case-lagos/export",
        data={**fields, "other_cases": "omit"},
        headers={"Origin": ORIGIN},
    )
    assert omitted.status_code == 200
    assert "alice" not in omitted.text
    refused = analyst.post(
        "/cases/case-a/export", data={**fields, "other_cases": "omit"}, headers={"Origin": ORIGIN}
    )
    assert refused.status_code == 404
