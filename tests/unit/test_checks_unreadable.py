"""run_checks on media the extract step could not read: no findings about what is 'missing'."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.helpers import init_context, make_settings, photo
from verification import pipeline
from verification.checks import CheckResult, run_checks
from verification.core.claims import Claims
from verification.core.config import Settings, load_settings
from verification.ledger.models import Record
from verification.media._model import empty_metadata
from verification.pipeline.submission import submit_file

SUBMITTED = datetime(2025, 4, 1, 12, 0, tzinfo=UTC)
ABSENCES = {"no-location-in-file", "no-capture-time", "metadata-stripped"}


@pytest.fixture
def settings() -> Settings:
    return load_settings(geocoder="offline")


def _run(settings: Settings, media: dict[str, Any], **kwargs: Any) -> CheckResult:
    metadata = kwargs.pop("metadata", empty_metadata())
    return run_checks(
        media, metadata, {"pdq": None}, kwargs.pop("claims", None), SUBMITTED, settings, **kwargs
    )


def _codes(result: CheckResult) -> set[str]:
    return {f.code for f in result.findings}


def test_unreadable_media_gets_no_absence_findings(settings: Settings) -> None:
    """An unreadable file is not said to lack a location, a time or metadata."""
    result = _run(settings, {"kind": "image", "readable": False})
    assert result.findings == ()
    assert result.geolocation["observed"] is None  # the summary keeps its shape


def test_readable_media_without_metadata_gets_absence_findings(settings: Settings) -> None:
    """The same empty metadata from a readable file is worth saying."""
    assert _codes(_run(settings, {"kind": "image", "readable": True})) == ABSENCES


def test_media_without_readable_flag_counts_as_readable(settings: Settings) -> None:
    """Records made before the flag existed are checked as before."""
    assert _codes(_run(settings, {"kind": "image"})) == ABSENCES


def test_unreadable_media_still_compares_what_was_read(settings: Settings) -> None:
    """GPS read from a truncated photo's EXIF is still compared with the claim."""
    metadata = empty_metadata() | {
        "gps": {"lat": -1.2921, "lon": 36.8219, "alt": None, "time_utc": None, "source": "exif"},
        "metadata_stripped": False,
    }
    claims = Claims("case-1", lat=-4.0435, lon=39.6682)
    result = _run(settings, {"kind": "image", "readable": False}, metadata=metadata, claims=claims)
    assert "location-contradicts-claim" in _codes(result)
    assert not _codes(result) & ABSENCES


def test_unreadable_garbage_keeps_extension_mismatch(settings: Settings) -> None:
    """Bytes that are not what their name says are still mislabelled, readable or not."""
    result = _run(settings, {"kind": "unknown", "readable": False}, extension_mismatch=True)
    assert [(f.code, f.message) for f in result.findings] == [
        (
            "extension-mismatch",
            "The file name's extension does not match the detected format.",
        )
    ]


def _record(tmp_path: Path, name: str, data: bytes) -> tuple[pipeline.Outcome, dict[str, Any]]:
    """Submit and process one file; its outcome and its stored record."""
    ctx = init_context(make_settings(tmp_path / "home"))
    path = tmp_path / name
    path.write_bytes(data)
    key = submit_file(ctx.store, path, Claims("case-1")).key
    outcome = pipeline.process_submission(ctx, key)
    with Session(ctx.engine) as session:
        record = session.scalar(select(Record).where(Record.item_sha256 == outcome.item))
        assert record is not None
        return outcome, dict(record.data)


def _claim_codes(record: dict[str, Any]) -> set[str]:
    return {f["code"] for sub in record["submissions"] for f in sub["findings"]}


def test_empty_submission_says_empty_file_and_nothing_else(tmp_path: Path) -> None:
    """A zero-byte upload named .jpg: one unreadable finding, 'empty file (0 bytes)'."""
    outcome, record = _record(tmp_path, "empty.jpg", b"")
    assert record["format"]["format"] == "empty"
    assert [(f["code"], f["message"]) for f in record["item_findings"]] == [
        ("unreadable", "empty file (0 bytes)")
    ]
    assert _claim_codes(record) == set()
    assert (outcome.status, outcome.findings) == ("unreadable", ("unreadable",))


def test_truncated_submission_says_truncated_without_absence_findings(tmp_path: Path) -> None:
    """A cut-off photo is 'truncated', and not also 'no location' or 'no capture time'."""
    data = photo(4, taken="2024:03:14 11:20:05")
    _, record = _record(tmp_path, "cut.jpg", data[: len(data) // 2])
    assert [(f["code"], f["message"]) for f in record["item_findings"]] == [
        ("unreadable", "truncated: the file ends before the image data is complete")
    ]
    assert not _claim_codes(record) & ABSENCES
