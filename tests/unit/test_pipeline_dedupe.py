"""Near-duplicate links, findings and statuses do not depend on the order of processing.

Real ingests (local store, SQLite ledger, analysis workers) of the same uploads: originals,
their social-media-like variants (a 5 % crop named to sort first, a resized recompressed copy,
a mirror), an exact duplicate in another case, a low-texture picture and its crop, and
unrelated photos.
"""

from __future__ import annotations

import io
import itertools
import json
import random
import shutil
import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageFilter, ImageOps
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.helpers import init_context, make_settings
from verification import pipeline
from verification.core.claims import Claims
from verification.ledger.models import DuplicateLink, Event, Item, ItemFinding, Record, Submission
from verification.pipeline import Context
from verification.pipeline.submission import submit_file
from verification.storage.local import LocalStore


def _jpeg(image: Image.Image, quality: int = 90, exif: bytes | None = None) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=quality, **({"exif": exif} if exif else {}))
    return buffer.getvalue()


def _crop(image: Image.Image, box: tuple[float, float, float, float]) -> Image.Image:
    w, h = image.size
    return image.crop((round(box[0] * w), round(box[1] * h), round(box[2] * w), round(box[3] * h)))


# (case, file name, how the bytes are made), in upload order: the order defines first-seen.
def _uploads() -> list[tuple[str, str, bytes]]:
    from tests.unit.test_duplicates import _scene
    from verification.media.samples import exif_bytes

    original = _scene(101, (800, 600))
    low = _scene(104, (800, 600)).filter(ImageFilter.GaussianBlur(5))
    scene_b = _jpeg(_scene(102, (800, 600)))
    taken = exif_bytes(taken="2024:03:14 11:20:05", offset="+02:00")
    return [
        ("case-1", "orig-00.jpg", _jpeg(original, 92, taken)),
        ("case-1", "unrelated-1.jpg", _jpeg(_scene(103, (800, 600)))),
        ("case-2", "scene-b.jpg", scene_b),
        ("case-1", "low.jpg", _jpeg(low)),
        ("case-1", "orig-00-crop5.jpg", _jpeg(_crop(original, (0.05, 0.05, 0.95, 0.95)), 85)),
        ("case-2", "orig-00-small.jpg", _jpeg(original.resize((400, 300)), 60)),
        ("case-1", "scene-b.jpg", scene_b),
        ("case-2", "orig-00-mirror.jpg", _jpeg(ImageOps.mirror(original), 88)),
        ("case-1", "low-crop.jpg", _jpeg(_crop(low, (0.0, 0.0, 0.92, 0.92)), 85)),
        ("case-2", "unrelated-2.jpg", _jpeg(_scene(105, (800, 600)))),
    ]


