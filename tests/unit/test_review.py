"""Analyst review: decisions and access as custody events, the queue, case summaries, exports."""

from __future__ import annotations

import hashlib
import uuid
import zipfile
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import insert

from tests.helpers import init_context, make_settings
from verification import review
from verification.ledger.models import Item, ItemFinding, Submission
from verification.pipeline import Context
from verification.review import QueueFilters

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    return init_context(make_settings(tmp_path / "home"))


def add_items(ctx: Context, count: int, **fields: object) -> list[str]:
    """Insert ``count`` bare items (no pipeline run), one minute apart from T0, each with the
    submission that brought it (an item belongs to the cases it was submitted to)."""
    rows = []
    for n in range(count):
        sha = hashlib.sha256(uuid.uuid4().bytes).hexdigest()
        row = {
            "sha256": sha,
            "size": 1,
            "sha1": "0" * 40,
            "md5": "0" * 32,
            "format": "jpeg",
            "mime": "image/jpeg",
            "kind": "image",
            "vault_key": f"vault/sha256/{sha[:2]}/{sha[2:4]}/{sha}",
            "first_seen": T0 + timedelta(minutes=n),
            "case_id": "case-1",
            "submitter": "alice",
            "status": "consistent",
            "fixity": "success",
        }
        rows.append({**row, **fields})
    submissions = [
        {
            "store_key": f"incoming/{r['case_id']}/{r['sha256'][:8]}.jpg",
            "etag": r["sha256"][:32],
            "item_sha256": r["sha256"],
            "case_id": r["case_id"],
            "submitter": r["submitter"],
            "claims": {},
            "received_at": r["first_seen"],
            "state": "processed",
        }
        for r in rows
    ]
    with ctx.engine.begin() as conn:
        conn.execute(insert(Item), rows)
        conn.execute(insert(Submission), submissions)
    return [r["sha256"] for r in rows]


def add_finding(ctx: Context, sha: str, code: str, severity: str = "warning") -> None:
    with ctx.engine.begin() as conn:
        conn.execute(
            insert(ItemFinding), [{"item_sha256": sha, "code": code, "severity": severity}]
        )


def test_decision_is_a_signed_review_event_by_the_analyst(ctx: Context) -> None:
    """record_decision appends a ``review`` event with decision, note, analyst as a person agent."""
    (sha,) = add_items(ctx, 1)
    event = review.record_decision(ctx, sha, "verified", "  matches the claim  ", "ana")
    assert event.type == "review"
    assert dict(event.detail) == {
        "action": "decision",
        "decision": "verified",
        "note": "matches the claim",
        "analyst": "ana",
    }
    assert {"type": "person", "name": "ana"} in [dict(a) for a in event.agents]
    assert ctx.ledger.verify(sha).ok


def test_reversal_adds_an_event_and_wins(ctx: Context) -> None:
    """A second decision is a new event; both stay, the latest is in force."""
    (sha,) = add_items(ctx, 1)
    first = review.record_decision(ctx, sha, "verified", "first look", "ana")
    second = review.record_decision(ctx, sha, "rejected", "found the original", "ben")
    events = ctx.ledger.events(sha)
    assert [e.uuid for e in events] == [first.uuid, second.uuid]
    assert [d["decision"] for d in review.decisions(events)] == ["verified", "rejected"]
    assert review.current_decision(events)["analyst"] == "ben"  # type: ignore[index]


def test_same_decision_twice_is_two_events(ctx: Context) -> None:
    """Repeating a decision is not deduplicated: each is its own act by an analyst."""
    (sha,) = add_items(ctx, 1)
    review.record_decision(ctx, sha, "disputed", "same", "ana")
    review.record_decision(ctx, sha, "disputed", "same", "ana")
    assert len(ctx.ledger.events(sha)) == 2


@pytest.mark.parametrize(
    ("decision", "note", "analyst", "message"),
    [
        ("authentic", "n", "ana", "decision must be one of"),
        ("verified", "", "ana", "note is required"),
        ("verified", " \n ", "ana", "note is required"),
        ("verified", "x" * 4001, "ana", "longer than 4000"),
        ("verified", "n", "", "analyst is required"),
    ],
)
def test_invalid_decision_raises_and_writes_nothing(
    ctx: Context, decision: str, note: str, analyst: str, message: str
) -> None:
    """Unknown decisions, empty or oversized notes and anonymous analysts are refused."""
    (sha,) = add_items(ctx, 1)
    with pytest.raises(review.ReviewError, match=message):
        review.record_decision(ctx, sha, decision, note, analyst)
    assert ctx.ledger.events(sha) == []


