"""One settings object for the whole pipeline, read from ``EVIDENCE_*`` environment variables.

Every option has a default that works on the embedded setup (SQLite file and a local object store
under ``./var``). docs/configuration.md is generated from the field descriptions below.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from pydantic_settings.exceptions import SettingsError

from verification.core.resources import MIB, default_workers
from verification.core.text import printable

# Decoded pixels one file may cost by default (the media layer's budget; see media/budget.py).
DECODE_BUDGET_BYTES = 512 * MIB

# Address space an analysis worker holds before it decodes anything: Python, numpy, Pillow,
# OpenCV, pillow-heif and c2pa loaded and the self-test photo analysed. Measured VmSize 525 MiB
# (Linux x86-64, Python 3.11); an image decoded at the budget adds the budget on top of it.
WORKER_BASELINE_MB = 640
# The default worker limit is this plus the decode budget (2048 MiB with the default budget):
# the baseline, then about 1 GiB for everything besides pixels that one analysis may hold at
# once (EXIF, XMP and C2PA parsing, PDQ on the scaled image, the thumbnail, the video box reader).
WORKER_HEADROOM_MB = 1536
DATABASE_BACKENDS = ("sqlite", "postgresql")


class ConfigurationError(ValueError):
    """A setting that cannot work, named with its ``EVIDENCE_*`` variable and what is wrong."""


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
    s3_public_url: str | None = Field(
        None,
        description="S3 endpoint as investigators' browsers reach it, for the upload page's "
        "signed requests (e.g. http://localhost:9000 when the services see http://minio:9000). "
        "Default: EVIDENCE_S3_ENDPOINT_URL.",
    )
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
    trusted_keys: list[str] = Field(
        default_factory=list,
        description="Fingerprints (key ids, SHA-256 hex) of the installation keys an operator "
        "trusts, kept outside the database (JSON list). When set, `evidence custody verify` "
        "accepts the anchored key pin only if its keys are listed here; empty trusts the pin "
        "written by `evidence init` to checkpoints/anchors/ in the bucket.",
    )
    fixity_cycle_days: int = Field(
        30,
        ge=1,
        description="Every preserved original is re-checked at least this often; the nightly "
        "run fails when one is overdue.",
    )
    fixity_budget_mb: int = Field(
        0,
        ge=0,
        description="Bytes (MiB) of originals one nightly run re-reads, oldest-verified first; "
        "0 checks every original every night.",
    )
    decode_budget_mb: int = Field(
        DECODE_BUDGET_BYTES // MIB,
        ge=1,
        description="Memory (MiB) one image may take to decode, the decoder's own buffers "
        "included, judged from its header; a larger image is not decoded (image-too-large) "
        "but its metadata is read.",
    )
    worker_memory_mb: int = Field(
        default_factory=lambda data: (
            WORKER_HEADROOM_MB + data.get("decode_budget_mb", DECODE_BUDGET_BYTES // MIB)
        ),
        ge=0,
        description="Hard address-space limit (MiB) of one analysis worker; an analysis that "
        "needs more fails alone and its file is quarantined with the reason. 0: no limit.",
        json_schema_extra={"shown_default": "1536 + DECODE_BUDGET_MB (2048)"},
    )
    workers: int = Field(
        default_factory=lambda data: default_workers(data.get("worker_memory_mb")),
        ge=1,
        description="Processes used to analyse one batch. Default: as many as there are cores "
        "and memory for.",
        json_schema_extra={
            "shown_default": "min(cores, available memory / WORKER_MEMORY_MB), at least 1"
        },
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
    view_max_px: int = Field(
        4096,
        ge=256,
        le=16384,
        description="Long side (pixels) of the full-size view made for photos that are not JPEG "
        "(re-encoded within the decode budget); a JPEG's view keeps its own size.",
    )
    proxy_max_px: int = Field(
        1280,
        ge=160,
        le=3840,
        description="Long side (pixels) of the browser-playable proxy made for each video "
        "(1280: 720p for 16:9).",
    )
    proxy_timeout: float = Field(
        900.0,
        gt=0,
        description="Seconds making one video's proxy may take before the transcoder is killed "
        "and the failure recorded.",
    )
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
    case_access: dict[str, list[str]] | None = Field(
        None,
        description=(
            "Review UI: which cases each Airflow role may see, as JSON "
            '({"lagos-team": ["case-lagos"], "Admin": ["*"]}). Unset: every role sees every '
            "case. Set: a user sees the cases of their roles only, and nothing without one."
        ),
    )
    tsa_urls: list[str] = Field(
        default_factory=list,
        description="RFC 3161 time-stamp authorities (JSON list); none means tokens stay pending.",
    )
    analyst: str | None = Field(
        None, description="Name recorded as the agent of CLI actions. Default: the OS user."
    )

    @field_validator("home", "store_path")
    @classmethod
    def _is_directory(cls, value: Path | None) -> Path | None:
        if value is not None and value.exists() and not value.is_dir():
            msg = "exists and is not a directory"
            raise ValueError(msg)
        return value

    @field_validator("key_path")
    @classmethod
    def _is_key_file(cls, value: Path | None) -> Path | None:
        if value is not None and value.is_dir():
            msg = "is a directory, not a key file"
            raise ValueError(msg)
        return value

    @field_validator("database_url")
    @classmethod
    def _is_supported_database(cls, value: str | None) -> str | None:
        if value is not None:
            database_problem(value)
        return value

    @field_validator("s3_endpoint_url", "s3_public_url", "nominatim_url")
    @classmethod
    def _is_web_url(cls, value: str | None) -> str | None:
        if value is not None:
            web_url_problem(value)
        return value

    @field_validator("trusted_keys")
    @classmethod
    def _are_fingerprints(cls, value: list[str]) -> list[str]:
        for fingerprint in value:
            if len(fingerprint) != 64 or any(c not in "0123456789abcdef" for c in fingerprint):
                msg = f"{printable(fingerprint)[:80]!r} is not a key id (64 lower-case hex digits)"
                raise ValueError(msg)
        return value

    @field_validator("tsa_urls")
    @classmethod
    def _are_web_urls(cls, value: list[str]) -> list[str]:
        for url in value:
            try:
                web_url_problem(url)
            except ValueError as exc:
                msg = f"{printable(url)[:80]!r} {exc}"
                raise ValueError(msg) from None
        return value

    @model_validator(mode="after")
    def _worker_has_room_to_decode(self) -> Settings:
        needed = WORKER_BASELINE_MB + self.decode_budget_mb
        if self.worker_memory_mb and self.worker_memory_mb < needed:
            msg = (
                f"EVIDENCE_WORKER_MEMORY_MB={self.worker_memory_mb} leaves no room to decode "
                f"EVIDENCE_DECODE_BUDGET_MB={self.decode_budget_mb}: a worker holds about "
                f"{WORKER_BASELINE_MB} MiB before it decodes anything; give it at least "
                f"{needed}, or lower the budget"
            )
            raise ValueError(msg)
        return self

    @property
    def decode_budget_bytes(self) -> int:
        """The decode budget in bytes (what the media code reads, as from AnalysisOptions)."""
        return self.decode_budget_mb * MIB

    @property
    def worker_memory_limit(self) -> int | None:
        """The worker address-space limit in bytes, or None when there is none."""
        return self.worker_memory_mb * MIB if self.worker_memory_mb else None

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

    Built once from :class:`~verification.core.config.Settings` in the process that owns the batch and
    sent to every analysis worker, so a worker behaves the same under the CLI, ``dag.test()``, a
    LocalExecutor or Celery task, or a Kubernetes pod.
    """

    max_image_pixels: int = 200_000_000
    decode_budget_bytes: int = DECODE_BUDGET_BYTES
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
        return cls(
            max_image_pixels=settings.max_image_pixels,
            decode_budget_bytes=settings.decode_budget_bytes,
            video_timeout=settings.video_timeout,
            keyframes=settings.keyframes,
            distance_threshold_km=settings.distance_threshold_km,
            time_tolerance_hours=settings.time_tolerance_hours,
            geocoder=settings.geocoder,
            nominatim_url=settings.nominatim_url,
            nominatim_user_agent=settings.nominatim_user_agent,
        )


