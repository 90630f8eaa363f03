"""evidence_intake on the distributed layout of docker-compose.yaml, started natively: Airflow's
metadata and the custody ledger on PostgreSQL, Celery over Redis with two worker processes (the
compose file's ``--scale airflow-worker=2``, one task each), S3 over HTTP (moto) reached through
the ``evidence_s3`` Connection, and the default ``EVIDENCE_WORKERS`` (every core).

The stack is ``scripts/airflow_stack.py`` with the compose file's executor settings; the run is
triggered through the REST API as the UI triggers it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import photo
from tests.integration.airflow_support import s3_connection
from tests.integration.stack_support import running_stack
from verification import pipeline

pytestmark = [pytest.mark.distributed, pytest.mark.integration, pytest.mark.postgres]

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
COMPONENTS = (
    "api-server",
    "scheduler",
    "dag-processor",
    "triggerer",
    "celery-worker-1",
    "celery-worker-2",
)


def _admin() -> Any:
    import psycopg2

    try:
        conn = psycopg2.connect(dbname="postgres", connect_timeout=3, **PG)
    except psycopg2.OperationalError as exc:
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 is not reachable ({type(exc).__name__})")
    conn.autocommit = True
    return conn


def _empty_redis_db() -> int:
    """An empty Redis database number (1-15) on 127.0.0.1:6379, or skip."""
    redis = pytest.importorskip("redis", reason="the celery provider brings the redis client")
    for number in range(15, 0, -1):
        try:
            client = redis.Redis(host="127.0.0.1", port=6379, db=number, socket_timeout=3)
            if client.dbsize() == 0:
                return number
        except redis.ConnectionError:
            pytest.skip("Redis at 127.0.0.1:6379 is not reachable")
    pytest.skip("no empty Redis database number on 127.0.0.1:6379")


@pytest.fixture
def databases() -> Iterator[tuple[str, str]]:
    """Fresh PostgreSQL databases for Airflow's metadata and for the ledger; dropped after."""
    suffix = uuid.uuid4().hex[:10]
    names = [f"airflow_dist_{suffix}", f"evidence_dist_{suffix}"]
    admin = _admin()
    with admin.cursor() as cur:
        for name in names:
            cur.execute(f'CREATE DATABASE "{name}"')
    try:
        metadata, ledger = (f"postgresql+psycopg2://postgres@127.0.0.1:5432/{n}" for n in names)
        yield metadata, ledger
    finally:
        with admin.cursor() as cur:
            for name in names:
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture
def bucket(s3_server: str) -> dict[str, Any]:
    """A versioned bucket on the moto server."""
    from verification.storage.s3 import S3Store

    name = f"distributed-{uuid.uuid4().hex[:12]}"
    store = S3Store(name, endpoint_url=s3_server, region="us-east-1")
    store.ensure_bucket(versioning=True)
    return {"store": store, "name": name, "endpoint": s3_server}


def test_intake_runs_on_two_celery_workers(
    tmp_path: Path, databases: tuple[str, str], bucket: dict[str, Any]
) -> None:
    """Submissions in S3, intake triggered through the API: batches run on the Celery workers,
    each with the default number of analysis workers; every run is green, every photo recorded."""
    metadata, ledger = databases
    redis_db = _empty_redis_db()
    store = bucket["store"]
    with running_stack(
        tmp_path,
        COMPONENTS,
        store,
        AIRFLOW__CORE__EXECUTOR="CeleryExecutor",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=metadata,
        AIRFLOW__CELERY__BROKER_URL=f"redis://127.0.0.1:6379/{redis_db}",
        AIRFLOW__CELERY__RESULT_BACKEND="db+" + metadata,
        AIRFLOW__CELERY__WORKER_CONCURRENCY="1",  # as docker-compose.yaml: one batch per worker
        EVIDENCE_DATABASE_URL=ledger,
        AIRFLOW_CONN_EVIDENCE_S3=s3_connection(bucket["endpoint"], bucket["name"]),
    ) as stack:
        ctx = stack.ctx
        for seed in range(41, 47):
            stack.submit(f"photo{seed}.jpg", photo(seed, taken="2024:03:14 11:20:05"), "case-d")
        run_id = stack.trigger("evidence_intake", {"case": "case-d", "batch_size": 3})
        state = stack.wait_for_run("evidence_intake", run_id, timeout=300)
        assert state == "success", stack.task_log("evidence_intake", run_id)

        # Unpausing lets the */5 schedule start a run too; whichever run took a batch, every
        # intake run must be green and every batch must have run on a Celery worker.
        runs = stack.api("GET", "/api/v2/dags/evidence_intake/dagRuns")["dag_runs"]
        for run in runs:
            assert stack.wait_for_run("evidence_intake", run["dag_run_id"]) == "success"
        batches = [
            t
            for run in runs
            for t in stack.task_instances("evidence_intake", run["dag_run_id"])
            if t["task_id"] == "process_batch" and t["state"] != "skipped"
        ]
        assert batches and all(t["state"] == "success" and t["hostname"] for t in batches)
        keys = sorted(info.key for info in store.list("incoming/case-d/"))
        outcomes = pipeline.recorded_outcomes(ctx, keys)
        assert all(o.item and o.status == "consistent" for o in outcomes), outcomes
        assert ctx.ledger.verify().ok
        agents = [a for e in ctx.ledger.events(outcomes[0].item or "") for a in e.agents]
        assert any(a.get("task_id") == "process_batch" for a in agents)
