"""verification/pipeline/views.py and `evidence views`: views made from the vault copy, stored
under derivatives/, recorded with creation events, idempotent, per-item failures recorded."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import exifread
import pytest
from PIL import Image
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.helpers import init_context, make_settings, photo
from verification import pipeline
from verification.cli.main import main
from verification.core.claims import Claims
from verification.ledger.models import Event
from verification.media import samples
from verification.pipeline import Context, derivative_key, vault_key
from verification.pipeline import views as item_views
from verification.pipeline.submission import submit_file

KYIV = (50.4501, 30.5234, 179.0)


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    """A home with a GPS-tagged photo, a PNG, the demo's video and a truncated photo, ingested."""
    context = init_context(make_settings(tmp_path / "home"))
    files = {
        "kyiv.jpg": photo(1, gps=KYIV, taken="2024:03:14 11:20:05"),
        "chart.png": _png(),
        "clip.mp4": samples.video(4),
        "broken.jpg": photo(5)[:700],
    }
    for name, data in files.items():
        path = tmp_path / name
        path.write_bytes(data)
        submit_file(context.store, path, Claims("case-1", "tester"))
    pipeline.ingest(context, workers=1)
    return context


def _png() -> bytes:
    out = io.BytesIO()
    samples.scene(2, size=(900, 600)).save(out, "PNG")
    return out.getvalue()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _by_name(ctx: Context) -> dict[str, str]:
    """Item SHA-256 by submitted file name."""
    from verification.ledger.models import Submission

    with Session(ctx.engine) as session:
        rows = session.execute(select(Submission.store_key, Submission.item_sha256))
        return {key.rsplit("/", 1)[-1]: sha for key, sha in rows if sha}


def _event_count(ctx: Context) -> int:
    with Session(ctx.engine) as session:
        return session.scalar(select(func.count()).select_from(Event)) or 0


def _vault_bytes(ctx: Context, sha: str) -> bytes:
    with ctx.store.open(vault_key(sha)) as handle:
        return handle.read()


def test_views_are_made_stored_and_recorded(ctx: Context) -> None:
    """Each photo and the video get a view under derivatives/ with a creation event naming its
    SHA-256; the JPEG's view has the original's pixels and no EXIF or GPS."""
    items = _by_name(ctx)
    missing = item_views.missing_views(ctx)
    assert set(missing) == set(items.values())
    outcomes = {o.item: o for o in item_views.make_views(ctx, missing)}
    for name in ("kyiv.jpg", "chart.png", "clip.mp4"):
        assert outcomes[items[name]].state == item_views.MADE, outcomes[items[name]]
    kyiv = items["kyiv.jpg"]
    recorded = item_views.recorded_view(ctx, kyiv, "view.jpg")
    assert recorded is not None
    key = derivative_key(kyiv, "view.jpg")
    with ctx.store.open(key) as handle:
        view = handle.read()
    assert recorded["derivative"] == key and recorded["sha256"] == _sha(view)
    assert recorded["method"] == "stripped" and recorded["removed"]["Exif"] == 1
    assert exifread.process_file(io.BytesIO(view), details=False) == {}
    original = _vault_bytes(ctx, kyiv)
    with Image.open(io.BytesIO(view)) as a, Image.open(io.BytesIO(original)) as b:
        assert a.tobytes() == b.tobytes()
    chart = item_views.recorded_view(ctx, items["chart.png"], "view.jpg")
    assert chart is not None and chart["method"] == "re-encoded"
    proxy = item_views.recorded_view(ctx, items["clip.mp4"], "proxy.webm")
    assert proxy is not None and proxy["mime"] == "video/webm" and proxy["method"] == "transcoded"
    events = [e for e in ctx.ledger.events(kyiv) if e.type == "creation"]
    assert events[-1].outcome == "success"
    assert any(a.get("name") == "evidence JPEG segment filter" for a in events[-1].agents)
    assert ctx.ledger.verify().ok


def test_corrupt_original_fails_alone_recorded_with_reason_originals_untouched(
    ctx: Context,
) -> None:
    """The truncated photo gets a failed creation event saying why; the others are made, and no
    original in the vault or under incoming/ changes."""
    items = _by_name(ctx)
    before = {sha: _sha(_vault_bytes(ctx, sha)) for sha in items.values()}
    incoming = {info.key: info.etag for info in ctx.store.list("incoming/")}
    outcomes = {o.item: o for o in item_views.make_views(ctx, items.values())}
    broken = outcomes[items["broken.jpg"]]
    assert broken.state == item_views.FAILED and "truncated" in (broken.reason or "")
    assert sum(o.state == item_views.MADE for o in outcomes.values()) == 3
    state = item_views.view_state(ctx.ledger.events(items["broken.jpg"]), "view.jpg")
    assert state is not None and state["outcome"] == "failure" and "truncated" in state["reason"]
    assert not ctx.store.exists(derivative_key(items["broken.jpg"], "view.jpg"))
    assert {sha: _sha(_vault_bytes(ctx, sha)) for sha in items.values()} == before
    assert before == {sha: sha for sha in items.values()}
    assert {info.key: info.etag for info in ctx.store.list("incoming/")} == incoming