@pytest.fixture(scope="module")
def uploaded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store holding the uploads (copied for each run, so first-seen times are identical)."""
    root = tmp_path_factory.mktemp("uploads")
    store = LocalStore(root / "store")
    for case, name, data in _uploads():
        path = root / "files" / case / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        submit_file(store, path, Claims(case, "witness"))
    return root / "store"


def _context(uploaded: Path, home: Path, workers: int) -> Context:
    shutil.copytree(uploaded, home / "store", copy_function=shutil.copy2)
    settings = make_settings(home, workers=workers)
    return init_context(settings, store=LocalStore(home / "store"))


def _normalised(evidence: Any, keys: dict[int, str]) -> Any:
    """Submission row ids (numbered in recording order) replaced by their keys."""
    if isinstance(evidence, dict):
        out = {}
        for name, value in evidence.items():
            if name == "submission" and isinstance(value, int):
                out[name] = keys[value]
            elif name == "submissions":
                out[name] = [keys[v] for v in value]
            else:
                out[name] = _normalised(value, keys)
        return out
    return evidence


def _snapshot(ctx: Context) -> dict[str, Any]:
    """Links, findings, statuses and summaries as the ledger holds them, order-free."""
    with Session(ctx.engine) as session:
        keys = {s.id: s.store_key for s in session.scalars(select(Submission))}
        items: dict[str, Any] = {}
        for item in session.scalars(select(Item)):
            record = session.scalars(
                select(Record).where(Record.item_sha256 == item.sha256).order_by(Record.id)
            ).all()[-1]
            findings = sorted(
                json.dumps(_normalised(f, keys), sort_keys=True) for f in record.data["findings"]
            )
            codes = session.scalars(
                select(ItemFinding.code).where(ItemFinding.item_sha256 == item.sha256)
            )
            items[item.sha256] = {
                "status": (item.status, record.status, record.data["status"]),
                "case": (item.case_id, item.first_seen.isoformat(), item.capture_time),
                "findings": findings,
                "codes": sorted(codes),
                "duplicates": record.data["duplicates"],
                "earliest": record.data["earliest_copy"],
                "submissions": [s["key"] for s in record.data["submissions"]],
            }
        links = sorted(
            (link.item_sha256, link.other_sha256, link.kind, link.distance, link.evidence)
            for link in session.scalars(select(DuplicateLink))
        )
    outcomes = {
        o.key: (o.status, o.findings)
        for o in pipeline.recorded_outcomes(ctx, sorted(keys.values()))
    }
    return {
        "items": items,
        "links": [json.dumps(link, sort_keys=True) for link in links],
        "outcomes": outcomes,
    }


def _run(ctx: Context, groups: Sequence[Sequence[str]], workers: int) -> None:
    for group in groups:
        outcomes = pipeline.process_batch(ctx, list(group), workers=workers)
        assert all(not o.failed for o in outcomes), outcomes


def _shuffled(keys: list[str], seed: int) -> tuple[list[list[str]], int]:
    """A seeded permutation of ``keys`` cut into 1-3 batches, and a worker count (1 or 2)."""
    rng = random.Random(seed)
    order = keys[:]
    rng.shuffle(order)
    cuts = sorted(rng.sample(range(1, len(order)), rng.randint(0, 2)))
    bounds = [0, *cuts, len(order)]
    return [order[a:b] for a, b in itertools.pairwise(bounds)], rng.choice((1, 2))


@pytest.fixture(scope="module")
def reference(uploaded: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Context, dict]:
    """`evidence ingest` (first-seen order, one batch) on the uploads."""
    ctx = _context(uploaded, tmp_path_factory.mktemp("reference"), workers=2)
    pipeline.ingest(ctx)
    return ctx, _snapshot(ctx)


def _sha_of(ctx: Context, name: str, case: str = "case-1") -> str:
    with Session(ctx.engine) as session:
        sha = session.scalar(
            select(Submission.item_sha256).where(Submission.store_key == f"incoming/{case}/{name}")
        )
    assert sha is not None
    return sha


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_any_processing_order_gives_the_same_links_findings_and_statuses(
    seed: int, uploaded: Path, tmp_path: Path, reference: tuple[Context, dict]
) -> None:
    """A seeded permutation, cut into batches, with 1 or 2 workers, records what ingest does."""
    _, expected = reference
    keys = sorted(o for o in expected["outcomes"])
    groups, workers = _shuffled(keys, seed)
    ctx = _context(uploaded, tmp_path / "home", workers)
    _run(ctx, groups, workers)
    got = _snapshot(ctx)
    assert got["outcomes"] == expected["outcomes"]
    assert got["links"] == expected["links"]
    for sha, want in expected["items"].items():
        assert got["items"][sha] == want, f"{sha[:12]} differs (order {groups}, {workers} workers)"
    assert ctx.ledger.verify().ok


def test_crop_and_original_both_carry_the_finding_with_the_crop_evidence(
    reference: tuple[Context, dict],
) -> None:
    """Both sides of a crop link need review; the crop's entry says where it sits."""
    ctx, snapshot = reference
    original, crop = _sha_of(ctx, "orig-00.jpg"), _sha_of(ctx, "orig-00-crop5.jpg")
    for sha in (original, crop):
        assert snapshot["items"][sha]["status"][0] == "needs-review"
        assert "near-duplicate" in snapshot["items"][sha]["codes"]
    (entry,) = [d for d in snapshot["items"][crop]["duplicates"] if d["item"] == original]
    assert entry["kind"] == "crop-orb"
    assert entry["crop"]["inner"] == "this"
    assert entry["crop"]["position"] == "centre"
    assert 0.75 < entry["crop"]["area"] < 0.88
    assert entry["crop"]["sentence"].startswith("this item is a 8")
    assert (
        entry["crop"]["inliers"] >= 25
        and entry["crop"]["matched_points"] >= entry["crop"]["inliers"]
    )
    (back,) = [d for d in snapshot["items"][original]["duplicates"] if d["item"] == crop]
    assert back["crop"]["inner"] == "other"
    assert back["crop"]["sentence"].startswith("the other item is a 8")


