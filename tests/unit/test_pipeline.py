"""The pipeline preserves, analyses and records submissions, idempotently, and never loses data."""

from __future__ import annotations

import hashlib
import io
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.helpers import MIB, init_context, make_settings, photo, zero_png
from verification import pipeline
from verification.core.claims import Claims
from verification.ledger.models import DuplicateLink, Event, Item, Record, Submission
from verification.pipeline import Context, vault_key
from verification.pipeline.submission import submit_file
from verification.storage.local import LocalStore

KYIV = (50.4501, 30.5234, 179.0)


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    return init_context(make_settings(tmp_path / "home"))


def submit(ctx: Context, tmp_path: Path, name: str, data: bytes, **claims: object) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    case = str(claims.pop("case", "case-1"))
    return submit_file(ctx.store, path, Claims(case, **claims)).key  # type: ignore[arg-type]


def counts(ctx: Context) -> tuple[int, ...]:
    with Session(ctx.engine) as session:
        return tuple(
            session.scalar(select(func.count()).select_from(model)) or 0
            for model in (Item, Submission, Record, Event, DuplicateLink)
        )


def event_types(ctx: Context, sha: str) -> list[str]:
    return [e.type for e in ctx.ledger.events(sha)]


def test_one_photo_leaves_item_record_and_verified_chain(ctx: Context, tmp_path: Path) -> None:
    """A photo becomes an item with a record, preserved in the vault, with a verifying chain."""
    data = photo(1, taken="2024:03:14 11:20:05", offset="+02:00", gps=KYIV)
    key = submit(
        ctx,
        tmp_path,
        "a.jpg",
        data,
        lat=KYIV[0],
        lon=KYIV[1],
        time=datetime(2024, 3, 14, 9, 30, tzinfo=UTC),
    )
    outcome = pipeline.process_submission(ctx, key)
    sha = hashlib.sha256(data).hexdigest()
    assert (outcome.item, outcome.status, outcome.format) == (sha, "consistent", "jpeg")
    with ctx.store.open(vault_key(sha)) as handle:
        assert handle.read() == data
    types = event_types(ctx, sha)
    for expected in (
        "ingestion",
        "message digest calculation",
        "fixity check",
        "format identification",
        "metadata extraction",
        "creation",
        "validation",
    ):
        assert expected in types
    assert ctx.ledger.verify(sha).ok
    with Session(ctx.engine) as session:
        record = session.scalar(select(Record).where(Record.item_sha256 == sha))
        assert record is not None
        assert record.data["hashes"]["md5"] == hashlib.md5(data).hexdigest()
        assert record.data["metadata"]["make"] == "Fairphone"


def test_processing_twice_adds_nothing(ctx: Context, tmp_path: Path) -> None:
    """The same key processed again returns the same outcome and adds no rows or events."""
    key = submit(ctx, tmp_path, "a.jpg", photo(2, taken="2024:03:14 11:20:05"))
    first = pipeline.process_submission(ctx, key)
    before = counts(ctx)
    again = pipeline.process_submission(ctx, key)
    assert again == first
    assert counts(ctx) == before
    assert pipeline.list_new(ctx) == []


def test_resubmission_is_one_item_with_two_submissions(ctx: Context, tmp_path: Path) -> None:
    """Identical bytes in another case are the same item, flagged as an exact duplicate."""
    data = photo(3, taken="2024:03:14 11:20:05")
    submit(ctx, tmp_path, "a.jpg", data, case="case-1")
    submit(ctx, tmp_path, "b.jpg", data, case="case-2")
    outcomes = pipeline.ingest(ctx)
    assert len({o.item for o in outcomes}) == 1
    assert "exact-duplicate" in outcomes[-1].findings
    with Session(ctx.engine) as session:
        assert session.scalar(select(func.count()).select_from(Item)) == 1
        assert session.scalar(select(func.count()).select_from(Submission)) == 2
    assert ctx.ledger.verify().ok


def test_truncated_jpeg_is_quarantined_and_preserved(ctx: Context, tmp_path: Path) -> None:
    """A cut-off upload is kept byte for byte, marked unreadable and quarantined in the ledger."""
    data = photo(4, taken="2024:03:14 11:20:05")[:2000]
    key = submit(ctx, tmp_path, "cut.jpg", data)
    outcome = pipeline.process_submission(ctx, key)
    sha = hashlib.sha256(data).hexdigest()
    assert outcome.status == "unreadable"
    assert "unreadable" in outcome.findings
    with ctx.store.open(key) as handle:
        assert handle.read() == data  # the submission is untouched
    with ctx.store.open(vault_key(sha)) as handle:
        assert handle.read() == data
    assert ctx.ledger.verify(sha).ok