def load_settings(**overrides: object) -> Settings:
    """Read and check the environment once; keyword overrides win (tests and the CLI use them).

    Raises :class:`ConfigurationError` naming each bad ``EVIDENCE_*`` variable and what is
    wrong with it, in one line: the CLI prints it (exit 2), a DAG task fails with it.
    """
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        # A default computed from another setting is not computed when that one is bad: only
        # the bad one is worth reporting.
        errors = exc.errors(include_url=False)
        problems = [_describe(e) for e in errors if e["type"] != "default_factory_not_called"]
        raise ConfigurationError("; ".join(problems)) from None
    except SettingsError as exc:  # a list or JSON value that does not even parse
        raise ConfigurationError(_describe_unparsable(exc)) from None


def database_problem(url: str) -> None:
    """Raise ValueError saying why ``url`` cannot be the ledger's database URL (or return)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        parsed = make_url(url)
    except ArgumentError:
        msg = "is not a database URL (e.g. postgresql+psycopg2://user@host/evidence)"
        raise ValueError(msg) from None
    backend = parsed.get_backend_name()
    if backend not in DATABASE_BACKENDS:
        msg = f"scheme {backend!r} is not supported; use sqlite or postgresql"
        raise ValueError(msg)
    try:
        dialect = parsed.get_dialect()
        dialect.import_dbapi()
    except (NoSuchModuleError, ImportError):
        msg = f"database driver {parsed.drivername!r} is not installed"
        raise ValueError(msg) from None
    if dialect.is_async:
        msg = f"database driver {parsed.drivername!r} is asynchronous; use psycopg2 or psycopg"
        raise ValueError(msg)


def web_url_problem(url: str) -> None:
    """Raise ValueError unless ``url`` is an http(s) URL with a host."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        msg = "is not an http(s) URL with a host"
        raise ValueError(msg)