def test_second_run_adds_nothing(ctx: Context) -> None:
    """Run twice: the same objects, no new event, the failed item not retried by --missing."""
    item_views.make_views(ctx, item_views.missing_views(ctx))
    count = _event_count(ctx)
    assert item_views.missing_views(ctx) == []
    again = item_views.make_views(ctx, _by_name(ctx).values())
    assert {o.state for o in again} == {item_views.RECORDED, item_views.FAILED}
    assert _event_count(ctx) == count  # the same failure is recorded once
    retried = item_views.missing_views(ctx, retry_failed=True)
    assert retried == [_by_name(ctx)["broken.jpg"]]


def test_view_stored_but_not_recorded_is_recorded_as_stored(ctx: Context) -> None:
    """A run that stored a view and stopped before its event: the next records the stored
    object (its own SHA-256), never rewriting it."""
    kyiv = _by_name(ctx)["kyiv.jpg"]
    key = derivative_key(kyiv, "view.jpg")
    earlier = b"\xff\xd8 an earlier run's bytes \xff\xd9"
    ctx.store.put(key, io.BytesIO(earlier), if_absent=True)
    outcome = item_views.make_view(ctx, kyiv)
    assert outcome is not None and outcome.state == item_views.STORED
    recorded = item_views.recorded_view(ctx, kyiv, "view.jpg")
    assert recorded is not None and recorded["sha256"] == _sha(earlier)


def test_vault_copy_that_no_longer_matches_gives_no_view(ctx: Context) -> None:
    """A vault copy whose bytes differ from the item's SHA-256 is not shown: failure recorded."""
    kyiv = _by_name(ctx)["kyiv.jpg"]
    path = ctx.settings.resolved_store_path / "objects" / vault_key(kyiv)
    path.chmod(0o644)
    path.write_bytes(photo(9))
    outcome = item_views.make_view(ctx, kyiv)
    assert outcome is not None and outcome.state == item_views.FAILED
    assert "does not match" in (outcome.reason or "")


def test_cli_views_missing_reports_and_exits_1_on_a_failure(
    ctx: Context, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`evidence views --missing` prints each item and exits 1 because one could not be made;
    run again it has nothing left to do and exits 0."""
    monkeypatch.setenv("EVIDENCE_HOME", str(ctx.settings.home))
    assert main(["views", "--missing"]) == 1
    out = capsys.readouterr().out
    assert "failed" in out and "truncated" in out and "made: 3" in out
    assert main(["views", "--missing"]) == 0
    assert "no photo or video to view" in capsys.readouterr().out
    kyiv = _by_name(ctx)["kyiv.jpg"]
    assert main(["views", kyiv[:12]]) == 0
    assert "recorded" in capsys.readouterr().out


def test_cli_views_needs_items_or_missing(
    ctx: Context, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Neither ITEMs nor --missing is a usage error (exit 2)."""
    monkeypatch.setenv("EVIDENCE_HOME", str(ctx.settings.home))
    assert main(["views"]) == 2
    assert "ITEMs or --missing" in capsys.readouterr().err


@pytest.mark.integration
def test_views_on_s3_and_ranges_read_from_the_store(tmp_path: Path, s3_store: object) -> None:
    """On S3 (moto over HTTP) a view is stored and recorded, and a byte range of it is asked
    of the store itself (GET with Range), matching the whole object's slice."""
    from verification.storage.s3 import S3Store

    assert isinstance(s3_store, S3Store)
    context = init_context(make_settings(tmp_path / "home"), store=s3_store)
    source = tmp_path / "clip.mp4"
    source.write_bytes(samples.video(6))
    sha = submit_file(s3_store, source, Claims("case-1", "tester")).sha256
    pipeline.ingest(context, workers=1)
    (outcome,) = item_views.make_views(context, item_views.missing_views(context))
    assert outcome.state == item_views.MADE
    key = derivative_key(sha, "proxy.webm")
    with s3_store.open(key) as handle:
        whole = handle.read()
    with item_views.open_range(context, key, 10, 99) as part:
        assert part.read() == whole[10:100]
    local = init_context(make_settings(tmp_path / "local"))
    local.store.put(key, io.BytesIO(whole))
    with item_views.open_range(local, key, 10, 99) as part:
        assert part.read(90) == whole[10:100]


def test_account_views_counts_warns_and_fails_only_when_the_store_failed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """What the DAGs' views tasks report: counts per state and a warning per view that cannot
    be made; an outcome the store prevented (``error``) fails the task so that it is retried."""
    made = item_views.ViewOutcome("a" * 64, "view.jpg", item_views.MADE, size=10)
    failed = item_views.ViewOutcome("b" * 64, "proxy.webm", item_views.FAILED, "no decoder")
    with caplog.at_level("INFO", logger="verification.pipeline.views"):
        counts = item_views.account_views([made, failed], "views")
    assert counts == {"made": 1, "failed": 1}
    assert f"no proxy.webm for {'b' * 12}: no decoder" in caplog.text
    assert "views: {'made': 1, 'failed': 1}" in caplog.text

    error = item_views.ViewOutcome("c" * 64, "view.jpg", item_views.ERROR, "store down")
    with pytest.raises(item_views.ViewsIncomplete, match=r"1 view\(s\) not made.*cccccccccccc"):
        item_views.account_views([made, error], "views backfill")
