"""The review app: queue, item, case pages and the three POST actions (decide, download, export).

Every route needs an authenticated Airflow user (app-wide dependency); reads need GET and
actions need PUT on the evidence Dag (see ``security``). GET handlers never write: the only
writes are custody events made by ``verification.review`` behind CSRF-checked POSTs.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from airflow.api_fastapi.core_api.security import GetUserDep
from fastapi import Depends, FastAPI, Form, HTTPException, Query, Request, status
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import (
    HTMLResponse,
    Response,
    StreamingResponse,
)
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.exceptions import HTTPException as StarletteHTTPException

from evidence_review import media, security, upload, views, workflow
from evidence_review.rendering import base_of as _base
from evidence_review.rendering import ctx_of as _ctx
from evidence_review.rendering import (
    record_then_show,
    require_case,
    require_visible,
    scope_of,
    visible_report,
)
from evidence_review.rendering import render as _render
from evidence_review.rendering import report_of as _report
from evidence_review.rendering import secret_of as _secret
from verification import review
from verification.core.text import printable
from verification.exports import ExportError
from verification.pipeline import Context, derivative_key

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).parent / "templates"
SHA = Annotated[str, PathParam(pattern="^[0-9a-f]{64}$")]
# An item by its SHA-256 or a prefix of it (the CLI prints 12 characters).
ITEM_REF = Annotated[str, PathParam(pattern="^[0-9a-fA-F]{4,64}$")]
CASE = Annotated[str, PathParam(min_length=1, max_length=200)]
CHUNK = 1024 * 1024
BASE_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'self'; base-uri 'none'; img-src 'self'; media-src 'self'"
)


def open_default_context() -> Context:
    """The pipeline context from ``EVIDENCE_*`` settings of the API server's environment."""
    from verification.core.config import load_settings
    from verification.pipeline import open_context

    return open_context(load_settings())


def build_app(
    open_ctx: Callable[[], Context] = open_default_context,
    secret: Callable[[], bytes] = security.airflow_secret,
) -> FastAPI:
    """The FastAPI app; tests pass their own context and secret."""
    app = FastAPI(
        title="Evidence review",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        dependencies=[security.authenticated],
    )
    app.state.contexts = _Lazy(open_ctx)
    app.state.secret = _Lazy(secret)
    app.state.templates = Environment(
        loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined
    )
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _bad_request)
    app.middleware("http")(_security_headers)
    _routes(app)
    return app


class _Lazy:
    """Build a value on first use (not at plugin import, which happens in every Airflow CLI)."""

    def __init__(self, factory: Callable[[], Any]) -> None:
        self._factory, self._value, self._lock = factory, None, threading.Lock()

    def get(self) -> Any:
        with self._lock:
            if self._value is None:
                self._value = self._factory()
            return self._value


async def _security_headers(request: Request, call_next: Callable[[Request], Any]) -> Response:
    response: Response = await call_next(request)
    response.headers.setdefault("Content-Security-Policy", BASE_CSP)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cache-Control"] = "no-store"
    return response


async def _bad_request(request: Request, exc: Exception) -> Response:
    """Parameters that do not parse: the page's own 400 naming them, never FastAPI's JSON."""
    assert isinstance(exc, RequestValidationError)
    names = sorted({str(e["loc"][-1]) for e in exc.errors() if e.get("loc")})
    message = f"Invalid {', '.join(names) or 'request'}: check the address or the form."
    return _render(request, "error.html", 400, code=400, message=message, login=None)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if isinstance(exc, security.StaleForm):
        return workflow.stale_form(request, exc)
    login = None
    if exc.status_code == status.HTTP_401_UNAUTHORIZED:
        login = security.login_url(_base(request) + "/")
    return _render(
        request,
        "error.html",
        exc.status_code,
        code=exc.status_code,
        message=exc.detail,
        login=login,
    )


def _routes(app: FastAPI) -> None:
    app.get("/", response_class=HTMLResponse, dependencies=[security.can_read])(queue_page)
    app.get("/item/{ref}", response_class=HTMLResponse, dependencies=[security.can_read])(item_page)
    app.get("/item/{sha}/derivative/{name}", dependencies=[security.can_read])(derivative)
    app.get("/case/{case}", response_class=HTMLResponse, dependencies=[security.can_read])(
        case_page
    )
    app.get("/problems", response_class=HTMLResponse, dependencies=[security.can_read])(
        problems_page
    )
    csrf = security.csrf_protected(_secret)
    writes = [security.can_review, Depends(csrf)]
    app.post("/item/{sha}/decision", dependencies=writes)(decide)
    app.post("/item/{sha}/original", dependencies=writes)(download_original)
    app.post("/cases/{case}/export", dependencies=writes)(export_case)
    workflow.register(app, writes)
    media.register(app)
    upload.register(app, _ctx, _secret, _render, BASE_CSP)


# ---------------------------------------------------------------------------------------------
# Pages


