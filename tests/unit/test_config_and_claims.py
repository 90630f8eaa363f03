"""Settings defaults are the embedded setup; claims parse strictly and never echo coordinates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from verification.core import resources
from verification.core.claims import (
    Claims,
    InvalidClaim,
    claims_from_metadata,
    parse_location,
    parse_time,
)
from verification.core.config import ConfigurationError, load_settings, render_configuration_doc
from verification.core.resources import MIB

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


def test_invalid_setting_is_refused_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bad setting stops at load time with one line naming the variable (what DAG tasks and the
    CLI both show), never pydantic's multi-line report."""
    monkeypatch.setenv("EVIDENCE_STORE", "ftp")
    with pytest.raises(ConfigurationError) as exc:
        load_settings()
    assert str(exc.value) == "EVIDENCE_STORE is 'ftp': input should be 'local' or 's3'"


def test_database_password_is_never_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A refused database URL is described without repeating it (it may hold a password)."""
    monkeypatch.setenv("EVIDENCE_DATABASE_URL", "mysql://ops:hunter2@db/evidence")
    with pytest.raises(ConfigurationError) as exc:
        load_settings()
    assert "scheme 'mysql' is not supported" in str(exc.value)
    assert "hunter2" not in str(exc.value)


def test_default_workers_fit_in_available_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without EVIDENCE_WORKERS, as many workers as cores, but no more than fit in memory at
    EVIDENCE_WORKER_MEMORY_MB each, and at least one."""
    monkeypatch.delenv("EVIDENCE_WORKERS", raising=False)
    monkeypatch.setattr(resources, "usable_cores", lambda: 8)
    monkeypatch.setattr(resources, "available_memory", lambda: 5 * 1024 * MIB)
    assert load_settings(worker_memory_mb=2048).workers == 2
    assert load_settings(worker_memory_mb=1200).workers == 4
    assert load_settings(worker_memory_mb=0).workers == 8  # no limit: every core
    monkeypatch.setattr(resources, "available_memory", lambda: 100 * MIB)
    assert load_settings().workers == 1


def test_available_memory_respects_the_container_limit(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Inside a container, what is left under its cgroup memory limit counts, not the host's."""
    limit, usage = tmp_path / "memory.max", tmp_path / "memory.current"
    limit.write_text(f"{4 * 1024 * MIB}\n")
    usage.write_text(f"{1024 * MIB}\n")
    monkeypatch.setattr(resources, "_CGROUP_LIMITS", ((limit, usage),))
    monkeypatch.setattr(resources, "_mem_available", lambda: 256 * 1024 * MIB)
    assert resources.available_memory() == 3 * 1024 * MIB
    limit.write_text("max\n")
    assert resources.available_memory() == 256 * 1024 * MIB


def test_worker_memory_default_follows_the_decode_budget() -> None:
    """The default worker limit leaves the same room above a larger decode budget."""
    assert load_settings().worker_memory_mb == 2048
    assert load_settings(decode_budget_mb=1024).worker_memory_mb == 2560


def test_worker_memory_too_small_for_the_decode_budget_is_refused() -> None:
    """A worker limit that cannot hold a worker plus one decode at the budget is refused."""
    with pytest.raises(ConfigurationError, match=r"EVIDENCE_WORKER_MEMORY_MB=900 leaves no room"):
        load_settings(worker_memory_mb=900)


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


def test_dag_tasks_fail_with_the_same_configuration_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A DAG task opening its context meets the CLI's one-line message, not a pydantic report."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "evidence_common_under_test", ROOT / "dags" / "evidence_common.py"
    )
    assert spec is not None and spec.loader is not None
    common = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(common)  # no Airflow import at module level
    monkeypatch.setenv("EVIDENCE_WORKERS", "many")
    with pytest.raises(ConfigurationError) as exc:
        common.open_evidence_context({})
    assert str(exc.value) == (
        "EVIDENCE_WORKERS is 'many': input should be a valid integer, unable to parse string "
        "as an integer"
    )
