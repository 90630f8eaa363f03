"""evidence_intake on a real distributed Airflow: CeleryExecutor, PostgreSQL, Redis, S3 over HTTP.

The fixture starts an api-server (workers fetch their task from its execution API), a scheduler,
a DAG processor and a Celery worker as subprocesses, each in its own process group, on a fresh
PostgreSQL database and an empty Redis database number; teardown kills every group it started.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.conftest import free_port
from tests.helpers import init_context, make_settings, photo
from tests.integration.airflow_support import PYTHON, REPO, airflow_env, migrate, s3_connection
from verification.claims import Claims
from verification.db import Item, Submission
from verification.intake import submit_file

pytestmark = [pytest.mark.distributed, pytest.mark.integration, pytest.mark.postgres]

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
AIRFLOW = str(Path(PYTHON).parent / "airflow")
RUN_TIMEOUT = 240.0


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


def _fresh_databases(names: list[str]) -> Iterator[list[str]]:
    admin = _admin()
    with admin.cursor() as cur:
        for name in names:
            cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield [f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}" for name in names]
    finally:
        with admin.cursor() as cur:
            for name in names:
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


class Cluster:
    """The started Airflow processes, their environment and logs."""

    def __init__(self, env: dict[str, str], logs: Path, metadata_url: str) -> None:
        self.env = env
        self.logs = logs
        self.metadata_url = metadata_url
        self.processes: list[tuple[subprocess.Popen[bytes], IO[bytes]]] = []

    def start(self, name: str, *args: str) -> None:
        """Start ``airflow <args>`` in its own process group, logging to ``<name>.log``."""
        log = (self.logs / f"{name}.log").open("wb")
        process = subprocess.Popen(
            [AIRFLOW, *args],
            env=self.env,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes.append((process, log))

    def cli(self, *args: str) -> str:
        """Run one ``airflow`` CLI command to completion."""
        done = subprocess.run(
            [AIRFLOW, *args], env=self.env, capture_output=True, text=True, timeout=120, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Read Airflow's metadata database directly (cheaper than a CLI call per poll)."""
        import psycopg2

        conn = psycopg2.connect(self.metadata_url.replace("+psycopg2", ""))
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return list(cur.fetchall())
        finally:
            conn.close()

    def stop(self) -> None:
        """Kill each process group this cluster started: TERM, then KILL what remains."""
        for process, _ in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for process, log in self.processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
            log.close()

    def dead(self) -> list[str]:
        """Commands of started processes that have already exited."""
        return [" ".join(p.args[1:3]) for p, _ in self.processes if p.poll() is not None]  # type: ignore[index]

    def tail(self) -> str:
        """The end of every process log, for failure messages."""
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-2500:]}"
            for path in sorted(self.logs.glob("*.log"))
        )


@pytest.fixture
def evidence_s3(s3_server: str) -> dict[str, Any]:
    """A versioned bucket on the moto server."""
    from verification.storage.s3 import S3Store

    bucket = f"distributed-{uuid.uuid4().hex[:12]}"
    store = S3Store(bucket, endpoint_url=s3_server, region="us-east-1")
    store.ensure_bucket(versioning=True)
    return {"store": store, "bucket": bucket, "endpoint": s3_server}


