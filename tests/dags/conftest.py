"""Fixtures for running the DAGs for real: one Airflow home per session, one evidence home per test."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.helpers import init_context, make_settings
from tests.integration.airflow_support import (
    DagRunResult,
    airflow_env,
    migrate,
    run_dag,
    s3_connection,
)
from verification.core.claims import Claims
from verification.pipeline import Context
from verification.pipeline.submission import Submitted, submit_file
from verification.storage import ObjectStore


@pytest.fixture(scope="session")
def airflow_base_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """An Airflow home with a migrated SQLite metadata DB, shared by the session's DAG runs."""
    env = airflow_env(tmp_path_factory.mktemp("airflow-home"))
    migrate(env)
    return env


@dataclass
class Evidence:
    """An initialised evidence home (ledger, key, store) and the environment DAG runs get."""

    ctx: Context
    env: dict[str, str]
    tmp: Path
    submitted: list[Submitted] = field(default_factory=list)

    @property
    def store(self) -> ObjectStore:
        """The store the DAGs read and write."""
        return self.ctx.store

    def submit(self, name: str, data: bytes, case: str = "case-1") -> Submitted:
        """Upload one file to incoming/<case>/ as an investigator would."""
        path = self.tmp / "uploads" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        done = submit_file(self.store, path, Claims(case, "tester"))
        self.submitted.append(done)
        return done

    def run(self, dag_id: str, **kwargs: object) -> DagRunResult:
        """dag.test() of one DAG against this evidence home."""
        return run_dag(self.env, dag_id, **kwargs)  # type: ignore[arg-type]


def _evidence(
    tmp_path: Path, base: dict[str, str], store: ObjectStore | None, **env: str
) -> Evidence:
    settings = make_settings(tmp_path / "evidence")
    ctx = init_context(settings, store=store, agents=[{"type": "test"}])
    run_env = {**base, "EVIDENCE_HOME": str(settings.home), **env}
    return Evidence(ctx, run_env, tmp_path)


@pytest.fixture
def local_evidence(tmp_path: Path, airflow_base_env: dict[str, str]) -> Evidence:
    """Embedded default: SQLite ledger and local store, no Airflow Connection."""
    return _evidence(tmp_path, airflow_base_env, None)


@pytest.fixture
def s3_evidence(tmp_path: Path, airflow_base_env: dict[str, str], s3_server: str) -> Evidence:
    """A versioned bucket on the moto server, reached by the DAGs only through ``evidence_s3``.

    The EVIDENCE_* settings still say ``local``: a DAG that ignored the Connection would find
    nothing to do, so the tests prove the Connection is used.
    """
    from verification.storage.s3 import S3Store

    bucket = f"evidence-{uuid.uuid4().hex[:12]}"
    store = S3Store(bucket, endpoint_url=s3_server, region="us-east-1")
    store.ensure_bucket(versioning=True)
    return _evidence(
        tmp_path,
        airflow_base_env,
        store,
        AIRFLOW_CONN_EVIDENCE_S3=s3_connection(s3_server, bucket),
    )
