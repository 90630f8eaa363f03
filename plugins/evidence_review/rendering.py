"""What every route of the review app shares: the pipeline context, the form secret, links
relative to where the app is mounted, and rendering a template."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from verification import review
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


def scope_of(request: Request, user: Any) -> review.CaseScope:
    """The cases this user may see (setting ``case_access``; unset: all)."""
    from evidence_review.security import user_roles

    return review.scope_for(user_roles(user), ctx_of(request).settings.case_access)


def visible_report(request: Request, sha: str, user: Any) -> dict[str, Any]:
    """An item's report as this user may see it; 404 (as for an unknown item) when none of its
    cases is visible, so the page does not tell that it exists."""
    ctx, scope = ctx_of(request), scope_of(request, user)
    if not review.item_visible(ctx.engine, sha, scope):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "No such item")
    return dict(review.scoped_report(report_of(ctx, sha), scope))


def require_visible(request: Request, sha: str, user: Any) -> None:
    """404 unless the user may see the item."""
    if not review.item_visible(ctx_of(request).engine, sha, scope_of(request, user)):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "No such item")


def require_case(request: Request, case: str, user: Any) -> None:
    """404 unless the user may see the case."""
    if not scope_of(request, user).allows(case):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "No such case")


def record_then_show(
    request: Request, sha: str, user: Any, anchor: str, record: Callable[[Context], object]
) -> Response:
    """A review action: 404 unless the user may see the item, ``record`` the custody event (the
    page's own 400 for a refused value, 404 for an unknown item), then show the item again at
    ``anchor`` (POST-redirect-GET)."""
    require_visible(request, sha, user)
    try:
        record(ctx_of(request))
    except review.ReviewError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from exc
    except KeyError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "No such item") from exc
    return RedirectResponse(f"{base_of(request)}/item/{sha}#{anchor}", status.HTTP_303_SEE_OTHER)