def test_garbage_file_named_jpg_is_unreadable_with_extension_mismatch(
    ctx: Context, tmp_path: Path
) -> None:
    """Bytes that are no image at all, named .jpg, are unreadable and mislabeled."""
    key = submit(ctx, tmp_path, "x.jpg", b"MZ\x90\x00 definitely not a photo " * 20)
    outcome = pipeline.process_submission(ctx, key)
    assert outcome.status == "unreadable"
    assert "extension-mismatch" in outcome.findings


def test_corrupt_vault_copy_is_never_overwritten(ctx: Context, tmp_path: Path) -> None:
    """When the vault already holds other bytes under an item's key, the item is quarantined."""
    data = photo(5, taken="2024:03:14 11:20:05")
    sha = hashlib.sha256(data).hexdigest()
    ctx.store.put(vault_key(sha), io.BytesIO(b"someone else's bytes"), if_absent=True)
    key = submit(ctx, tmp_path, "a.jpg", data)
    outcome = pipeline.process_submission(ctx, key)
    assert outcome.status == "unreadable"
    with ctx.store.open(vault_key(sha)) as handle:
        assert handle.read() == b"someone else's bytes"  # evidence of the problem is kept
    fixity = [
        e
        for e in ctx.ledger.events(sha)
        if e.type == "fixity check" and e.detail["stage"] == "preservation"
    ]
    assert fixity[0].outcome == "failure"
    assert fixity[0].detail["expected"] == f"sha256:{sha}"
    assert [e.type for e in ctx.ledger.events(sha)][-2:] == ["quarantine", "validation"]


def test_submission_that_vanishes_is_failed_and_retried(ctx: Context, tmp_path: Path) -> None:
    """A submission that cannot be read is recorded as failed and processed on the next run."""
    data = photo(6)
    key = submit(ctx, tmp_path, "a.jpg", data)
    assert isinstance(ctx.store, LocalStore)
    listed = pipeline.list_new(ctx)
    hidden = tmp_path / "hidden"
    obj = ctx.store.root / "objects" / key
    obj.rename(hidden)
    outcomes = pipeline.process_batch(ctx, [i.key for i in listed])
    assert outcomes[0].status == "failed"
    assert "ObjectNotFound" in (outcomes[0].error or "")
    hidden.rename(obj)
    retried = pipeline.ingest(ctx)
    assert [o.item for o in retried] == [hashlib.sha256(data).hexdigest()]
    with Session(ctx.engine) as session:
        subs = list(session.scalars(select(Submission).order_by(Submission.id)))
        assert [s.state for s in subs] == ["retried", "processed"]
        assert "ObjectNotFound" in (subs[0].error or "")


def test_one_bad_file_does_not_stop_a_parallel_batch(tmp_path: Path) -> None:
    """With two worker processes, a hostile file fails alone and the others are verified."""
    ctx = init_context(make_settings(tmp_path / "home", workers=2))
    submit(ctx, tmp_path, "good1.jpg", photo(7, taken="2024:03:14 11:20:05"))
    submit(ctx, tmp_path, "bad.jpg", b"\xff\xd8\xff\xe0" + b"\x00" * 50)
    submit(ctx, tmp_path, "good2.jpg", photo(8, taken="2024:03:14 11:20:05"))
    outcomes = {o.key.rsplit("/", 1)[-1]: o for o in pipeline.ingest(ctx)}
    assert outcomes["bad.jpg"].status == "unreadable"
    assert outcomes["good1.jpg"].status != "unreadable"
    assert outcomes["good2.jpg"].status != "unreadable"
    assert ctx.ledger.verify().ok


def test_invalid_claims_become_a_finding(ctx: Context, tmp_path: Path) -> None:
    """Unparsable claim metadata does not stop processing; it is reported."""
    path = tmp_path / "a.jpg"
    path.write_bytes(photo(9))
    with path.open("rb") as handle:
        ctx.store.put(
            "incoming/case-1/a.jpg",
            handle,
            metadata={"claimed-lat": "north-ish", "claimed-lon": "5"},
        )
    outcome = pipeline.process_submission(ctx, "incoming/case-1/a.jpg")
    assert "claims-invalid" in outcome.findings


