"""One settings object for the whole pipeline, read from ``EVIDENCE_*`` environment variables.

Every option has a default that works on the embedded setup (SQLite file and a local object store
under ``./var``). docs/configuration.md is generated from the field descriptions below.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Pipeline configuration; build once with :func:`load_settings` and pass it down."""

    model_config = SettingsConfigDict(env_prefix="EVIDENCE_", extra="ignore", frozen=True)

    home: Path = Field(
        Path("var"), description="Directory for the embedded default: database, store, keys."
    )
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL of the custody ledger, e.g. "
        "postgresql+psycopg2://user@host/evidence. Default: SQLite file HOME/evidence.db.",
    )
    store: Literal["local", "s3"] = Field(
        "local", description="Object store backend: a local directory or any S3 endpoint."
    )
    store_path: Path | None = Field(
        None, description="Root directory of the local store. Default: HOME/store."
    )
    s3_bucket: str = Field(
        "evidence", description="Bucket holding incoming/, vault/, derivatives/."
    )
    s3_endpoint_url: str | None = Field(
        None, description="S3 endpoint (MinIO, moto); unset means AWS. Credentials: boto3 chain."
    )
    s3_region: str | None = Field(None, description="S3 region name.")
    retention_days: int = Field(
        0,
        ge=0,
        description="Object Lock retention (GOVERNANCE) for vault objects when the bucket has "
        "Object Lock enabled; 0 leaves the bucket default.",
    )
    key_path: Path | None = Field(
        None,
        description="Ed25519 private key (PEM) that signs custody events. Default: "
        "HOME/keys/installation.pem, created by `evidence init`.",
    )
    workers: int = Field(
        default_factory=lambda: os.cpu_count() or 1,
        ge=1,
        description="Processes used to analyse one batch. Default: all cores.",
    )
    batch_size: int = Field(50, ge=1, description="Submissions per batch (per Airflow task).")
    analysis_timeout: float = Field(
        600.0,
        gt=0,
        description="Seconds the analysis of one file may take before its worker is killed and "
        "the file quarantined.",
    )
    video_timeout: float = Field(
        120.0, gt=0, description="Seconds one video's decoding may take before it is abandoned."
    )
    keyframes: int = Field(8, ge=1, le=64, description="Evenly spaced keyframes kept per video.")
    max_image_pixels: int = Field(
        200_000_000, description="Images larger than this are refused as decompression bombs."
    )
    distance_threshold_km: float = Field(
        5.0, gt=0, description="Observed-vs-claimed place distance that raises a finding."
    )
    time_tolerance_hours: float = Field(
        24.0, gt=0, description="Capture-vs-claimed time difference that raises a finding."
    )
    pdq_threshold: int = Field(
        31,
        ge=0,
        le=256,
        description="PDQ Hamming distance at or below which items are near-duplicates.",
    )
    geocoder: Literal["offline", "nominatim"] = Field(
        "offline",
        description="Reverse geocoder. 'nominatim' SENDS COORDINATES to the configured server.",
    )
    nominatim_url: str = Field(
        "https://nominatim.openstreetmap.org",
        description="Nominatim server when geocoder=nominatim.",
    )
    nominatim_user_agent: str = Field(
        "evidence-verification", description="User agent sent to Nominatim."
    )
    tile_url: str | None = Field(
        None,
        description="Map tile server URL template for the review UI; unset draws no outside map.",
    )
    tsa_urls: list[str] = Field(
        default_factory=list,
        description="RFC 3161 time-stamp authorities (JSON list); none means tokens stay pending.",
    )
    analyst: str | None = Field(
        None, description="Name recorded as the agent of CLI actions. Default: the OS user."
    )

    @cached_property
    def resolved_database_url(self) -> str:
        """The ledger URL, with the embedded SQLite default filled in."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'evidence.db').resolve()}"

    @cached_property
    def resolved_store_path(self) -> Path:
        """Root of the local object store."""
        return (self.store_path or self.home / "store").resolve()

    @cached_property
    def resolved_key_path(self) -> Path:
        """Where the installation's signing key lives."""
        return (self.key_path or self.home / "keys" / "installation.pem").resolve()


@dataclass(frozen=True, slots=True)
class AnalysisOptions:
    """What shapes the analysis of one file: decoding limits, thresholds, the geocoder.

    Built once from :class:`~verification.config.Settings` in the process that owns the batch and
    sent to every analysis worker, so a worker behaves the same under the CLI, ``dag.test()``, a
    LocalExecutor or Celery task, or a Kubernetes pod.
    """

    max_image_pixels: int = 200_000_000
    video_timeout: float = 120.0
    keyframes: int = 8
    distance_threshold_km: float = 5.0
    time_tolerance_hours: float = 24.0
    geocoder: str = "offline"
    nominatim_url: str = "https://nominatim.openstreetmap.org"
    nominatim_user_agent: str = "evidence-verification"

    @classmethod
    def from_settings(cls, settings: Settings) -> AnalysisOptions:
        """The analysis part of the pipeline settings."""
        return cls(**{f.name: getattr(settings, f.name) for f in fields(cls)})


def load_settings(**overrides: object) -> Settings:
    """Read the environment once; keyword overrides win (tests and the CLI use them)."""
    return Settings(**overrides)  # type: ignore[arg-type]


def render_configuration_doc() -> str:
    """docs/configuration.md, generated from the field descriptions (a test keeps it in sync)."""
    lines = [
        "# Configuration",
        "",
        "Every option is an environment variable with the `EVIDENCE_` prefix. The defaults are the",
        "embedded setup: a SQLite ledger and a local object store under `./var`, nothing online.",
        "Lists are JSON (`EVIDENCE_TSA_URLS='[\"https://tsa.example\"]'`).",
        "",
        "This page is generated from `verification/config.py`:",
        "`python -c 'from verification.config import render_configuration_doc as r; print(r(), end=\"\")' > docs/configuration.md`",
        "",
        "| variable | default | meaning |",
        "| --- | --- | --- |",
    ]
    for name, field in Settings.model_fields.items():
        default = (
            "all cores"
            if field.default_factory is not None and name == "workers"
            else field.default
        )
        if field.default_factory is not None and name != "workers":
            default = field.default_factory()  # type: ignore[call-arg]
        shown = "(unset)" if default is None else f"`{default}`"
        lines.append(f"| `EVIDENCE_{name.upper()}` | {shown} | {field.description} |")
    lines += [
        "",
        "S3 credentials come from boto3's standard chain (environment, profile, instance role);",
        "they are never stored by the pipeline. In Airflow, the `evidence_s3` Connection takes",
        "precedence over these variables for the object store (see docs/deployment.md).",
        "",
    ]
    return "\n".join(lines)