def test_note_of_exactly_4000_characters_is_accepted(ctx: Context) -> None:
    """The limit is inclusive."""
    (sha,) = add_items(ctx, 1)
    assert review.record_decision(ctx, sha, "verified", "x" * 4000, "ana").detail["note"]


def test_decision_on_unknown_item_raises_key_error(ctx: Context) -> None:
    """No event is written for an item that does not exist."""
    with pytest.raises(KeyError):
        review.record_decision(ctx, "f" * 64, "verified", "n", "ana")
    assert ctx.ledger.events("f" * 64) == []


def test_access_event_names_analyst_and_purpose(ctx: Context) -> None:
    """record_access appends an ``access`` event; a purpose is required."""
    (sha,) = add_items(ctx, 1)
    event = review.record_access(ctx, sha, "ana", "court filing")
    assert (event.type, event.detail["purpose"], event.detail["analyst"]) == (
        "access",
        "court filing",
        "ana",
    )
    with pytest.raises(review.ReviewError, match="purpose is required"):
        review.record_access(ctx, sha, "ana", "")


def test_queue_pages_sort_and_count(ctx: Context) -> None:
    """Pages of 2 over 5 items: counts, order (newest first by default) and page flags."""
    shas = add_items(ctx, 5)
    first = review.queue(ctx.engine, page_size=2)
    last = review.queue(ctx.engine, page=3, page_size=2)
    assert first.total == 5 and first.pages == 3
    assert [r.sha256 for r in first.rows] == shas[::-1][:2]
    assert [r.sha256 for r in last.rows] == [shas[0]]
    assert first.has_next and not first.has_previous
    assert last.has_previous and not last.has_next
    oldest = review.queue(ctx.engine, sort="first_seen", page_size=2)
    assert [r.sha256 for r in oldest.rows] == shas[:2]


def test_queue_empty_page_reads_page_1_of_1(ctx: Context) -> None:
    """An empty queue is one empty page, not zero pages."""
    page = review.queue(ctx.engine)
    assert (page.total, page.pages, page.rows) == (0, 1, ())


def test_queue_filters_by_case_status_submitter(ctx: Context) -> None:
    """Case, status and submitter filters combine with AND."""
    a = add_items(ctx, 2)
    b = add_items(ctx, 1, case_id="case-2", status="inconsistent", submitter="bob")
    only = review.queue(
        ctx.engine, QueueFilters(case="case-2", status="inconsistent", submitter="bob")
    )
    assert [r.sha256 for r in only.rows] == b
    assert review.queue(ctx.engine, QueueFilters(case="case-1")).total == len(a)
    assert review.queue(ctx.engine, QueueFilters(case="case-2", status="consistent")).total == 0


def test_queue_filters_by_finding_without_duplicating_rows(ctx: Context) -> None:
    """Items with several findings appear once; only those carrying the code match."""
    shas = add_items(ctx, 3)
    add_finding(ctx, shas[0], "near-duplicate")
    add_finding(ctx, shas[0], "editing-software")
    add_finding(ctx, shas[1], "editing-software")
    page = review.queue(ctx.engine, QueueFilters(finding="editing-software"))
    assert sorted(r.sha256 for r in page.rows) == sorted(shas[:2])
    assert page.total == 2
    row = next(r for r in page.rows if r.sha256 == shas[0])
    assert row.findings == (("editing-software", "warning"), ("near-duplicate", "warning"))


def test_queue_filters_by_first_seen_range(ctx: Context) -> None:
    """since is inclusive, until exclusive; aware datetimes are compared in UTC."""
    shas = add_items(ctx, 5)
    since = T0 + timedelta(minutes=1)
    until = (T0 + timedelta(minutes=3)).astimezone(timezone(timedelta(hours=2)))
    page = review.queue(ctx.engine, QueueFilters(since=since, until=until), sort="first_seen")
    assert [r.sha256 for r in page.rows] == shas[1:3]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sort": "sha256; drop table items"}, "sort must be"),
        ({"page": 0}, "page must be"),
        ({"page_size": 201}, "page must be"),
    ],
)
def test_queue_rejects_unknown_sort_and_bad_paging(
    ctx: Context, kwargs: dict[str, object], message: str
) -> None:
    """Only listed sorts and sane paging reach the database."""
    with pytest.raises(review.ReviewError, match=message):
        review.queue(ctx.engine, **kwargs)  # type: ignore[arg-type]


