"""dags/evidence_nightly.py against an attacker: an unreadable original and planted objects fail
the run (they once left it green), and an untouched collection still passes."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from tests.dags.conftest import Evidence
from tests.helpers import photo
from verification.pipeline import ingest, vault_key
from verification.storage.local import LocalStore

pytestmark = [pytest.mark.airflow, pytest.mark.integration]


def _ingest(ev: Evidence, count: int) -> list[str]:
    for seed in range(1, count + 1):
        ev.submit(f"photo{seed}.jpg", photo(60 + seed))
    assert all(o.status != "failed" for o in ingest(ev.ctx, workers=1))
    return [s.sha256 for s in ev.submitted]


def test_untouched_collection_passes_with_custody_verified(local_evidence: Evidence) -> None:
    """Fixity, untracked, overdue and custody checks all pass on an untouched collection."""
    _ingest(local_evidence, 2)
    result = local_evidence.run("evidence_nightly")
    assert result.state == "success", result.output[-3000:]


def test_unreadable_original_and_planted_objects_fail_the_run(local_evidence: Evidence) -> None:
    """A symlink loop in the vault (not-run) and objects no item owns (untracked) fail the run,
    and the failure says which."""
    ev = local_evidence
    victim, _other = _ingest(ev, 2)
    assert isinstance(ev.store, LocalStore)
    path = ev.store.root / "objects" / Path(*vault_key(victim).split("/"))
    path.chmod(0o644)
    path.unlink()
    os.symlink(path.name, path)
    future = "ef" * 32
    ev.store.put(vault_key(future), io.BytesIO(b"planted"))

    result = ev.run("evidence_nightly")

    assert result.state == "failed", result.output[-3000:]
    assert "1 original(s) could not be checked (not-run)" in result.output
    assert "that no item owns (untracked)" in result.output
    assert "custody verification failure(s)" in result.output


def test_nightly_makes_the_views_intake_did_not(local_evidence: Evidence) -> None:
    """Items recorded without views (ingested directly, as before views existed) get them from
    the nightly run, each recorded with a creation event before the checkpoint; a second run
    makes none."""
    from verification.pipeline import views as item_views

    ev = local_evidence
    items = _ingest(ev, 2)
    assert sorted(item_views.missing_views(ev.ctx)) == sorted(items)

    result = ev.run("evidence_nightly")

    assert result.state == "success", result.output[-3000:]
    assert item_views.missing_views(ev.ctx) == []
    for sha in items:
        view = item_views.recorded_view(ev.ctx, sha, item_views.VIEW_NAMES["image"])
        assert view is not None and view["outcome"] == "success", view
    again = ev.run("evidence_nightly")
    assert again.state == "success", again.output[-3000:]
    assert "views backfill: {}" in again.output