def test_sidecar_claims_are_read(ctx: Context, tmp_path: Path) -> None:
    """A <name>.claims.json sidecar supplies the claims of a file uploaded without metadata."""
    data = photo(10, taken="2024:03:14 11:20:05", offset="+02:00", gps=KYIV)
    ctx.store.put("incoming/case-9/b.jpg", io.BytesIO(data))
    sidecar = b'{"case_id": "case-9", "submitter": "w", "claimed_lat": "6.5", "claimed_lon": "3.4"}'
    ctx.store.put("incoming/case-9/b.jpg.claims.json", io.BytesIO(sidecar))
    keys = [i.key for i in pipeline.list_new(ctx)]
    assert keys == ["incoming/case-9/b.jpg"]
    outcome = pipeline.process_submission(ctx, keys[0])
    assert "location-contradicts-claim" in outcome.findings


def test_near_duplicate_links_to_the_earlier_copy(ctx: Context, tmp_path: Path) -> None:
    """A resized, recompressed copy is linked to the earlier item in both directions."""
    from verification.media.samples import scene

    original, small = io.BytesIO(), io.BytesIO()
    scene(11).save(original, "JPEG", quality=90)
    scene(11).resize((512, 384)).save(small, "JPEG", quality=60)
    submit(ctx, tmp_path, "orig.jpg", original.getvalue())
    pipeline.ingest(ctx)
    submit(ctx, tmp_path, "copy.jpg", small.getvalue())
    outcome = pipeline.ingest(ctx)[0]
    assert "near-duplicate" in outcome.findings
    with Session(ctx.engine) as session:
        assert session.scalar(select(func.count()).select_from(DuplicateLink)) == 2


def test_stale_items_are_reprocessed_into_a_new_record(ctx: Context, tmp_path: Path) -> None:
    """Reprocessing adds a record for the current version and keeps the old one."""
    key = submit(ctx, tmp_path, "a.jpg", photo(12, taken="2024:03:14 11:20:05"))
    sha = pipeline.process_submission(ctx, key).item
    assert sha is not None
    with Session(ctx.engine) as session, session.begin():
        record = session.scalar(select(Record))
        assert record is not None
        record.pipeline_version = "0.0.1+media0"
        item = session.get(Item, sha)
        assert item is not None
        item.record_version = "0.0.1+media0"
    assert pipeline.stale_items(ctx) == [sha]
    pipeline.reprocess_item(ctx, sha)
    with Session(ctx.engine) as session:
        versions = sorted(session.scalars(select(Record.pipeline_version)))
    assert versions == sorted(["0.0.1+media0", pipeline.pipeline_version()])
    assert pipeline.stale_items(ctx) == []
    assert ctx.ledger.verify(sha).ok


def test_file_that_crashes_the_analysis_is_quarantined_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file that kills its worker twice is preserved and quarantined; the rest are verified."""
    monkeypatch.setenv(pipeline.FAULT_ENV, "abort:poison")
    ctx = init_context(make_settings(tmp_path / "home", workers=2))
    data = {}
    for i, name in enumerate(("a.jpg", "poison.jpg", "b.jpg", "c.jpg")):
        data[name] = photo(20 + i, taken="2024:03:14 11:20:05")
        submit(ctx, tmp_path, name, data[name])
    outcomes = {o.key.rsplit("/", 1)[-1]: o for o in pipeline.ingest(ctx)}
    poisoned = outcomes["poison.jpg"]
    assert poisoned.status == "unreadable"
    assert poisoned.error is None
    sha = hashlib.sha256(data["poison.jpg"]).hexdigest()
    quarantine = [e for e in ctx.ledger.events(sha) if e.type == "quarantine"]
    assert "crashed twice" in quarantine[0].detail["reason"]
    assert "SIGABRT" in quarantine[0].detail["reason"]
    with ctx.store.open(vault_key(sha)) as handle:
        assert handle.read() == data["poison.jpg"]
    assert all(
        outcomes[n].status not in {"failed", "unreadable"} for n in ("a.jpg", "b.jpg", "c.jpg")
    )
    assert pipeline.list_new(ctx) == []  # recorded once, not retried forever
    assert ctx.ledger.verify().ok


def test_workers_that_cannot_analyse_anything_fail_the_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Workers that crash on their own self-test raise; no file is recorded as bad, all stay new."""
    monkeypatch.setenv(pipeline.FAULT_ENV, "abort:*")
    ctx = init_context(make_settings(tmp_path / "home", workers=2))
    for i, name in enumerate(("a.jpg", "b.jpg")):
        submit(ctx, tmp_path, name, photo(30 + i))
    with pytest.raises(pipeline.WorkersUnavailable, match=r"could not start.*SIGABRT"):
        pipeline.ingest(ctx)
    assert counts(ctx) == (0, 2, 0, 0, 0)  # two failed submissions, no item, no event
    with Session(ctx.engine) as session:
        subs = list(session.scalars(select(Submission)))
    assert {s.state for s in subs} == {"failed"}
    assert all("analysis workers unavailable" in (s.error or "") for s in subs)
    assert [i.key.rsplit("/", 1)[-1] for i in pipeline.list_new(ctx)] == ["a.jpg", "b.jpg"]