def queue_page(
    request: Request,
    case: str = "",
    status_: Annotated[str, Query(alias="status")] = "",
    finding: str = "",
    submitter: str = "",
    since: str = "",
    until: str = "",
    sort: str = review.DEFAULT_SORT,
    page: int = 1,
    page_size: int = 50,
    review_: Annotated[str, Query(alias="review")] = "",
    mine: str = "",
    q: str = "",
    fixity: str = "",
    *,
    user: GetUserDep,
) -> HTMLResponse:
    """The review queue: search, filters, sort, one page of items at a glance."""
    ctx = _ctx(request)
    scope = scope_of(request, user)
    if case:
        require_case(request, case, user)
    if fixity and fixity not in review.FIXITY_FILTERS:
        choices = ", ".join(review.FIXITY_FILTERS)
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, f"fixity must be one of {choices}, not {fixity!r}"
        )
    filters = review.QueueFilters(
        cases=scope.cases,
        case=case or None,
        status=status_ or None,
        finding=finding or None,
        submitter=submitter or None,
        since=_day(since, "since"),
        until=_day(until, "until", next_day=True),
        review=review_ or None,
        assignee=security.analyst_name(user) if _checkbox(mine, "mine") else None,
        search=q.strip() or None,
        fixity=fixity or None,
    )
    try:
        result = review.queue(ctx.engine, filters, sort, page, page_size)
    except review.ReviewError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from exc
    chosen = {
        "case": case,
        "status": status_,
        "finding": finding,
        "submitter": submitter,
        "since": since,
        "until": until,
        "sort": sort,
        "page_size": page_size,
        "review": review_,
        "mine": mine,
        "q": q,
        "fixity": fixity,
    }
    return _render(
        request,
        "queue.html",
        page=result,
        glances=review.glances(
            ctx.engine, [r.sha256 for r in result.rows], case or None, scope.cases
        ),
        chosen=chosen,
        cases=review.cases(ctx.engine, scope.cases),
        codes=review.finding_codes(ctx.engine),
        statuses=review.STATUSES,
        sorts=review.SORT_LABELS,
        reviews=review.REVIEW_FILTERS,
        fixities=review.FIXITY_FILTERS,
        problems=review.intake_problems(ctx.engine, limit=0, visible=scope.cases),
        link=lambda n: "?" + urlencode({**{k: v for k, v in chosen.items() if v}, "page": n}),
    )


def problems_page(request: Request, user: GetUserDep, case: str = "") -> HTMLResponse:
    """Submissions the pipeline could not process (failed or rejected), with why."""
    scope = scope_of(request, user)
    problems = review.intake_problems(_ctx(request).engine, case or None, visible=scope.cases)
    return _render(request, "problems.html", problems=problems, case=case, printable=printable)


def item_page(request: Request, ref: ITEM_REF, user: GetUserDep) -> Response:
    """Everything about one item, its custody timeline with a live chain check, the forms.

    A prefix of a SHA-256 (what the CLI prints) leads to the item it names, or to the queue
    searching for it when several items share it.
    """
    ctx = _ctx(request)
    sha = ref.lower()
    if len(sha) < 64:
        return workflow.resolve_prefix(request, sha, scope_of(request, user))
    report = visible_report(request, sha, user)
    record = report["record"]
    events = ctx.ledger.events(sha)
    withheld = workflow.withheld_for(report, events, scope_of(request, user))
    center = views.map_center(record)
    tile = ctx.settings.tile_url
    response = _render(
        request,
        "item.html",
        report=report,
        item=report["item"],
        record=record,
        findings=views.sorted_findings(record.get("findings", [])),
        metadata=views.metadata_rows(record.get("metadata") or {}),
        raw=views.raw_rows(record.get("raw") or {}),
        comparisons=views.comparisons(record),
        map=views.map_view(record),
        tile=views.tile_url(tile, *center) if tile and center else None,
        images=views.image_derivatives(record),
        media=media.media_states(events, report["item"]["kind"]),
        duplicates=views.duplicates_earliest_first(record),
        events=events,
        withheld=withheld,
        history=review.decisions(events),
        remarks=workflow.remarks(events),
        state=workflow.review_state_of(events),
        me=security.analyst_name(user),
        decisions=review.DECISIONS,
        may_review=security.may_review(user),
        csrf=security.csrf_token(request, _secret(request)),
        agent_names=views.agent_names,
        keyframe_times=views.keyframe_times,
        compact_json=views.compact_json,
    )
    origin = views.tile_origin(tile) if tile else None
    if origin:
        response.headers["Content-Security-Policy"] = BASE_CSP.replace(
            "img-src 'self'", f"img-src 'self' {origin}"
        )
    return response


def case_page(request: Request, case: CASE, user: GetUserDep) -> HTMLResponse:
    """Counts per status and per finding for one case, and the export forms (three formats)."""
    ctx = _ctx(request)
    require_case(request, case, user)
    problems = review.intake_problems(ctx.engine, case, limit=0)
    try:
        summary = review.case_summary(ctx.engine, case)
    except KeyError as exc:
        if not problems.total:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "No such case") from exc
        summary = review.CaseSummary(case, 0, {}, {}, {})
    return _render(
        request,
        "case.html",
        summary=summary,
        submissions=review.case_submissions(ctx.engine, case),
        exposure=workflow.visible_exposure(
            review.exposure(ctx.engine, case), scope_of(request, user)
        ),
        problems=problems,
        may_review=security.may_review(user),
        csrf=security.csrf_token(request, _secret(request)),
        link=lambda **kw: "?" + urlencode({"case": case, **kw}),
    )


