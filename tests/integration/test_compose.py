"""docker-compose.yaml: valid for docker-compose, and every Airflow service wired the same way."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yaml"
AIRFLOW_SERVICES = {
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
    "airflow-init",
}
SHARED = ("AIRFLOW_CONN_EVIDENCE_S3", "EVIDENCE_DATABASE_URL", "EVIDENCE_KEY_PATH")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """The compose file with YAML anchors and merge keys resolved."""
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def test_docker_compose_config_accepts_the_file() -> None:
    """`docker-compose config` validates and resolves the file (skipped without docker-compose)."""
    tool = shutil.which("docker-compose")
    if tool is None:
        pytest.skip("docker-compose is not installed (apt-get install docker-compose validates it)")
    done = subprocess.run(
        [tool, "-f", str(COMPOSE), "config"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    resolved = yaml.safe_load(done.stdout)
    assert set(resolved["services"]) >= AIRFLOW_SERVICES
    envs = [resolved["services"][name]["environment"] for name in AIRFLOW_SERVICES]
    for name in SHARED:
        assert len({env[name] for env in envs}) == 1, name


def test_every_service_of_the_layout_is_there(compose: dict[str, Any]) -> None:
    """PostgreSQL, Redis, MinIO (+ bucket init) and each Airflow 3 component."""
    expected = AIRFLOW_SERVICES | {"postgres", "redis", "minio", "minio-init"}
    assert expected <= set(compose["services"])


def test_every_airflow_service_gets_the_same_connection_and_ledger(compose: dict[str, Any]) -> None:
    """The `evidence_s3` Connection, the ledger URL and the signing key are identical everywhere."""
    envs = {name: compose["services"][name]["environment"] for name in AIRFLOW_SERVICES}
    for key in (*SHARED, "AIRFLOW__CORE__EXECUTOR", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"):
        values = {name: env.get(key) for name, env in envs.items()}
        assert len(set(values.values())) == 1 and None not in values.values(), values
    assert envs["airflow-worker"]["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"


def test_connection_points_at_minio_and_the_ledger_at_its_own_database(
    compose: dict[str, Any],
) -> None:
    """The Connection is an aws one with MinIO's endpoint; the ledger is not Airflow's database."""
    env = compose["services"]["airflow-worker"]["environment"]
    connection = json.loads(env["AIRFLOW_CONN_EVIDENCE_S3"])
    assert connection["conn_type"] == "aws"
    assert connection["extra"]["endpoint_url"] == "http://minio:9000"
    assert env["EVIDENCE_DATABASE_URL"].endswith("@postgres/evidence")
    assert env["EVIDENCE_DATABASE_URL"] != env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    init_sql = (REPO / "docker/postgres-init/10-evidence.sql").read_text()
    assert "CREATE DATABASE evidence" in init_sql


def test_workers_scale_and_the_bucket_is_locked(compose: dict[str, Any]) -> None:
    """Workers have no fixed name or host port (so --scale works); the bucket gets Object Lock."""
    worker = compose["services"]["airflow-worker"]
    assert "container_name" not in worker and "ports" not in worker
    script = "\n".join(compose["services"]["minio-init"]["command"])
    assert "--with-lock" in script and "version enable" in script


def test_image_installs_the_package_with_the_constraints() -> None:
    """The Dockerfile builds on the tested Airflow image and installs us under constraints.txt."""
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "FROM apache/airflow:3.3.2-python3.11" in dockerfile
    assert "-c constraints.txt" in dockerfile and "-e ." in dockerfile