def test_case_summary_counts_statuses_and_findings(ctx: Context) -> None:
    """Per-status and per-finding counts of one case only."""
    shas = add_items(ctx, 3)
    add_items(ctx, 1, case_id="other")
    with ctx.engine.begin() as conn:
        conn.exec_driver_sql(
            "UPDATE items SET status = 'inconsistent' WHERE sha256 = ?", (shas[0],)
        )
    add_finding(ctx, shas[0], "location-contradicts-claim", "critical")
    add_finding(ctx, shas[1], "metadata-stripped", "info")
    summary = review.case_summary(ctx.engine, "case-1")
    assert summary.items == 3
    assert dict(summary.by_status) == {"consistent": 2, "inconsistent": 1}
    assert dict(summary.by_finding) == {"location-contradicts-claim": 1, "metadata-stripped": 1}
    assert summary.severities["location-contradicts-claim"] == "critical"
    with pytest.raises(KeyError):
        review.case_summary(ctx.engine, "nope")


@pytest.mark.parametrize(
    ("case", "fmt", "redact", "error"),
    [
        ("case-1", "pdf", False, review.ReviewError),
        ("case-1", "", False, review.ReviewError),
        ("case-1", "json", True, review.ReviewError),
        ("no-such-case", "json", False, KeyError),
        ("../case-1", "bagit", False, KeyError),
    ],
)
def test_export_download_refuses_before_writing(
    ctx: Context, tmp_path: Path, case: str, fmt: str, redact: bool, error: type[Exception]
) -> None:
    """An unknown format or case, or redaction of a report, is refused with no event or file."""
    (sha,) = add_items(ctx, 1)
    before = len(ctx.ledger.events(sha))
    with pytest.raises(error):
        review.export_download(ctx, case, fmt, tmp_path / "out", "ana", redact=redact)
    assert len(ctx.ledger.events(sha)) == before
    assert not (tmp_path / "out").exists()


def test_zip_bag_stores_paths_relative_to_the_bag_parent(tmp_path: Path) -> None:
    """Unzipping gives the bag directory back, file for file and byte for byte."""
    bag = tmp_path / "case-1-bag"
    (bag / "data" / "originals").mkdir(parents=True)
    (bag / "bagit.txt").write_text("BagIt-Version: 1.0\n")
    (bag / "data" / "originals" / "a.jpg").write_bytes(b"\xff\xd8original")
    archive = review.zip_bag(bag, tmp_path / "bag.zip")
    with zipfile.ZipFile(archive) as opened:
        names = set(opened.namelist())
        assert {"case-1-bag/bagit.txt", "case-1-bag/data/originals/a.jpg"} <= names
        payload = opened.getinfo("case-1-bag/data/originals/a.jpg")
        assert payload.compress_type == zipfile.ZIP_STORED
        opened.extractall(tmp_path / "out")
    assert (tmp_path / "out" / "case-1-bag" / "data" / "originals" / "a.jpg").read_bytes() == (
        b"\xff\xd8original"
    )


def test_choices_list_cases_and_codes(ctx: Context) -> None:
    """The filter form's choices come from the data."""
    (sha,) = add_items(ctx, 1, case_id="b")
    add_items(ctx, 1, case_id="a")
    add_finding(ctx, sha, "unreadable")
    assert review.cases(ctx.engine) == ["a", "b"]
    assert review.finding_codes(ctx.engine) == ["unreadable"]


# --- the review page's map and metadata (plugins/evidence_review/views.py, pure functions) ----


def _record(gps: dict[str, object] | None, observed: dict[str, object] | None) -> dict[str, object]:
    claims = {"lat": 50.45, "lon": 30.52, "submitter": "w"}
    submission = {"id": 1, "claims": claims, "geolocation": {"observed": observed}}
    return {"metadata": {"gps": gps}, "submissions": [submission], "findings": []}