def test_earliest_copy_is_the_first_seen_upload_whatever_sorts_first(
    reference: tuple[Context, dict],
) -> None:
    """orig-00-crop5.jpg sorts before orig-00.jpg but was uploaded later: the original is the
    earliest copy for every member of the group, decided by first-seen time."""
    ctx, snapshot = reference
    original = _sha_of(ctx, "orig-00.jpg")
    for name, case in (
        ("orig-00-crop5.jpg", "case-1"),
        ("orig-00-small.jpg", "case-2"),
        ("orig-00-mirror.jpg", "case-2"),
    ):
        earliest = snapshot["items"][_sha_of(ctx, name, case)]["earliest"]
        assert (earliest["item"], earliest["rule"], earliest["this_item"]) == (
            original,
            "first-seen",
            False,
        )
    assert snapshot["items"][original]["earliest"]["this_item"] is True


def test_mirror_and_resized_copies_link_with_their_kind(reference: tuple[Context, dict]) -> None:
    """A mirrored copy links through the dihedral hashes (transform named both ways), a resized
    recompressed one through plain PDQ; unrelated photos link to nothing."""
    ctx, snapshot = reference
    original = _sha_of(ctx, "orig-00.jpg")
    mirror = _sha_of(ctx, "orig-00-mirror.jpg", "case-2")
    small = _sha_of(ctx, "orig-00-small.jpg", "case-2")
    entries = {d["item"]: d for d in snapshot["items"][original]["duplicates"]}
    assert entries[mirror]["kind"] == "near-pdq-dihedral"
    assert entries[mirror]["transform"] == "flip-horizontal"
    assert entries[small]["kind"] == "near-pdq"
    for name, case in (("unrelated-1.jpg", "case-1"), ("unrelated-2.jpg", "case-2")):
        assert snapshot["items"][_sha_of(ctx, name, case)]["duplicates"] == []


def test_exact_duplicate_takes_case_and_first_seen_of_its_earliest_upload(
    reference: tuple[Context, dict],
) -> None:
    """The bytes uploaded to case-2 first and case-1 later belong to case-2, first seen then."""
    ctx, snapshot = reference
    sha = _sha_of(ctx, "scene-b.jpg")
    assert snapshot["items"][sha]["case"][0] == "case-2"
    assert snapshot["items"][sha]["submissions"] == [
        "incoming/case-2/scene-b.jpg",
        "incoming/case-1/scene-b.jpg",
    ]


def test_earlier_item_is_re_evaluated_with_a_custody_event_of_its_own(
    reference: tuple[Context, dict],
) -> None:
    """The original, recorded first, gets one validation event per later link, saying it is a
    re-evaluation, why, and which link; its chain verifies."""
    ctx, _ = reference
    original = _sha_of(ctx, "orig-00.jpg")
    events = [e for e in ctx.ledger.events(original) if e.detail.get("re_evaluation")]
    assert {e.type for e in events} == {"validation"}
    kinds = sorted(e.detail["cause"]["kind"] for e in events)
    assert kinds == ["crop-orb", "near-pdq", "near-pdq-dihedral"]
    assert all(e.detail["reason"].startswith("re-evaluation: a later item") for e in events)
    assert events[-1].detail["status"] == "needs-review"
    assert ctx.ledger.verify(original).ok


def test_re_evaluation_is_not_repeated_when_the_batch_runs_again(
    reference: tuple[Context, dict],
) -> None:
    """Processing the same keys again adds no custody event (step keys)."""
    ctx, snapshot = reference
    before = _event_count(ctx)
    pipeline.process_batch(ctx, sorted(snapshot["outcomes"]), workers=1)
    assert _event_count(ctx) == before
    assert _snapshot(ctx) == snapshot


def _event_count(ctx: Context) -> int:
    with Session(ctx.engine) as session:
        return len(session.scalars(select(Event.id)).all())


# --- earliest copy, the batch's index, the look under the dedupe lock -------------------------


def _member(item: str, first_seen: str, capture: str | None = None) -> dict[str, Any]:
    return {"item": item, "first_seen": first_seen, "capture_time": capture, "case_id": "c"}


