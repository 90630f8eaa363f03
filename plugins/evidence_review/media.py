"""Looking at media: the full-size view of a photo (zoom in the page, no script) and the proxy
of a video, served with HTTP Range so a browser can seek.

Both are derivatives made after intake (``verification.pipeline.views``) and recorded with a
``creation`` custody event; these routes only read. A view that is not made yet or could not
be made is said so on the page; nothing here makes one (a GET writes nothing).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated, Any

from airflow.api_fastapi.core_api.security import GetUserDep
from fastapi import FastAPI, Header, HTTPException, Request, status
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from evidence_review import security
from evidence_review.rendering import ctx_of, render, require_visible
from verification.media.views import PROXY_NAME, VIEW_NAME
from verification.pipeline.views import VIEW_NAMES, open_range, recorded_view, view_state

SHA = Annotated[str, PathParam(pattern="^[0-9a-f]{64}$")]
CHUNK = 256 * 1024
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
FIT_BOX = (1100, 760)  # the view page's frame, in CSS pixels

# EXIF orientation -> CSS transform (origin top left) that shows the stored picture upright;
# the translations bring the turned picture back into its box. A JPEG's view keeps the stored
# pixels (its metadata, the orientation with it, is removed), so the page turns it.
ORIENTATION_CSS = {
    1: "none",
    2: "scaleX(-1) translateX(-100%)",
    3: "rotate(180deg) translate(-100%, -100%)",
    4: "scaleY(-1) translateY(-100%)",
    5: "rotate(90deg) scaleY(-1)",
    6: "rotate(90deg) translateY(-100%)",
    7: "rotate(90deg) scaleX(-1) translate(-100%, -100%)",
    8: "rotate(270deg) translateX(-100%)",
}


def register(app: FastAPI) -> None:
    """The view page and the media route (read permission, per-case access)."""
    app.get("/item/{sha}/view", response_class=HTMLResponse, dependencies=[security.can_read])(
        view_page
    )
    app.get("/item/{sha}/media/{name}", dependencies=[security.can_read])(media_file)


def media_states(events: Any, kind: str) -> dict[str, Any]:
    """What the item page says about the item's view: ``name``, ``state`` (``ready``,
    ``failed``, ``not-prepared``, or ``none`` for other kinds), and the event's detail."""
    name = VIEW_NAMES.get(kind)
    if name is None:
        return {"name": None, "state": "none", "detail": {}}
    found = view_state(events, name)
    if found is None:
        return {"name": name, "state": "not-prepared", "detail": {}}
    state = "ready" if found["outcome"] == "success" else "failed"
    return {"name": name, "state": state, "detail": found}


def zoom_levels(width: int, height: int, orientation: int) -> list[dict[str, Any]]:
    """Zoom steps for the view page: label, picture size (as stored) and frame content size
    (as shown, turned), in CSS pixels. Fit, then 100 % and 200 % (or 2x and 4x of a small one)."""
    turned = orientation in {5, 6, 7, 8}
    shown_w, shown_h = (height, width) if turned else (width, height)
    fit = min(FIT_BOX[0] / shown_w, FIT_BOX[1] / shown_h)
    steps = [("fit", fit), ("100 %", 1.0), ("200 %", 2.0)] if fit < 1 else []
    steps = steps or [("fit", fit), ("2× fit", 2 * fit), ("4× fit", 4 * fit)]
    levels = []
    for index, (label, scale) in enumerate(steps):
        w, h = round(width * scale), round(height * scale)
        levels.append(
            {
                "id": f"zoom-{index}",
                "label": label,
                "img_w": w,
                "img_h": h,
                "box_w": h if turned else w,
                "box_h": w if turned else h,
            }
        )
    return levels


def view_page(request: Request, sha: SHA, user: GetUserDep) -> HTMLResponse:
    """The full-size view of a photo with zoom, or the proxy of a video, or why there is none."""
    ctx = ctx_of(request)
    require_visible(request, sha, user)
    from sqlalchemy.orm import Session

    from verification.ledger.models import Item

    with Session(ctx.engine) as session:
        item = session.get(Item, sha)
        kind = item.kind if item is not None else None
    if kind is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "No such item")
    media = media_states(ctx.ledger.events(sha), kind)
    detail = media["detail"]
    levels: list[dict[str, Any]] = []
    orientation = int(detail.get("orientation") or 1)
    if media["state"] == "ready" and media["name"] == VIEW_NAME:
        levels = zoom_levels(int(detail["width"]), int(detail["height"]), orientation)
    return render(
        request,
        "view.html",
        sha=sha,
        kind=kind,
        media=media,
        levels=levels,
        transform=ORIENTATION_CSS.get(orientation, "none"),
    )


def media_file(
    request: Request,
    sha: SHA,
    name: str,
    user: GetUserDep,
    range_header: Annotated[str | None, Header(alias="Range")] = None,
) -> Response:
    """The view or proxy bytes (never the original), whole or one byte range, streamed."""
    ctx = ctx_of(request)
    require_visible(request, sha, user)
    if name not in {VIEW_NAME, PROXY_NAME}:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "No such view")
    view = recorded_view(ctx, sha, name)
    if view is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "View not prepared yet")
    key = view["derivative"]
    size = ctx.store.head(key).size
    headers = {"Accept-Ranges": "bytes", "Cache-Control": "no-store"}
    start, end = 0, size - 1
    code = status.HTTP_200_OK
    if range_header:
        parsed = parse_range(range_header, size)
        if parsed is None:
            return Response(
                status_code=status.HTTP_416_RANGE_NOT_SATISFIABLE,
                headers={**headers, "Content-Range": f"bytes */{size}"},
            )
        start, end = parsed
        code = status.HTTP_206_PARTIAL_CONTENT
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    headers["Content-Length"] = str(end - start + 1)
    if size == 0:
        return Response(b"", media_type=view["mime"], headers=headers)
    handle = open_range(ctx, key, start, end)
    return StreamingResponse(
        _chunks(handle, end - start + 1), code, headers=headers, media_type=view["mime"]
    )


def parse_range(value: str, size: int) -> tuple[int, int] | None:
    """One ``bytes=a-b``, ``bytes=a-`` or ``bytes=-n`` range within ``size`` bytes, as
    (first, last); None when it cannot be served (several ranges, or past the end)."""
    found = _RANGE.match(value.strip())
    if found is None or size == 0:
        return None
    first, last = found.groups()
    if not first and not last:
        return None
    if not first:  # the last n bytes
        count = int(last)
        return (max(0, size - count), size - 1) if count else None
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    return (start, end) if start <= end and start < size else None


def _chunks(handle: Any, length: int) -> Iterator[bytes]:
    remaining = length
    try:
        while remaining > 0:
            chunk = handle.read(min(CHUNK, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            yield chunk
    finally:
        handle.close()
