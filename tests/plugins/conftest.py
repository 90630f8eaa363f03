"""Fixtures for the review UI: a migrated Airflow home in tmp, Airflow-issued JWTs per user.

Airflow reads its configuration from the environment, and builds its ORM engine when first
imported: the session fixture sets the environment first and the tests import Airflow modules
only inside fixtures, so the plugin runs against this throw-away Airflow, never the developer's.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import pytest

from tests.plugins.evidence_fixtures import PLUGINS, USERS, airflow_env, migrate_airflow

SQL_CONN = "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """An isolated, migrated Airflow (SQLite) with SimpleAuthManager users; yields its env."""
    env = airflow_env(tmp_path_factory.mktemp("airflow"))
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        patch.syspath_prepend(str(PLUGINS))
        migrate_airflow(env)
        _repoint_airflow_orm(env[SQL_CONN])
        yield env


def _repoint_airflow_orm(url: str) -> None:
    """If another test imported Airflow before us, its engine points elsewhere: move it here."""
    if "airflow.settings" not in sys.modules:
        return
    from airflow import settings

    if url != settings.SQL_ALCHEMY_CONN:
        settings.SQL_ALCHEMY_CONN = url
        settings.configure_orm()


@pytest.fixture(scope="session")
def tokens(airflow_home: dict[str, str]) -> dict[str, str]:
    """A JWT per user, issued by Airflow's own auth manager exactly as its login would."""
    from airflow.api_fastapi.app import init_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    manager = init_auth_manager()
    return {
        name: manager.generate_jwt(SimpleAuthManagerUser(username=name, role=role))
        for name, (role, _) in USERS.items()
    }


@pytest.fixture
def make_client(
    airflow_home: dict[str, str], tokens: dict[str, str], evidence: Any
) -> Iterator[Any]:
    """A TestClient factory per Airflow user on the review app over the module's ``evidence``."""
    from airflow.api_fastapi.app import get_auth_manager, init_auth_manager
    from evidence_review.app import build_app
    from fastapi.testclient import TestClient

    try:
        get_auth_manager()
    except RuntimeError:  # another module's test purged Airflow's app (and its auth manager)
        init_auth_manager()
    clients: list[Any] = []

    def make(user: str) -> Any:
        client = TestClient(build_app(lambda: evidence.ctx), follow_redirects=False)
        client.cookies.set("_token", tokens[user])
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()
