"""What every route of the review app shares: the pipeline context, the form secret, links
relative to where the app is mounted, and rendering a template."""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException, Request, status
from fastapi.responses import HTMLResponse

from verification.pipeline import Context
from verification.pipeline.records import item_report


def ctx_of(request: Request) -> Context:
    """The pipeline context (opened on first use)."""
    ctx: Context = request.app.state.contexts.get()
    return ctx


def secret_of(request: Request) -> bytes:
    """The secret that form tokens are derived from."""
    secret: bytes = request.app.state.secret.get()
    return secret


def base_of(request: Request) -> str:
    """Where the app is mounted (``/evidence`` under Airflow), for links."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def render(request: Request, name: str, status_code: int = 200, **values: Any) -> HTMLResponse:
    """A page from ``templates/`` (autoescaped), with ``base`` for links."""
    template = request.app.state.templates.get_template(name)
    html = template.render(base=base_of(request), **values)
    return HTMLResponse(html, status_code=status_code)


def report_of(ctx: Context, sha: str) -> dict[str, Any]:
    """An item's full report, or the page's own 404."""
    try:
        return item_report(ctx, sha)
    except KeyError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "No such item") from exc