def test_retried_batch_returns_recorded_outcomes(ctx: Context, tmp_path: Path) -> None:
    """A batch run again (a retried task) returns what was recorded, not nothing."""
    keys = [submit(ctx, tmp_path, f"{n}.jpg", photo(40 + n)) for n in range(3)]
    first = pipeline.process_batch(ctx, keys, workers=2)
    before = counts(ctx)
    again = pipeline.process_batch(ctx, keys, workers=2)
    assert again == first
    assert [o.key for o in again] == keys
    assert counts(ctx) == before


def test_processed_submission_whose_item_is_gone_is_not_reported_done(
    ctx: Context, tmp_path: Path
) -> None:
    """A submission recorded as processed whose item row was deleted behind the pipeline's back
    (foreign keys switched off) is reported failed, with why, never as recorded."""
    from verification.pipeline.summary import IntakeIncomplete, check_complete, summarise

    key = submit(ctx, tmp_path, "gone.jpg", photo(51))
    (done,) = pipeline.process_batch(ctx, [key], workers=1)
    assert done.item is not None and not done.failed
    raw = ctx.engine.raw_connection()  # autocommit, outside SQLAlchemy's BEGIN IMMEDIATE
    try:
        cursor = raw.cursor()
        cursor.execute("PRAGMA foreign_keys=OFF")
        cursor.execute("DELETE FROM item_findings WHERE item_sha256 = ?", (done.item,))
        cursor.execute("DELETE FROM items WHERE sha256 = ?", (done.item,))
    finally:
        raw.invalidate()  # its foreign keys are off: never hand it back to the pool
    (now,) = pipeline.recorded_outcomes(ctx, [key])
    assert now.failed and now.item is None and "missing from the ledger" in (now.error or "")
    with pytest.raises(IntakeIncomplete):
        check_complete(summarise([now]))


# --- memory bounds (issue 12 item 1) --------------------------------------------------------


def test_workers_run_under_the_configured_memory_limit(tmp_path: Path) -> None:
    """EVIDENCE_WORKER_MEMORY_MB becomes each analysis worker's hard address-space limit."""
    from verification.analysis.pool import iter_workers
    from verification.pipeline.batch import analysis_pool

    settings = make_settings(tmp_path / "home", worker_memory_mb=1500)
    with analysis_pool(settings, 1) as pool:
        (pid,) = iter_workers(pool)
        limits = Path(f"/proc/{pid}/limits").read_text().splitlines()
    (line,) = [x for x in limits if x.startswith("Max address space")]
    assert line.split()[3:5] == [str(1500 * MIB), str(1500 * MIB)]


def test_decode_budget_setting_reaches_the_media_code(tmp_path: Path) -> None:
    """EVIDENCE_DECODE_BUDGET_MB is the budget the workers judge images by."""
    ctx = init_context(make_settings(tmp_path / "home", decode_budget_mb=1))
    key = submit(ctx, tmp_path, "a.png", zero_png(640, 480, colour_type=2))  # 1.2 MB decoded
    outcome = pipeline.process_submission(ctx, key)
    assert "image-too-large" in outcome.findings
    with Session(ctx.engine) as session:
        record = session.scalar(select(Record).where(Record.item_sha256 == outcome.item))
        assert record is not None
        (finding,) = [f for f in record.data["findings"] if f["code"] == "image-too-large"]
    assert finding["evidence"]["budget_bytes"] == MIB


