"""The analyst's workflow beyond deciding: comments, assignment, side-by-side comparison of
near-duplicates, items by hash prefix, and forms that survive a token refresh.

Routes are added by :func:`register`; reads need the read permission, writes the review
permission and a valid form token, like every other route of the app.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Annotated, Any
from urllib.parse import urlencode

from airflow.api_fastapi.core_api.security import GetUserDep
from fastapi import Depends, FastAPI, Form, HTTPException, Request, status
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from evidence_review import security, views
from evidence_review.rendering import (
    base_of,
    ctx_of,
    record_then_show,
    render,
    secret_of,
    visible_report,
)
from verification import review
from verification.ledger.custody import CustodyEvent
from verification.ledger.models import Item

SHA = Annotated[str, PathParam(pattern="^[0-9a-f]{64}$")]
PREFIX_MATCHES = 2


def register(app: FastAPI, writes: Sequence[Any]) -> None:
    """Add the workflow routes to ``app`` (``writes``: the review permission and form check)."""
    read = [security.can_read]
    app.get("/item/{sha}/compare/{other}", response_class=HTMLResponse, dependencies=read)(
        compare_page
    )
    app.post("/item/{sha}/comment", dependencies=list(writes))(comment)
    app.post("/item/{sha}/assignment", dependencies=list(writes))(assignment)


# ---------------------------------------------------------------------------------------------
# Review state on the item page


def remarks(events: Sequence[CustodyEvent]) -> list[dict[str, Any]]:
    """Comments and assignments among an item's ``review`` events, oldest first."""
    return [
        {"time": e.time, "seq": e.seq, "action": review.action_of(e.detail), **dict(e.detail)}
        for e in events
        if e.type == "review" and review.action_of(e.detail) != "decision"
    ]


def review_state_of(events: Sequence[CustodyEvent]) -> review.ReviewState:
    """Where review of the item stands (decision in force, disagreement, assignee)."""
    return review.review_state((e.seq, e.time, e.detail) for e in events if e.type == "review")


def comment(
    request: Request,
    sha: SHA,
    analyst: Annotated[str, Depends(security.analyst_name)],
    user: GetUserDep,
    note: Annotated[str, Form()] = "",
) -> Response:
    """Record a comment (not a decision) as a custody event, then show the item again."""
    return record_then_show(
        request, sha, user, "comments", lambda ctx: review.record_comment(ctx, sha, note, analyst)
    )


def assignment(
    request: Request,
    sha: SHA,
    analyst: Annotated[str, Depends(security.analyst_name)],
    user: GetUserDep,
    assignee: Annotated[str, Form()] = "",
) -> Response:
    """Assign the item to an analyst (empty: nobody), as a custody event."""
    return record_then_show(
        request, sha, user, "comments", lambda ctx: review.assign(ctx, sha, assignee, analyst)
    )


def withheld_for(
    report: Mapping[str, Any], events: Sequence[CustodyEvent], scope: review.CaseScope
) -> frozenset[int]:
    """Seqs of the item's events about submissions to cases the user may not see."""
    from verification.exports.scope import withheld_events

    if scope.unrestricted:
        return frozenset()
    return withheld_events(events, [s["id"] for s in report["submissions"]])


def visible_exposure(exposure: review.Exposure, scope: review.CaseScope) -> review.Exposure:
    """What the case page may name of other cases: visible ones by name, the rest counted."""
    if scope.unrestricted:
        return exposure
    shown = tuple(c for c in exposure.cases if scope.allows(c))
    hidden = len(exposure.cases) - len(shown)
    if hidden:
        shown = (*shown, f"{hidden} case{'' if hidden == 1 else 's'} you may not see")
    return replace(exposure, cases=shown)


def check_export_scope(request: Request, case: str, choice: str, scope: review.CaseScope) -> None:
    """A user who may not see every case the export would reveal must leave other cases out."""
    if scope.unrestricted or choice == "omit":
        return
    exposed = review.exposure(ctx_of(request).engine, case)
    if any(not scope.allows(other) for other in exposed.cases):
        msg = "This case shares items with cases you may not see: export it without other cases"
        raise HTTPException(status.HTTP_403_FORBIDDEN, msg)


# ---------------------------------------------------------------------------------------------
# Items by prefix, stale forms


def resolve_prefix(request: Request, prefix: str, scope: review.CaseScope) -> Response:
    """The one item whose SHA-256 starts with ``prefix``; several: the queue searching for it."""
    query = select(Item.sha256).where(Item.sha256 >= prefix, Item.sha256 < prefix + "g")
    if scope.cases is not None:
        query = query.where(review.in_cases(scope.cases))
    with Session(ctx_of(request).engine) as session:
        shas = list(session.scalars(query.order_by(Item.sha256).limit(PREFIX_MATCHES)))
    if not shas:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"No item starts with {prefix}")
    if len(shas) == 1:
        return RedirectResponse(f"{base_of(request)}/item/{shas[0]}", status.HTTP_303_SEE_OTHER)
    query = urlencode({"q": prefix})
    return RedirectResponse(f"{base_of(request)}/?{query}", status.HTTP_303_SEE_OTHER)


def stale_form(request: Request, exc: security.StaleForm) -> HTMLResponse:
    """The refused form again, with what was typed and a token of the current session."""
    return render(
        request,
        "stale_form.html",
        status.HTTP_403_FORBIDDEN,
        action=request.url.path,
        fields=exc.fields,
        csrf=security.csrf_token(request, secret_of(request)),
        long_fields={"note", "purpose", "comment"},
    )


# ---------------------------------------------------------------------------------------------
# Side-by-side comparison


def compare_page(request: Request, sha: SHA, other: SHA, user: GetUserDep) -> HTMLResponse:
    """An item and one of its near-duplicates side by side: pictures at the same size with
    zoom, how they match, what metadata differs, both sets of claims, which copy is earliest."""
    left, right = visible_report(request, sha, user), visible_report(request, other, user)
    link = next((d for d in left["record"].get("duplicates", []) if d["item"] == other), None)
    if link is None:
        link = next((d for d in left["duplicate_links"] if d["item"] == other), None)
    if link is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "These items are not linked duplicates")
    return render(
        request,
        "compare.html",
        left=_side(left),
        right=_side(right),
        link=link,
        transform=views.transform_words(link),
        earliest=left["record"].get("earliest_copy"),
        diff=views.metadata_diff(
            left["record"].get("metadata") or {}, right["record"].get("metadata") or {}
        ),
    )


def _side(report: Mapping[str, Any]) -> dict[str, Any]:
    record = report["record"]
    images = views.image_derivatives(record)
    return {
        "item": report["item"],
        "record": record,
        "image": images[0]["name"] if images else None,
        "claims": views.comparisons(record),
    }
