"""The item page shows a red banner when the original failed its fixity check or is missing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.plugins.evidence_fixtures import Evidence, build_evidence
from verification.pipeline import fixity, vault_key
from verification.storage.local import LocalStore


@pytest.fixture(scope="module")
def evidence(tmp_path_factory: pytest.TempPathFactory) -> Evidence:
    """The plugin fixtures' items, one original tampered and one deleted, then a fixity run."""
    ev = build_evidence(tmp_path_factory.mktemp("fixity") / "home")
    store = ev.ctx.store
    assert isinstance(store, LocalStore)
    for name in ("kyiv", "lagos"):
        path = store.root / "objects" / Path(*vault_key(ev.items[name]).split("/"))
        path.chmod(0o644)
        if name == "kyiv":
            path.write_bytes(b"altered")
        else:
            path.unlink()
    fixity.check_all(ev.ctx, "night-1")
    return ev


def _page(airflow_home: dict[str, str], tokens: dict[str, str], ev: Evidence, name: str) -> str:
    from evidence_review.app import build_app
    from fastapi.testclient import TestClient

    with TestClient(build_app(lambda: ev.ctx), follow_redirects=False) as client:
        client.cookies.set("_token", tokens["viewer"])
        response = client.get(f"/item/{ev.items[name]}")
        assert response.status_code == 200
        return str(response.text)


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("kyiv", "Fixity failure: the preserved original no longer matches its SHA-256"),
        ("lagos", "Fixity missing: the preserved original is missing from the vault"),
    ],
)
def test_item_page_shows_the_fixity_banner(
    airflow_home: dict[str, str], tokens: dict[str, str], evidence: Evidence, name: str, words: str
) -> None:
    """A damaged or missing original is announced in a red banner above everything else."""
    text = _page(airflow_home, tokens, evidence, name)
    assert 'id="fixity-banner"' in text and 'class="badge bad"' in text
    assert words in text


def test_intact_item_has_no_banner(
    airflow_home: dict[str, str], tokens: dict[str, str], evidence: Evidence
) -> None:
    """An original that passed its check shows no banner."""
    assert 'id="fixity-banner"' not in _page(airflow_home, tokens, evidence, "hostile")


def test_queue_shows_fixity_and_filters_the_damaged_originals(
    airflow_home: dict[str, str], tokens: dict[str, str], evidence: Evidence
) -> None:
    """The queue has a fixity column and a filter: "failed or missing" lists exactly the tampered
    and the deleted original; an unknown filter value is the page's own 400, not JSON."""
    import re

    from evidence_review.app import build_app
    from fastapi.testclient import TestClient

    with TestClient(build_app(lambda: evidence.ctx), follow_redirects=False) as client:
        client.cookies.set("_token", tokens["viewer"])
        failed = client.get("/?fixity=failed")
        assert failed.status_code == 200
        listed = set(re.findall(r'<a class="mono" href="/item/([0-9a-f]{64})">', failed.text))
        assert listed == {evidence.items["kyiv"], evidence.items["lagos"]}
        assert 'id="fixity-filter"' in failed.text
        assert '<option value="failed" selected>' in failed.text
        everything = client.get("/").text
        assert re.search(
            r'<td class="fixity"><span class="badge sev-critical"[^>]*>failure<', everything
        )
        assert re.search(
            r'<td class="fixity"><span class="badge sev-critical"[^>]*>missing<', everything
        )
        verified = client.get("/?fixity=success").text
        assert evidence.items["kyiv"] not in verified and evidence.items["hostile"] in verified
        bad = client.get("/?fixity=whatever")
        assert bad.status_code == 400
        assert bad.headers["content-type"].startswith("text/html")
        assert "fixity must be one of failed, success, not-run" in bad.text