def test_file_over_the_worker_memory_limit_is_quarantined_with_the_reason(tmp_path: Path) -> None:
    """A decode that needs more than the worker may take fails that file alone: quarantined, the
    reason names the limit, the original is kept, the next file is verified."""
    # The settings refuse a budget the limit cannot hold; build that combination on purpose.
    settings = make_settings(tmp_path / "home", decode_budget_mb=4096, worker_memory_mb=0)
    settings = settings.model_copy(update={"worker_memory_mb": 1024})
    ctx = init_context(settings)
    huge = zero_png(14_000, 14_000, colour_type=2)  # under 1 MB, 784 MB of pixels
    submit(ctx, tmp_path, "huge.png", huge)
    submit(ctx, tmp_path, "fine.jpg", photo(70, taken="2024:03:14 11:20:05"))
    outcomes = {o.key.rsplit("/", 1)[-1]: o for o in pipeline.ingest(ctx)}
    assert outcomes["huge.png"].status == "unreadable"
    assert outcomes["fine.jpg"].status not in {"unreadable", "failed"}
    sha = hashlib.sha256(huge).hexdigest()
    (quarantine,) = [e for e in ctx.ledger.events(sha) if e.type == "quarantine"]
    assert quarantine.detail["reason"] == (
        "the analysis needed more than the worker's memory limit of 1024 MiB "
        "(EVIDENCE_WORKER_MEMORY_MB)"
    )
    with ctx.store.open(vault_key(sha)) as handle:
        assert hashlib.sha256(handle.read()).hexdigest() == sha
    assert ctx.ledger.verify().ok


# --- rejected keys (issue 12 item 7) --------------------------------------------------------


def _drop_hostile(ctx: Context, name: str, data: bytes) -> str:
    """Place a file under incoming/ the way a hostile S3 client could: past key validation."""
    assert isinstance(ctx.store, LocalStore)
    directory = ctx.store.root / "objects" / "incoming" / "case-1"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_bytes(data)
    return f"incoming/case-1/{name}"


def test_refused_key_is_rejected_once_and_never_listed_again(ctx: Context, tmp_path: Path) -> None:
    """An object whose key the store refuses is recorded as rejected with the reason, reported
    once, left untouched, and not listed by later runs."""
    data = photo(71)
    key = _drop_hostile(ctx, "\x1b[2J.jpg", data)
    good = submit(ctx, tmp_path, "good.jpg", photo(72, taken="2024:03:14 11:20:05"))
    outcomes = {o.key: o for o in pipeline.ingest(ctx)}
    assert outcomes[key].status == "rejected"
    assert outcomes[key].error == "object key contains a control character"
    assert outcomes[good].status not in {"failed", "rejected"}
    assert pipeline.list_new(ctx) == []
    assert pipeline.ingest(ctx) == []
    with Session(ctx.engine) as session:
        (row,) = session.scalars(select(Submission).where(Submission.store_key == key))
        assert (row.state, row.error, row.item_sha256) == ("rejected", outcomes[key].error, None)
    assert (ctx.store.root / "objects" / key).read_bytes() == data  # nothing deleted or moved
    assert pipeline.recorded_outcomes(ctx, [key])[0].status == "rejected"


def test_new_etag_under_a_rejected_key_is_rejected_again(ctx: Context) -> None:
    """Other bytes arriving under a refused key are a new submission: listed and rejected once."""
    key = _drop_hostile(ctx, "line\nbreak.jpg", photo(73))
    assert [o.status for o in pipeline.ingest(ctx)] == ["rejected"]
    _drop_hostile(ctx, "line\nbreak.jpg", photo(74) + b"more")
    again = pipeline.ingest(ctx)
    assert [(o.key, o.status) for o in again] == [(key, "rejected")]
    assert pipeline.list_new(ctx) == []
    with Session(ctx.engine) as session:
        states = list(session.scalars(select(Submission.state).where(Submission.store_key == key)))
    assert states == ["rejected", "rejected"]


def test_rejected_keys_are_summarised_apart_and_do_not_fail_the_run() -> None:
    """summarise() lists rejected keys with their reason; check_complete() does not count them."""
    outcomes = [
        pipeline.Outcome("incoming/c/a.jpg", "ab" * 32, "consistent"),
        pipeline.Outcome("incoming/c/\x1b.jpg", None, "rejected", error="object key contains x"),
    ]
    report = pipeline.summarise(outcomes)
    assert report["rejected"] == [{"key": "incoming/c/\x1b.jpg", "reason": "object key contains x"}]
    assert (report["failed"], report["pending"]) == ([], [])
    pipeline.check_complete(report)  # does not raise