@pytest.mark.parametrize(
    ("gps", "observed"),
    [
        (
            {
                "lat": None,
                "lon": None,
                "valid": False,
                "invalid_reason": "gps-invalid",
                "raw": {"lat": 123.0, "lon": 30.52},
                "source": "exif",
            },
            None,
        ),
        ({"lat": 123.0, "lon": 30.52, "source": "exif"}, None),
        ({"lat": 0.0, "lon": 0.0, "source": "exif"}, {"lat": 0.0, "lon": 0.0, "source": "exif"}),
    ],
    ids=["marked-invalid", "older-record-lat-123", "older-record-null-island"],
)
def test_review_map_and_metadata_show_no_unusable_position(
    gps: dict[str, object], observed: dict[str, object] | None
) -> None:
    """Only the claimed point is drawn; the GPS row says why the position is unused."""
    from plugins.evidence_review import views

    record = _record(gps, observed)
    view = views.map_view(record)
    assert view is not None
    assert [p.kind for p in view.points] == ["claimed"] and view.lines == ()
    assert views.map_center(record) == (50.45, 30.52)
    assert views.comparisons(record)[0]["observed_place"] is None
    rows = dict(views.metadata_rows(record["metadata"]))  # type: ignore[arg-type]
    assert rows["gps"].startswith("unusable, not used (gps-")
    assert "123" not in rows["gps"] and "30.52" not in rows["gps"]


# --- review state (verification/review/state.py) ---------------------------------------------


def test_review_state_latest_decision_in_force_and_disagreement() -> None:
    """The latest decision is in force; analysts disagree while their own latest decisions differ."""
    t = "2026-01-01T00:00:00.000000Z"
    events = [
        (5, t, {"action": "decision", "decision": "verified", "analyst": "ana", "note": "a"}),
        (6, t, {"action": "comment", "analyst": "bo", "note": "looks odd"}),
        (7, t, {"action": "decision", "decision": "rejected", "analyst": "bo", "note": "b"}),
    ]
    state = review.review_state(events)
    assert (state.decision, state.decided_by, state.decisions, state.comments) == (
        "rejected",
        "bo",
        2,
        1,
    )
    assert state.disagree
    agreed = review.review_state(
        [*events, (8, t, {"decision": "rejected", "analyst": "ana", "note": "c"})]
    )
    assert not agreed.disagree and agreed.decisions == 3 and agreed.last_seq == 8


def test_comments_and_assignments_are_not_decisions(ctx: Context) -> None:
    """A comment and an assignment are review events that leave the decision history alone."""
    (sha,) = add_items(ctx, 1)
    review.record_comment(ctx, sha, "ask for the raw file", "ana")
    review.assign(ctx, sha, "bo", "ana")
    events = ctx.ledger.events(sha)
    assert [e.detail["action"] for e in events if e.type == "review"] == ["comment", "assignment"]
    assert review.decisions(events) == []
    assert review.current_decision(events) is None
    page = review.queue(ctx.engine, QueueFilters(assignee="bo", review="undecided"))
    assert [r.sha256 for r in page.rows] == [sha]
    assert ctx.ledger.verify(sha).ok


def test_comment_on_unknown_item_is_keyerror(ctx: Context) -> None:
    """Nothing is appended for an item that does not exist."""
    with pytest.raises(KeyError):
        review.record_comment(ctx, "0" * 64, "text", "ana")
    assert ctx.ledger.events("0" * 64) == []


def test_queue_search_matches_prefix_filename_and_note(ctx: Context) -> None:
    """Search finds an item by a hash prefix, its file name and analysts' notes, ignoring case."""
    a, b = add_items(ctx, 2)
    review.record_comment(ctx, b, "Shadow Length checked", "ana")
    assert [r.sha256 for r in review.queue(ctx.engine, QueueFilters(search=a[:12])).rows] == [a]
    found = review.queue(ctx.engine, QueueFilters(search=a[:8].upper() + ".JPG"))
    assert [r.sha256 for r in found.rows] == [a]
    note = review.queue(ctx.engine, QueueFilters(search="shadow length"))
    assert [r.sha256 for r in note.rows] == [b]
    with pytest.raises(review.ReviewError):
        review.queue(ctx.engine, QueueFilters(review="maybe"))


# --- per-case access (verification/review/access.py) -----------------------------------------


