"""Who may do what in the review UI, and the checks that keep forms from being forged.

Authentication and permissions are Airflow's: ``requires_authenticated()`` (401 without a valid
JWT, from the UI's ``_token`` cookie or a bearer header) and ``requires_access_dag`` on the
``evidence_intake`` Dag. Reading needs GET on it (every Airflow role); recording decisions,
downloading originals and exporting cases need PUT ("edit the evidence Dag"), which
SimpleAuthManager grants from the USER role up and FAB grants to User/Op/Admin, never to Viewer.

State-changing requests are POSTs that must pass two CSRF checks: an Origin (or Referer) naming
this host, and a hidden token equal to an HMAC of the caller's own Airflow session token.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN
from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails
from airflow.api_fastapi.core_api.security import (
    GetUserDep,
    requires_access_dag,
    requires_authenticated,
)
from fastapi import Depends, HTTPException, Request, status

# The Dag whose permissions stand for "evidence review": FAB can grant them per Dag.
EVIDENCE_DAG_ID = "evidence_intake"
CSRF_FIELD = "csrf_token"
_CSRF_CONTEXT = b"evidence-review-csrf-v1\x00"

authenticated = Depends(requires_authenticated())
can_read = Depends(requires_access_dag(method="GET", param_dag_id=EVIDENCE_DAG_ID))
can_review = Depends(requires_access_dag(method="PUT", param_dag_id=EVIDENCE_DAG_ID))


def may_review(user: BaseUser) -> bool:
    """Whether ``user`` holds the review permission (to show or hide the forms)."""
    return bool(
        get_auth_manager().is_authorized_dag(
            method="PUT", details=DagDetails(id=EVIDENCE_DAG_ID), user=user
        )
    )


def user_roles(user: BaseUser) -> list[str]:
    """The user's role names: SimpleAuthManager users hold one, FAB users a list."""
    names = []
    role = getattr(user, "role", None)
    if isinstance(role, str) and role:
        names.append(role)
    for entry in getattr(user, "roles", None) or []:
        names.append(str(getattr(entry, "name", entry)))
    return names


def analyst_name(user: GetUserDep) -> str:
    """The Airflow user name: what custody events record as the analyst."""
    return str(user.get_name())


def session_token(request: Request) -> str:
    """The credential this request authenticated with (bearer header first, as Airflow does)."""
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "bearer" and credentials:
        return credentials
    return request.cookies.get(COOKIE_NAME_JWT_TOKEN, "")


def csrf_token(request: Request, secret: bytes) -> str:
    """HMAC of the caller's session token: valid for this session only, never stored."""
    token = session_token(request)
    return hmac.new(secret, _CSRF_CONTEXT + token.encode(), hashlib.sha256).hexdigest()


def same_origin(request: Request) -> bool:
    """True when Origin (or, lacking it, Referer) names the host this request was sent to."""
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source or source == "null":
        return False
    parts = urlsplit(source)
    host = request.headers.get("host", "")
    return parts.scheme in {"http", "https"} and bool(host) and parts.netloc.lower() == host.lower()


class StaleForm(HTTPException):
    """A same-origin form whose token belongs to another session (the analyst logged in again
    meanwhile): refused, but what was typed comes back to be sent again (never stored)."""

    def __init__(self, fields: list[tuple[str, str]]) -> None:
        super().__init__(status.HTTP_403_FORBIDDEN, "Missing or stale form token; reload")
        self.fields = fields


def csrf_protected(secret_of: Callable[[Request], bytes]) -> Callable[..., Any]:
    """Dependency for POST routes: same origin and a matching CSRF token, else 403."""

    async def check(request: Request) -> None:
        if not same_origin(request):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "Cross-origin request refused")
        form = await request.form()
        sent = form.get(CSRF_FIELD)
        expected = csrf_token(request, secret_of(request))
        if not isinstance(sent, str) or not hmac.compare_digest(sent, expected):
            fields = [
                (k, v) for k, v in form.multi_items() if k != CSRF_FIELD and isinstance(v, str)
            ]
            raise StaleForm(fields)

    return check


def airflow_secret() -> bytes:
    """Airflow's ``[api] secret_key``: shared by every API server worker, so tokens agree."""
    from airflow.configuration import conf

    return conf.get("api", "secret_key").encode()


def login_url(next_url: str) -> str:
    """Airflow's login page, coming back to ``next_url``."""
    return str(get_auth_manager().get_url_login(next_url=next_url))