def _describe(error: Any) -> str:
    """One problem of a ValidationError as ``EVIDENCE_NAME is 'value': what is wrong``."""
    text = str(error["msg"]).removeprefix("Value error, ")
    loc = error.get("loc") or ()
    if not loc:
        return text  # a check across settings names its variables itself
    name = str(loc[0])
    variable = f"EVIDENCE_{name.upper()}"
    if name == "database_url":  # may hold a password: never echo it
        return f"{variable}: {text}"
    shown = printable(str(error.get("input")))
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    return f"{variable} is {shown!r}: {text[:1].lower()}{text[1:]}"


def _describe_unparsable(exc: SettingsError) -> str:
    import re

    found = re.search(r'field "(\w+)"', str(exc))
    name = found.group(1) if found else None
    if name is None:
        return f"the EVIDENCE_* settings cannot be read: {exc}"
    expected = " (a JSON list)" if name in Settings.model_fields and _is_list(name) else ""
    return f"EVIDENCE_{name.upper()} cannot be parsed{expected}"


def _is_list(name: str) -> bool:
    annotation = Settings.model_fields[name].annotation
    return getattr(annotation, "__origin__", None) is list


def render_configuration_doc() -> str:
    """docs/configuration.md, generated from the field descriptions (a test keeps it in sync)."""
    lines = [
        "# Configuration",
        "",
        "Every option is an environment variable with the `EVIDENCE_` prefix. The defaults are the",
        "embedded setup: a SQLite ledger and a local object store under `./var`, nothing online.",
        "Lists are JSON (`EVIDENCE_TSA_URLS='[\"https://tsa.example\"]'`).",
        "",
        "This page is generated from `verification/core/config.py`:",
        "`python -c 'from verification.core.config import render_configuration_doc as r; print(r(), end=\"\")' > docs/configuration.md`",
        "",
        "| variable | default | meaning |",
        "| --- | --- | --- |",
    ]
    for name, field in Settings.model_fields.items():
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        if "shown_default" in extra:
            shown = str(extra["shown_default"])
        else:
            default = field.get_default(call_default_factory=True, validated_data={})
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