def test_case_scope_from_roles() -> None:
    """Unset: all cases; mapped roles: their union; "*": all; no mapped role: none."""
    mapping = {"Lagos-Team": ["case-lagos"], "kyiv-team": ["case-kyiv"], "Admin": ["*"]}
    assert review.scope_for(["user"], None).unrestricted
    both = review.scope_for(["lagos-team", "KYIV-TEAM"], mapping)
    assert both.cases == frozenset({"case-lagos", "case-kyiv"})
    assert both.allows("case-kyiv") and not both.allows("case-a") and not both.allows(None)
    assert review.scope_for(["admin", "lagos-team"], mapping).unrestricted
    assert review.scope_for(["viewer"], mapping).cases == frozenset()


def test_search_with_many_matches_uses_the_subquery(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the listed-keys limit the search stays a subquery, with the same results."""
    from verification.review import queries

    shas = add_items(ctx, 4)
    listed = review.queue(ctx.engine, QueueFilters(search=".jpg", submitter="ALI"))
    monkeypatch.setattr(queries, "MAX_LISTED_MATCHES", 1)
    subquery = review.queue(ctx.engine, QueueFilters(search=".jpg", submitter="ALI"))
    assert listed.total == subquery.total == 4
    assert [r.sha256 for r in listed.rows] == [r.sha256 for r in subquery.rows]
    assert sorted(r.sha256 for r in subquery.rows) == sorted(shas)


def test_migration_0005_backfills_review_state_from_decisions(tmp_path: Path) -> None:
    """Decisions recorded before 0005 become the review state: the latest in force, analysts
    whose latest decisions differ disagree; a newer migration run changes nothing."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from verification.ledger.models import MIGRATIONS, Event, ItemReview, make_engine, migrate

    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.connect() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0003_duplicates")
    sha = "ab" * 32
    row = {
        "sha256": sha,
        "size": 1,
        "sha1": "0" * 40,
        "md5": "0" * 32,
        "format": "jpeg",
        "mime": "image/jpeg",
        "kind": "image",
        "vault_key": "v",
        "first_seen": T0,
        "case_id": "case-1",
        "status": "consistent",
        "fixity": "success",
    }
    details = [
        {"decision": "verified", "note": "ok", "analyst": "ana"},
        {"decision": "rejected", "note": "no", "analyst": "bo"},
    ]
    with engine.begin() as conn:
        conn.execute(insert(Item), [row])
        conn.execute(
            insert(Event),
            [
                {
                    "uuid": str(uuid.uuid4()),
                    "item_sha256": sha,
                    "seq": n + 1,
                    "event_type": "review",
                    "event_time": f"2026-01-0{n + 1}T00:00:00.000000Z",
                    "outcome": "success",
                    "detail": detail,
                    "agents": [],
                    "step_key": f"review:{n}",
                    "prev_hash": "0" * 64,
                    "hash": "0" * 64,
                    "key_id": "k",
                    "signature": "s",
                }
                for n, detail in enumerate(details)
            ],
        )
    migrate(engine)
    migrate(engine)
    with Session(engine) as session:
        state = session.scalars(select(ItemReview)).one()
    assert (state.decision, state.decided_by, state.decisions, state.disagree) == (
        "rejected",
        "bo",
        2,
        True,
    )
    assert state.notes == "ok\nno" and state.last_seq == 2


def test_undecided_count_is_all_minus_decided(ctx: Context) -> None:
    """The undecided total (counted as all minus decided) matches the rows, with other filters."""
    shas = add_items(ctx, 3)
    add_items(ctx, 2, case_id="case-2")
    review.record_decision(ctx, shas[0], "verified", "checked", "ana")
    review.record_comment(ctx, shas[1], "a comment is not a decision", "ana")
    page = review.queue(ctx.engine, QueueFilters(case="case-1", review="undecided"))
    assert page.total == 2 == len(page.rows)
    assert sorted(r.sha256 for r in page.rows) == sorted(shas[1:])
    assert review.queue(ctx.engine, QueueFilters(review="undecided")).total == 4
    assert review.queue(ctx.engine, QueueFilters(review="decided")).total == 1


def test_keyframe_times_label_each_frame() -> None:
    """The NN-th keyframe file gets the NN-th keyframe's timecode; unknown times get none."""
    from plugins.evidence_review import views

    record = {"perceptual": {"keyframes": [{"time_s": 0.0}, {"time_s": 75.25}, {"time_s": None}]}}
    assert views.keyframe_times(record) == {"frame-00.jpg": "0:00.0", "frame-01.jpg": "1:15.2"}
    assert views.keyframe_times({}) == {}