def derivative(request: Request, sha: SHA, name: str, user: GetUserDep) -> Response:
    """A thumbnail or keyframe of an item (never the original), as listed in its record."""
    ctx = _ctx(request)
    require_visible(request, sha, user)
    record = review.latest_record(ctx.engine, sha) or {}
    entry = next((d for d in views.image_derivatives(record) if d["name"] == name), None)
    if entry is None or entry.get("key") != derivative_key(sha, name):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "No such derivative")
    with ctx.store.open(entry["key"]) as handle:
        data = handle.read(32 * CHUNK)
    return Response(data, media_type=entry["mime"], headers={"Cache-Control": "no-store"})


# ---------------------------------------------------------------------------------------------
# Actions (POST, CSRF-checked, review permission)


def decide(
    request: Request,
    sha: SHA,
    analyst: Annotated[str, Depends(security.analyst_name)],
    user: GetUserDep,
    decision: Annotated[str, Form()] = "",
    note: Annotated[str, Form()] = "",
) -> Response:
    """Record a decision as a custody event, then show the item again (POST-redirect-GET)."""
    return record_then_show(
        request,
        sha,
        user,
        "decisions",
        lambda ctx: review.record_decision(ctx, sha, decision, note, analyst),
    )


def download_original(
    request: Request,
    sha: SHA,
    analyst: Annotated[str, Depends(security.analyst_name)],
    user: GetUserDep,
    purpose: Annotated[str, Form()] = "",
) -> Response:
    """Write an ``access`` custody event, then stream the preserved original as an attachment."""
    ctx = _ctx(request)
    require_visible(request, sha, user)
    item = _report(ctx, sha)["item"]
    # Open first (a missing object fails before any event), record, then release bytes.
    handle = ctx.store.open(item["vault_key"], item.get("vault_version"))
    try:
        review.record_access(ctx, sha, analyst, purpose)
    except review.ReviewError as exc:
        handle.close()
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from exc
    extension = "".join(c for c in item["format"] if c.isalnum())[:8] or "bin"
    return StreamingResponse(
        _chunks(handle),
        media_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{sha}.{extension}"'},
    )


def export_case(
    request: Request,
    case: CASE,
    analyst: Annotated[str, Depends(security.analyst_name)],
    user: GetUserDep,
    fmt: Annotated[str, Form(alias="format")] = "",
    redact: Annotated[str, Form()] = "",
    other_cases: Annotated[str, Form()] = "",
) -> Response:
    """Export the case with the court-ready exporter and send the file (a BagIt package zipped).

    The export is made in a temporary directory which is deleted before the first byte is sent:
    the open handle keeps the file readable, and nothing stays on disk even if the download is
    interrupted or the worker dies mid-stream.
    """
    ctx = _ctx(request)
    require_case(request, case, user)
    workflow.check_export_scope(request, case, other_cases, scope_of(request, user))
    work = Path(tempfile.mkdtemp(prefix="evidence-export-"))
    try:
        download = review.export_download(
            ctx,
            case,
            fmt,
            work,
            analyst,
            redact=_checkbox(redact, "redact"),
            other_cases=other_cases,
        )
        handle = download.path.open("rb")
    except review.ReviewError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from exc
    except KeyError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "No such case") from exc
    except ExportError as exc:
        log.error(
            "export of case %s as %s failed: %s",
            printable(case),
            printable(fmt),
            printable(str(exc)),
        )
        raise HTTPException(status.HTTP_500_INTERNAL_SERVER_ERROR, f"Export failed: {exc}") from exc
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return StreamingResponse(
        _chunks(handle),
        media_type=download.media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{download.filename}"',
            "Content-Length": str(os.fstat(handle.fileno()).st_size),
        },
    )


# ---------------------------------------------------------------------------------------------
# Helpers


def _day(value: str, name: str, *, next_day: bool = False) -> datetime | None:
    """A YYYY-MM-DD filter bound as a UTC datetime (``until`` includes its whole day)."""
    if not value:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"{name} must be YYYY-MM-DD") from exc
    moment = datetime(day.year, day.month, day.day)
    return moment + timedelta(days=1) if next_day else moment


def _checkbox(value: str, name: str) -> bool:
    """A form checkbox: absent or empty is False; "on" (what browsers send), "1", "true" True."""
    if value.lower() in {"", "0", "false", "off"}:
        return False
    if value.lower() in {"on", "1", "true"}:
        return True
    raise HTTPException(status.HTTP_400_BAD_REQUEST, f"{name} must be on or off")


def _chunks(handle: Any) -> Iterator[bytes]:
    try:
        while chunk := handle.read(CHUNK):
            yield chunk
    finally:
        handle.close()


app = build_app()