def test_earliest_copy_ties_go_to_capture_time_then_hash() -> None:
    """First-seen time decides; equal ones fall to capture time (unknown last), then SHA-256,
    and the rule that decided is named."""
    from verification.pipeline.record_data import earliest_copy

    t0, t1 = "2026-01-01T10:00:00+00:00", "2026-01-01T10:00:20+00:00"
    me = _member("b" * 64, t1)
    assert earliest_copy(me, [_member("a" * 64, t0)])["rule"] == "first-seen"
    tie = earliest_copy(_member("a" * 64, t0), [_member("b" * 64, t0, "2024-03-14T11:20:05+02:00")])
    assert (tie["item"], tie["rule"]) == ("b" * 64, "capture-time")
    same = earliest_copy(
        _member("c" * 64, t0, "2024-03-14T09:20:05Z"),
        [_member("b" * 64, t0, "2024-03-14T11:20:05+02:00")],
    )
    assert (same["item"], same["rule"], same["this_item"]) == ("b" * 64, "sha256", False)
    assert earliest_copy(me, []) is None


def test_batch_index_reads_only_what_was_stored_since(uploaded: Path, tmp_path: Path) -> None:
    """The first refresh loads the collection; later ones return just the items recorded since."""
    from verification.pipeline.dedupe import CollectionIndex

    ctx = _context(uploaded, tmp_path / "home", workers=1)
    keys = [f"incoming/case-1/{n}" for n in ("orig-00.jpg", "unrelated-1.jpg")]
    pipeline.process_batch(ctx, keys[:1], workers=1)
    index = CollectionIndex(ctx.engine)
    assert index.refresh() == {_sha_of(ctx, "orig-00.jpg")}
    assert index.refresh() == set()
    pipeline.process_batch(ctx, keys[1:], workers=1)
    assert index.refresh() == {_sha_of(ctx, "unrelated-1.jpg")}
    assert len(index.index.item_ids) == 2


def _grouped(seed: int | None) -> Any:
    """A stand-in for ``batch._as_ready`` that waits for every submission of the batch, then hands
    them to the recorder in one group (``seed`` None) or in seeded groups of 1-6, so that
    recording several submissions per transaction is exercised whatever the machine's speed."""
    from concurrent.futures import wait

    def as_ready(futures: Sequence[Any], most: int) -> Any:
        wait(futures)
        ready = list(futures)
        if seed is None:
            yield ready
            return
        rng = random.Random(seed)
        rng.shuffle(ready)
        while ready:
            size = rng.randint(1, min(6, most))
            yield ready[:size]
            ready = ready[size:]

    return as_ready


