"""Builders shared by the review UI tests: an Airflow home, users, and a small evidence set."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from tests.helpers import init_context, make_settings, photo
from verification import pipeline
from verification.core.claims import Claims
from verification.pipeline import Context
from verification.pipeline.submission import submit_file

REPO = Path(__file__).resolve().parents[2]
PLUGINS = REPO / "plugins"
AIRFLOW = Path(sys.executable).parent / "airflow"

# user -> (SimpleAuthManager role, password)
USERS = {
    "admin": ("admin", "admin-pw"),
    "analyst": ("user", "analyst-pw"),
    "viewer": ("viewer", "viewer-pw"),
}
XSS = "<script>alert(1)</script>"
KYIV = (50.4501, 30.5234, 179.0)
LAGOS = (6.5244, 3.3792, 41.0)


def airflow_env(home: Path) -> dict[str, str]:
    """Environment of an isolated Airflow: SQLite in ``home``, our plugin, three users."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "dags").mkdir(exist_ok=True)
    passwords = home / "passwords.json"
    passwords.write_text(json.dumps({name: pw for name, (_, pw) in USERS.items()}))
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(
            f"{name}:{role}" for name, (role, _) in USERS.items()
        ),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PLUGINS),
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__API_AUTH__JWT_SECRET": "test-jwt-secret-" + "x" * 64,
        "AIRFLOW__API__SECRET_KEY": "test-api-secret-" + "y" * 32,
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
    }


def migrate_airflow(env: dict[str, str]) -> None:
    """``airflow db migrate`` in a subprocess (once per session: it takes a few seconds)."""
    subprocess.run(
        [str(AIRFLOW), "db", "migrate"],
        env={**os.environ, **env},
        check=True,
        capture_output=True,
        timeout=300,
    )


@dataclass
class Evidence:
    """A processed evidence set: the context and the items by sample name."""

    ctx: Context
    items: dict[str, str] = field(default_factory=dict)
    originals: dict[str, bytes] = field(default_factory=dict)


def build_evidence(home: Path, **settings: object) -> Evidence:
    """Five processed photos in two cases, one with a hostile EXIF Make and hostile claims."""
    ctx = init_context(make_settings(home, **settings))
    samples = {
        "kyiv": (
            photo(1, taken="2024:03:14 11:20:05", offset="+02:00", gps=KYIV),
            Claims("case-a", "alice", KYIV[0], KYIV[1], datetime(2024, 3, 14, 9, 30, tzinfo=UTC)),
        ),
        "lagos": (
            photo(2, taken="2024:03:14 10:02:41", offset="+01:00", gps=LAGOS),
            Claims("case-a", "bob", KYIV[0], KYIV[1], datetime(2024, 3, 14, 9, 0, tzinfo=UTC)),
        ),
        "hostile": (
            photo(3, make=XSS, model="<b>bold</b>", taken="2024:03:15 08:00:00"),
            Claims(
                "case-a",
                "mallory",
                None,
                None,
                None,
                "javascript:alert(2)",
                '<img src=x onerror="alert(3)">',
            ),
        ),
        "plain": (photo(4), Claims("case-b", "carol")),
        "broken": (photo(5)[:600], Claims("case-b", "carol")),
    }
    evidence = Evidence(ctx)
    for name, (data, claims) in samples.items():
        path = home / f"{name}.jpg"
        path.write_bytes(data)
        evidence.items[name] = submit_file(ctx.store, path, claims).sha256
        evidence.originals[name] = data
    pipeline.ingest(ctx, workers=1)
    return evidence