@pytest.fixture
def cluster(tmp_path: Path, evidence_s3: dict[str, Any]) -> Iterator[tuple[Cluster, Any]]:
    """Airflow (CeleryExecutor) on fresh PostgreSQL databases and Redis; the ledger initialised."""
    suffix = uuid.uuid4().hex[:10]
    redis_db = _empty_redis_db()
    databases = _fresh_databases([f"airflow_dist_{suffix}", f"evidence_dist_{suffix}"])
    metadata_url, ledger_url = next(databases)
    settings = make_settings(tmp_path / "evidence", database_url=ledger_url)
    ctx = init_context(settings, store=evidence_s3["store"])
    api_port = free_port()
    env = airflow_env(
        tmp_path / "airflow-home",
        db_url=metadata_url,
        AIRFLOW__CORE__EXECUTOR="CeleryExecutor",
        AIRFLOW__CELERY__BROKER_URL=f"redis://127.0.0.1:6379/{redis_db}",
        AIRFLOW__CELERY__RESULT_BACKEND="db+" + metadata_url,
        AIRFLOW__CELERY__WORKER_CONCURRENCY="2",
        AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"http://127.0.0.1:{api_port}/execution/",
        AIRFLOW__API_AUTH__JWT_SECRET=uuid.uuid4().hex,
        AIRFLOW__API__WORKERS="1",
        AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(free_port()),
        AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC="2",
        AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="5",
        AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="True",
        EVIDENCE_INTAKE_SCHEDULE="none",
        EVIDENCE_NIGHTLY_SCHEDULE="none",
        EVIDENCE_HOME=str(settings.home),
        EVIDENCE_DATABASE_URL=ledger_url,
        EVIDENCE_WORKERS="1",
        AIRFLOW_CONN_EVIDENCE_S3=s3_connection(evidence_s3["endpoint"], evidence_s3["bucket"]),
    )
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True)
    migrate(env)
    logs = tmp_path / "logs"
    logs.mkdir()
    running = Cluster(env, logs, metadata_url)
    try:
        running.start("api-server", "api-server", "--port", str(api_port), "--apps", "execution")
        running.start("scheduler", "scheduler")
        running.start("dag-processor", "dag-processor")
        running.start("worker", "celery", "worker", "--concurrency", "2", "--skip-serve-logs")
        yield running, ctx
    finally:
        running.stop()
        ctx.engine.dispose()
        next(databases, None)


def _wait(predicate: Any, timeout: float, what: str, cluster: Cluster) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cluster.dead():
            pytest.fail(f"Airflow process(es) exited: {cluster.dead()}\n{cluster.tail()}")
        value = predicate()
        if value:
            return value
        time.sleep(2)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n{cluster.tail()}")


def test_intake_runs_on_celery_workers(
    cluster: tuple[Cluster, Any], evidence_s3: dict[str, Any], tmp_path: Path
) -> None:
    """A triggered evidence_intake run succeeds on the Celery worker and fills the ledger."""
    running, ctx = cluster
    for seed in (41, 42, 43):
        path = tmp_path / f"photo{seed}.jpg"
        path.write_bytes(photo(seed))
        submit_file(evidence_s3["store"], path, Claims("case-d", "tester"))
    started = time.monotonic()
    _wait(
        lambda: running.query("SELECT 1 FROM dag WHERE dag_id = %s", "evidence_intake"),
        120,
        "the DAG processor to register evidence_intake",
        running,
    )
    running.cli("dags", "unpause", "evidence_intake")
    running.cli("dags", "trigger", "evidence_intake", "--conf", json.dumps({"batch_size": 2}))

    def finished() -> str | None:
        rows = running.query("SELECT state FROM dag_run WHERE dag_id = %s", "evidence_intake")
        states = {state for (state,) in rows}
        return next(iter(states & {"success", "failed"}), None)

    state = _wait(finished, RUN_TIMEOUT - (time.monotonic() - started), "the run", running)
    assert state == "success", running.tail()
    hosts = running.query(
        "SELECT DISTINCT hostname, queue FROM task_instance WHERE dag_id = %s", "evidence_intake"
    )
    assert hosts, "no task instance recorded a worker"
    mapped = running.query(
        "SELECT count(*) FROM task_instance WHERE dag_id = %s AND task_id = 'process_batch'",
        "evidence_intake",
    )
    assert mapped == [(2,)]
    with Session(ctx.engine) as session:
        assert session.scalar(select(func.count()).select_from(Item)) == 3
        states = set(session.scalars(select(Submission.state)))
    assert states == {"processed"}
    assert ctx.ledger.verify().ok