@pytest.mark.parametrize("seed", [None, 4, 5])
def test_submissions_recorded_together_get_what_one_at_a_time_gives(
    seed: int | None,
    uploaded: Path,
    tmp_path: Path,
    reference: tuple[Context, dict],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Near-duplicates, crops, mirrors and exact duplicates recorded in the same transaction
    (one group of all ten, or seeded groups) link to each other and get the links, findings,
    statuses and custody chains that ingest gives recording them one by one."""
    from verification.pipeline import batch

    _, expected = reference
    monkeypatch.setattr(batch, "_as_ready", _grouped(seed))
    sizes: list[int] = []
    together = batch.record_group

    def spy(ctx: Context, analyses: Sequence[Any], index: Any) -> Any:
        sizes.append(len(analyses))
        return together(ctx, analyses, index)

    monkeypatch.setattr(batch, "record_group", spy)
    keys = sorted(expected["outcomes"])
    if seed is not None:
        random.Random(seed).shuffle(keys)
    ctx = _context(uploaded, tmp_path / "home", workers=2)
    _run(ctx, [keys], workers=2)
    assert sizes and max(sizes) > 1 and sum(sizes) <= len(keys)
    got = _snapshot(ctx)
    assert got["outcomes"] == expected["outcomes"]
    assert got["links"] == expected["links"]
    assert got["items"] == expected["items"]
    assert ctx.ledger.verify().ok


def test_a_submission_that_cannot_be_recorded_fails_alone_in_its_group(
    uploaded: Path,
    tmp_path: Path,
    reference: tuple[Context, dict],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """When recording one submission of a group raises (here a database error on every try
    for ``low.jpg``), the group's transaction leaves nothing, the others are recorded one at a
    time, that one is reported failed with the reason and leaves no item, record or event; the
    next run records it and the ledger ends as ingest would have made it."""
    from sqlalchemy.exc import OperationalError

    from verification.pipeline import batch, record

    _, expected = reference
    monkeypatch.setattr(batch, "_as_ready", _grouped(None))
    monkeypatch.setattr(record, "RETRY_DELAY", 0.01)
    claim = record._claim_submission

    def failing(session: Session, analysis: Any) -> Any:
        if analysis.key == "incoming/case-1/low.jpg":
            raise OperationalError("INSERT", {}, Exception("connection reset"))
        return claim(session, analysis)

    monkeypatch.setattr(record, "_claim_submission", failing)
    ctx = _context(uploaded, tmp_path / "home", workers=2)
    keys = sorted(expected["outcomes"])
    outcomes = {o.key: o for o in pipeline.process_batch(ctx, keys, workers=2)}
    bad = outcomes.pop("incoming/case-1/low.jpg")
    assert bad.failed and bad.item is None and "connection reset" in (bad.error or "")
    assert all(not o.failed for o in outcomes.values())
    low = next(
        sha for sha, i in expected["items"].items() if "incoming/case-1/low.jpg" in i["submissions"]
    )
    with Session(ctx.engine) as session:
        assert session.get(Item, low) is None
        assert session.scalar(select(Event.id).where(Event.item_sha256 == low)) is None
        assert session.scalar(select(Record.id).where(Record.item_sha256 == low)) is None
    assert ctx.ledger.verify().ok
    monkeypatch.setattr(record, "_claim_submission", claim)
    again = pipeline.ingest(ctx)
    assert [o.key for o in again] == ["incoming/case-1/low.jpg"] and not again[0].failed
    got = _snapshot(ctx)
    assert got["links"] == expected["links"]
    assert got["items"] == expected["items"]
    assert ctx.ledger.verify().ok


def test_the_collection_is_searched_in_the_io_threads(
    uploaded: Path, tmp_path: Path, reference: tuple[Context, dict], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the collection loaded from the snapshot an earlier batch left, each submission's
    duplicate search over it runs in an I/O thread while others are recorded (the recorder reads
    only the rows added since), and the ledger ends as ingest leaves it."""
    from verification.duplicates.index import PDQIndex

    _, expected = reference
    keys = sorted(expected["outcomes"])
    random.Random(9).shuffle(keys)
    ctx = _context(uploaded, tmp_path / "home", workers=2)
    _run(ctx, [keys[:4]], workers=2)
    assert (ctx.settings.home / "cache" / "duplicate-index.snapshot").is_file()
    reads: list[tuple[str, int]] = []
    real_scan = PDQIndex._scan

    def spy(self: PDQIndex, segments: Any, *args: Any) -> Any:
        listed = list(segments)
        thread = threading.current_thread().name
        reads.extend((thread, first == 0 and self._base is not None) for first, _ in listed)
        return real_scan(self, iter(listed), *args)

    monkeypatch.setattr(PDQIndex, "_scan", spy)
    _run(ctx, [keys[4:]], workers=2)
    base_reads = [thread for thread, base in reads if base]
    assert base_reads and all(thread.startswith("evidence-io") for thread in base_reads)
    got = _snapshot(ctx)
    assert got["links"] == expected["links"]
    assert got["items"] == expected["items"]


def test_an_index_that_cannot_be_loaded_ahead_is_loaded_when_recording(
    uploaded: Path,
    tmp_path: Path,
    reference: tuple[Context, dict],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The batch's first read of the index fails (the database away for a moment): nothing is
    searched ahead, recording reads the index itself, and the ledger ends as ingest leaves it."""
    from sqlalchemy.exc import OperationalError

    from verification.pipeline.dedupe import CollectionIndex

    _, expected = reference
    real = CollectionIndex.update
    calls: list[str] = []

    def away_at_first(self: CollectionIndex, *args: Any, **kwargs: Any) -> None:
        calls.append(threading.current_thread().name)
        if len(calls) == 1:
            raise OperationalError("SELECT", {}, Exception("connection refused"))
        real(self, *args, **kwargs)

    monkeypatch.setattr(CollectionIndex, "update", away_at_first)
    ctx = _context(uploaded, tmp_path / "home", workers=2)
    _run(ctx, [sorted(expected["outcomes"])], workers=2)
    assert calls[0] == "evidence-index" and "MainThread" in calls[1:]
    assert "could not read the duplicate index yet" in caplog.text
    got = _snapshot(ctx)
    assert got["links"] == expected["links"]
    assert got["items"] == expected["items"]


def _commit_during_matching(
    ctx: Context, monkeypatch: pytest.MonkeyPatch, key: str, after: int = 1
) -> list[str]:
    """Make another run record ``key`` just after this run found the matches of its
    ``after``-th submission (the race two parallel batches run). Returns what happened, as it
    happens: the keys whose matches were found, then "committed"."""
    from verification.pipeline import record

    real = record.find_matches
    seen: list[str] = []

    def then_another_run_commits(*args: Any, **kwargs: Any) -> Any:
        found = real(*args, **kwargs)
        if kwargs.get("only") is None and len(seen) < after:
            seen.append(args[1].key)
            if len(seen) == after:
                pipeline.process_batch(ctx, [key], workers=1)
                seen.append("committed")
        return found

    monkeypatch.setattr(record, "find_matches", then_another_run_commits)
    return seen


def _links(ctx: Context) -> set[tuple[str, str]]:
    with Session(ctx.engine) as session:
        return {(k.item_sha256, k.other_sha256) for k in session.scalars(select(DuplicateLink))}


def test_item_committed_after_the_matches_were_found_is_still_linked(
    uploaded: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A near-duplicate another run committed after this submission's matches were computed is
    found under the dedupe lock and linked both ways."""
    ctx = _context(uploaded, tmp_path / "home", workers=1)
    seen = _commit_during_matching(ctx, monkeypatch, "incoming/case-1/orig-00.jpg")
    pipeline.process_batch(ctx, ["incoming/case-2/orig-00-small.jpg"], workers=1)
    assert seen == ["incoming/case-2/orig-00-small.jpg", "committed"]
    original, small = _sha_of(ctx, "orig-00.jpg"), _sha_of(ctx, "orig-00-small.jpg", "case-2")
    assert _links(ctx) == {(original, small), (small, original)}
    with Session(ctx.engine) as session:
        statuses = {sha: session.get(Item, sha).status for sha in (original, small)}  # type: ignore[union-attr]
    assert statuses == {original: "needs-review", small: "needs-review"}


def test_item_committed_before_a_retried_attempt_is_still_linked(
    uploaded: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The recording transaction that first saw the late near-duplicate is rolled back (a lost
    race) and tried again: the attempt that commits still links it, though the batch's index
    had already caught up with it."""
    from sqlalchemy.exc import OperationalError

    from verification.pipeline import record

    ctx = _context(uploaded, tmp_path / "home", workers=1)
    seen = _commit_during_matching(ctx, monkeypatch, "incoming/case-1/orig-00.jpg")
    real = record.write_staged
    failures: list[str] = []

    def lose_the_first_race(ctx_: Context, session: Session) -> None:
        if not failures and "committed" in seen:
            failures.append("rolled back")
            raise OperationalError("COMMIT", {}, Exception("database is locked"))
        real(ctx_, session)

    monkeypatch.setattr(record, "write_staged", lose_the_first_race)
    monkeypatch.setattr(record, "RETRY_DELAY", 0.0)
    [outcome] = pipeline.process_batch(ctx, ["incoming/case-2/orig-00-small.jpg"], workers=1)
    assert failures == ["rolled back"] and not outcome.failed
    original, small = _sha_of(ctx, "orig-00.jpg"), _sha_of(ctx, "orig-00-small.jpg", "case-2")
    assert _links(ctx) == {(original, small), (small, original)}
    assert ctx.ledger.verify().ok


def test_item_committed_while_a_group_was_matched_is_linked(
    uploaded: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a group, another run commits a near-duplicate of the first submission after that
    submission's matches were found and before the next one's: the group's transaction still
    finds and links it."""
    from verification.pipeline import batch

    ctx = _context(uploaded, tmp_path / "home", workers=2)
    monkeypatch.setattr(batch, "_as_ready", _grouped(None))
    keys = ["incoming/case-2/orig-00-small.jpg", "incoming/case-1/unrelated-1.jpg"]
    seen = _commit_during_matching(ctx, monkeypatch, "incoming/case-1/orig-00.jpg")
    pipeline.process_batch(ctx, keys, workers=2)
    assert seen == [keys[0], "committed"]
    original, small = _sha_of(ctx, "orig-00.jpg"), _sha_of(ctx, "orig-00-small.jpg", "case-2")
    assert _links(ctx) == {(original, small), (small, original)}


# --- videos and photos across each other (ffmpeg re-encodes) ----------------------------------

FFMPEG = shutil.which("ffmpeg")


def _ffmpeg(*argv: str) -> None:
    assert FFMPEG is not None
    subprocess.run([FFMPEG, "-hide_banner", "-loglevel", "error", "-y", *argv], check=True)


@pytest.mark.skipif(FFMPEG is None, reason="ffmpeg is not installed: the re-encodes are made by it")
def test_videos_re_encodes_and_stills_link_across_each_other(tmp_path: Path) -> None:
    """A video made from three photos (ffmpeg, H.264), its re-encode (half size, MPEG-4 part 2,
    another frame rate), a still ffmpeg took from it, and one of the photos: every pair links,
    the still and the photo through the keyframe of their scene, in any order of processing."""
    from tests.unit.test_duplicates import _scene

    scenes = [_scene(300 + i, (640, 480)) for i in range(3)]
    for i, image in enumerate(scenes):
        image.save(tmp_path / f"scene-{i}.png")
    video, reencode, still = (
        tmp_path / "clip.mp4",
        tmp_path / "clip-small.mp4",
        tmp_path / "still.jpg",
    )
    _ffmpeg(
        "-framerate",
        "1",
        "-i",
        str(tmp_path / "scene-%d.png"),
        "-vf",
        "fps=10,format=yuv420p",
        "-c:v",
        "libx264",
        "-crf",
        "20",
        str(video),
    )
    _ffmpeg(
        "-i", str(video), "-vf", "scale=320:240,fps=12", "-c:v", "mpeg4", "-q:v", "6", str(reencode)
    )
    _ffmpeg("-ss", "1.5", "-i", str(video), "-frames:v", "1", "-q:v", "3", str(still))
    files = {"clip.mp4": video, "clip-small.mp4": reencode, "still.jpg": still}
    files["photo-2.jpg"] = tmp_path / "photo-2.jpg"
    files["photo-2.jpg"].write_bytes(_jpeg(scenes[2], 85))
    results = []
    for order in (list(files), list(reversed(files))):
        home = tmp_path / f"home-{len(results)}"
        ctx = init_context(make_settings(home, workers=1))
        keys = {name: submit_file(ctx.store, files[name], Claims("case-v")).key for name in order}
        pipeline.process_batch(ctx, [keys[n] for n in order], workers=1)
        results.append(_video_links(ctx, keys))
    assert results[0] == results[1]
    links = results[0]
    for pair in (
        ("clip.mp4", "clip-small.mp4"),
        ("still.jpg", "clip.mp4"),
        ("still.jpg", "clip-small.mp4"),
        ("photo-2.jpg", "clip.mp4"),
    ):
        assert pair in links, f"{pair} not linked: {sorted(links)}"
    # The still (t = 1.5 s, second photo) and photo 2 match keyframes from their own scene.
    assert 1.0 <= links[("still.jpg", "clip.mp4")]["other_time_s"] < 2.0
    assert 2.0 <= links[("photo-2.jpg", "clip.mp4")]["other_time_s"] < 3.0


def _video_links(ctx: Context, keys: dict[str, str]) -> dict[tuple[str, str], dict[str, Any]]:
    name_of = {}
    with Session(ctx.engine) as session:
        for name, key in keys.items():
            sha = session.scalar(select(Submission.item_sha256).where(Submission.store_key == key))
            name_of[sha] = name
        out = {}
        for record in session.scalars(select(Record)):
            for entry in record.data["duplicates"]:
                out[(name_of[record.item_sha256], name_of[entry["item"]])] = {
                    "kind": entry["kind"],
                    "distance": entry["distance"],
                    "keyframe": entry["keyframe"],
                    "other_keyframe": entry["other_keyframe"],
                    "status": record.status,
                }
        for (_, other), entry in out.items():
            other_sha = next(s for s, n in name_of.items() if n == other)
            other_record = session.scalars(
                select(Record).where(Record.item_sha256 == other_sha)
            ).first()
            frames = other_record.data["perceptual"].get("keyframes") or []  # type: ignore[union-attr]
            k = entry["other_keyframe"]
            entry["other_time_s"] = frames[k].get("time_s") if k is not None else None
    return out
