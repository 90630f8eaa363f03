"""Settings defaults are the embedded setup; claims parse strictly and never echo coordinates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from verification.claims import (
    Claims,
    InvalidClaim,
    claims_from_metadata,
    parse_location,
    parse_time,
)
from verification.config import load_settings, render_configuration_doc

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_are_embedded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """With no environment, the ledger is SQLite and the store a local directory under var/."""
    for name in ("EVIDENCE_HOME", "EVIDENCE_STORE", "EVIDENCE_DATABASE_URL", "EVIDENCE_GEOCODER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    assert settings.store == "local"
    assert settings.resolved_database_url == f"sqlite:///{tmp_path / 'var' / 'evidence.db'}"
    assert settings.resolved_store_path == tmp_path / "var" / "store"
    assert settings.geocoder == "offline"
    assert settings.tsa_urls == []


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    """EVIDENCE_* variables set every option, lists as JSON."""
    monkeypatch.setenv("EVIDENCE_STORE", "s3")
    monkeypatch.setenv("EVIDENCE_S3_BUCKET", "cases")
    monkeypatch.setenv("EVIDENCE_TSA_URLS", '["http://127.0.0.1:9/tsa"]')
    monkeypatch.setenv("EVIDENCE_DISTANCE_THRESHOLD_KM", "2.5")
    settings = load_settings()
    assert (settings.store, settings.s3_bucket, settings.distance_threshold_km) == (
        "s3",
        "cases",
        2.5,
    )
    assert settings.tsa_urls == ["http://127.0.0.1:9/tsa"]


def test_invalid_setting_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A store kind that does not exist stops at load time."""
    monkeypatch.setenv("EVIDENCE_STORE", "ftp")
    with pytest.raises(ValueError, match="store"):
        load_settings()


def test_configuration_doc_is_current() -> None:
    """docs/configuration.md is exactly what the settings describe."""
    assert (ROOT / "docs" / "configuration.md").read_text() == render_configuration_doc()


def test_claimed_time_without_offset_is_utc() -> None:
    """A naive claimed time is read as UTC; offsets are kept."""
    assert parse_time("2024-03-14T10:00:00") == datetime(2024, 3, 14, 10, tzinfo=UTC)
    assert parse_time("2024-03-14T10:00:00+02:00").utcoffset() == timedelta(hours=2)
    assert parse_time("2024-03-14T10:00:00Z").tzinfo is not None


@pytest.mark.parametrize("value", ["91,0", "0,181", "nan,0", "1", "a,b", "1,2,3"])
def test_bad_locations_are_refused_without_echoing_them(value: str) -> None:
    """Out-of-range or malformed locations raise, and the message does not repeat the numbers."""
    with pytest.raises(InvalidClaim) as exc:
        parse_location(value)
    assert value not in str(exc.value)


def test_metadata_round_trip() -> None:
    """Claims survive the trip through object metadata."""
    claims = Claims(
        "case-1", "w", 50.45, -30.5, parse_time("2024-03-14T10:00:00+02:00"), "https://x", "n"
    )
    assert claims_from_metadata(claims.to_metadata(), "other") == claims


def test_half_a_location_is_refused() -> None:
    """A latitude without a longitude is an invalid claim."""
    with pytest.raises(InvalidClaim, match="both"):
        claims_from_metadata({"claimed-lat": "1"}, "c")
