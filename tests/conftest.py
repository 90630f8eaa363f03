"""Shared fixtures: object stores (a local directory, and S3 served over real HTTP by moto)."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from verification.storage import ObjectStore
from verification.storage.local import LocalStore

if TYPE_CHECKING:
    from verification.storage.s3 import S3Store

_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (at the time of asking)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto's S3 over HTTP on 127.0.0.1 with dummy credentials; yields the endpoint URL."""
    from moto.server import ThreadedMotoServer

    missing = tmp_path_factory.mktemp("aws") / "absent"
    with pytest.MonkeyPatch.context() as patch:
        for name, value in _AWS_ENV.items():
            patch.setenv(name, value)
        # Never read the developer's own AWS profile or credentials.
        patch.setenv("AWS_CONFIG_FILE", str(missing))
        patch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(missing))
        patch.delenv("AWS_PROFILE", raising=False)
        port = free_port()
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.stop()


@pytest.fixture
def s3_store(s3_server: str) -> S3Store:
    """An S3Store on a fresh, uniquely named, versioned bucket."""
    from verification.storage.s3 import S3Store

    store = S3Store(f"test-{uuid.uuid4().hex[:16]}", endpoint_url=s3_server, region="us-east-1")
    store.ensure_bucket(versioning=True)
    return store


@pytest.fixture
def local_store(tmp_path: Path) -> LocalStore:
    """A LocalStore rooted in an empty directory under tmp_path."""
    return LocalStore(tmp_path / "store")


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.integration)])
def store(request: pytest.FixtureRequest) -> ObjectStore:
    """Each backend in turn, for tests of the ObjectStore contract."""
    fixture: ObjectStore = request.getfixturevalue(f"{request.param}_store")
    return fixture


def _pg_available() -> str | None:
    try:
        import psycopg2

        conn = psycopg2.connect(
            host="127.0.0.1", port=5432, user="postgres", dbname="postgres", connect_timeout=3
        )
        conn.close()
    except Exception as exc:
        return f"PostgreSQL at 127.0.0.1:5432 is not reachable ({type(exc).__name__}); the production-database tests need it"
    return None


@pytest.fixture
def pg_url() -> Iterator[str]:
    """URL of a fresh PostgreSQL database, dropped afterwards; skips when no server runs."""
    problem = _pg_available()
    if problem:
        pytest.skip(problem)
    import psycopg2

    name = f"evidence_test_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
