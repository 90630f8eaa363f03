"""Views for the review pages, made after intake: a full-size, metadata-free view of each photo
and a browser-playable proxy of each video (:mod:`verification.media.views`).

Off the intake's critical path: the ``views`` task of the intake DAG runs after the batches,
and ``evidence views`` makes them for any item. Each view is read from the vault copy (its
SHA-256 checked while reading), written once under ``derivatives/<sha256>/`` and recorded with
a ``creation`` custody event. One that cannot be made leaves a ``creation`` event with outcome
``failure`` and the reason, which the item page shows; the other items go on. Idempotent: an
item whose view was recorded is skipped, a view already in the store is recorded as stored
(never rewritten), and the same failure is recorded once.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from verification.ledger.models import Event, Item, Record
from verification.media import views as media_views
from verification.pipeline.context import Context
from verification.pipeline.layout import derivative_key
from verification.storage import ObjectExists, StoreError

log = logging.getLogger(__name__)

VIEW_NAMES = {"image": media_views.VIEW_NAME, "video": media_views.PROXY_NAME}
WHAT = {"image": "full-size view", "video": "video proxy"}
MADE, STORED, RECORDED, FAILED, ERROR = "made", "stored", "recorded", "failed", "error"


@dataclass(frozen=True, slots=True)
class ViewOutcome:
    """What happened to one item's view: ``made``, ``stored`` (found in the store and recorded),
    ``recorded`` (done before), ``failed`` (recorded with the reason) or ``error`` (the store or
    the vault copy could not be read; nothing recorded, try again)."""

    item: str
    name: str
    state: str
    reason: str | None = None
    size: int | None = None


def view_step(name: str) -> str:
    """The step key of a view's successful ``creation`` event."""
    return f"view:{name}"


def missing_views(
    ctx: Context, limit: int | None = None, *, retry_failed: bool = False
) -> list[str]:
    """Photos and videos without a recorded view, oldest first; those whose view failed
    (recorded with the reason) only with ``retry_failed``."""
    with Session(ctx.engine) as session:
        query = select(Item.sha256).order_by(Item.first_seen, Item.sha256)
        for kind, name in VIEW_NAMES.items():
            done = exists().where(
                Event.item_sha256 == Item.sha256,
                Event.step_key == view_step(name),
            )
            failed = exists().where(
                Event.item_sha256 == Item.sha256,
                Event.step_key.startswith(f"view-failed:{name}:"),
            )
            query = query.where((Item.kind != kind) | ~(done if retry_failed else done | failed))
        query = query.where(Item.kind.in_(tuple(VIEW_NAMES)))
        if limit is not None:
            query = query.limit(limit)
        return list(session.scalars(query))


def make_views(ctx: Context, items: Iterable[str]) -> list[ViewOutcome]:
    """Make and record the view of each photo and video among ``items`` (others are skipped)."""
    outcomes = []
    for sha in dict.fromkeys(items):
        outcome = make_view(ctx, sha)
        if outcome is not None:
            outcomes.append(outcome)
    return outcomes


class ViewsIncomplete(RuntimeError):
    """Views could not be made because the store could not be read or written (a retry may)."""


def account_views(outcomes: Sequence[ViewOutcome], label: str) -> dict[str, int]:
    """What a views step reports: the count per state, logged as ``<label>: {...}`` with a
    warning per view that cannot be made; :class:`ViewsIncomplete` when the store failed."""
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome.state] = counts.get(outcome.state, 0) + 1
        if outcome.state == FAILED:
            log.warning("no %s for %s: %s", outcome.name, outcome.item[:12], outcome.reason)
    log.info("%s: %s", label, counts)
    errors = [o.item[:12] for o in outcomes if o.state == ERROR]
    if errors:
        msg = f"{len(errors)} view(s) not made, the store could not be used: {', '.join(errors)}"
        raise ViewsIncomplete(msg)
    return counts


def make_view(ctx: Context, sha: str) -> ViewOutcome | None:
    """One item's view, recorded; None when the item is not a photo or video (or unknown)."""
    facts = _item_facts(ctx, sha)
    if facts is None:
        return None
    kind, fmt, vault, version, orientation = facts
    name = VIEW_NAMES[kind]
    if _recorded(ctx, sha, name):
        return ViewOutcome(sha, name, RECORDED)
    with tempfile.TemporaryDirectory(prefix="evidence-view-") as scratch:
        try:
            view = _build(ctx, sha, kind, fmt, (vault, version), orientation, Path(scratch))
        except media_views.ViewError as exc:
            _record_failure(ctx, sha, kind, str(exc))
            return ViewOutcome(sha, name, FAILED, str(exc))
        except (StoreError, OSError) as exc:
            log.error("view of %s not made: %s", sha[:12], type(exc).__name__)
            return ViewOutcome(sha, name, ERROR, f"store or disk error ({type(exc).__name__})")
        try:
            return _store_and_record(ctx, sha, kind, view)
        except (StoreError, OSError) as exc:
            log.error("view of %s not stored: %s", sha[:12], type(exc).__name__)
            return ViewOutcome(sha, name, ERROR, f"store error ({type(exc).__name__})")


def _item_facts(ctx: Context, sha: str) -> tuple[str, str, str, str | None, int | None] | None:
    with Session(ctx.engine) as session:
        item = session.get(Item, sha)
        if item is None or item.kind not in VIEW_NAMES:
            return None
        data = session.scalar(
            select(Record.data).where(Record.item_sha256 == sha).order_by(Record.id.desc()).limit(1)
        )
        media = (data or {}).get("media") or {}
        orientation = media.get("orientation")
        return (
            item.kind,
            item.format,
            item.vault_key,
            item.vault_version,
            orientation if isinstance(orientation, int) else None,
        )


def _recorded(ctx: Context, sha: str, name: str) -> bool:
    with Session(ctx.engine) as session:
        found = session.scalar(
            select(Event.id).where(Event.item_sha256 == sha, Event.step_key == view_step(name))
        )
    return found is not None


def _build(
    ctx: Context,
    sha: str,
    kind: str,
    fmt: str,
    vault: tuple[str, str | None],
    orientation: int | None,
    scratch: Path,
) -> media_views.View:
    """The view in ``scratch``, made from the vault copy (checked against ``sha`` as read)."""
    settings = ctx.settings
    out = scratch / VIEW_NAMES[kind]
    with ctx.store.open(*vault) as source:
        checked = _Checked(source)
        if kind == "image" and fmt == "jpeg":
            view = media_views.jpeg_view(checked, out, orientation)
        else:
            original = scratch / "original"
            with original.open("wb") as sink:
                shutil.copyfileobj(checked, sink, media_views.CHUNK)
        checked.verify(sha)
    if kind == "image" and fmt == "jpeg":
        return view
    if kind == "image":
        return media_views.reencode_image(
            original,
            fmt,
            out,
            settings.view_max_px,
            settings.max_image_pixels,
            settings.decode_budget_bytes,
        )
    return media_views.make_proxy(original, out, settings.proxy_max_px, settings.proxy_timeout)


class _Checked:
    """A reader that hashes what passes through it, to prove the view came from the original."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw, self._hash = raw, hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self._hash.update(data)
        return data

    def verify(self, sha: str) -> None:
        while self.read(media_views.CHUNK):
            pass
        if self._hash.hexdigest() != sha:
            msg = "the vault copy does not match the item's SHA-256: no view made (run fixity)"
            raise media_views.ViewError(msg)


def _store_and_record(ctx: Context, sha: str, kind: str, view: media_views.View) -> ViewOutcome:
    key = derivative_key(sha, view.name)
    digest, size = _sha256_file(view.path)
    state = MADE
    try:
        with view.path.open("rb") as handle:
            ctx.store.put(key, handle, sha256=digest, if_absent=True)
    except ObjectExists:  # an earlier run stored it and stopped before recording it
        with ctx.store.open(key) as stored:
            digest, size = _sha256_stream(stored)
        state = STORED
    detail: dict[str, Any] = {
        "derivative": key,
        "sha256": digest,
        "mime": view.mime,
        "size": size,
        "view": WHAT[kind],
        "method": view.method,
        "width": view.width,
        "height": view.height,
        "orientation": view.orientation,
        "tool": view.tool,
        **view.detail,
    }
    ctx.ledger.append(
        sha,
        "creation",
        "success",
        detail,
        step_key=view_step(view.name),
        agents=[*ctx.agents, {"type": "software", "name": view.tool}],
    )
    log.info("%s of %s %s (%s bytes)", WHAT[kind], sha[:12], state, size)
    return ViewOutcome(sha, view.name, state, size=size)


def _record_failure(ctx: Context, sha: str, kind: str, reason: str) -> None:
    name = VIEW_NAMES[kind]
    tag = hashlib.sha256(reason.encode()).hexdigest()[:16]
    ctx.ledger.append(
        sha,
        "creation",
        "failure",
        {"derivative": derivative_key(sha, name), "view": WHAT[kind], "reason": reason},
        step_key=f"view-failed:{name}:{tag}",
        agents=ctx.agents,
    )
    log.warning("%s of %s not made: %s", WHAT[kind], sha[:12], reason)


def _sha256_file(path: Path) -> tuple[str, int]:
    with path.open("rb") as handle:
        return _sha256_stream(handle)


def _sha256_stream(handle: BinaryIO) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    while chunk := handle.read(media_views.CHUNK):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def view_state(events: Sequence[Any], name: str) -> dict[str, Any] | None:
    """The newest ``creation`` event about the view ``name`` in an item's chain, as a dict with
    ``outcome`` and its detail (the page shows the view, or why there is none); None if none."""
    found = None
    for event in events:
        detail = event.detail
        if event.type != "creation" or not str(detail.get("derivative", "")).endswith("/" + name):
            continue
        if event.outcome == "success" or found is None or found["outcome"] != "success":
            found = {"outcome": event.outcome, **dict(detail)}
    return found


def recorded_view(ctx: Context, sha: str, name: str) -> dict[str, Any] | None:
    """The successful ``creation`` event's detail of an item's view, or None (not made yet, or
    it failed)."""
    state = view_state(ctx.ledger.events(sha), name)
    if state is None or state["outcome"] != "success":
        return None
    if state.get("derivative") != derivative_key(sha, name):
        return None
    return state


def open_range(ctx: Context, key: str, start: int, end: int) -> BinaryIO:
    """Bytes ``start`` to ``end`` (inclusive) of a stored view, read lazily.

    An S3 store is asked for the range itself (GET with ``Range``); a local file is seeked;
    any other store is read from the start and the bytes before ``start`` skipped.
    """
    from verification.storage.s3 import S3Store

    store = ctx.store
    if isinstance(store, S3Store):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = store.client.get_object(
                Bucket=store.bucket, Key=key, Range=f"bytes={start}-{end}"
            )
        except (BotoCoreError, ClientError) as exc:
            msg = f"could not read {key!r} from {store.url} ({type(exc).__name__})"
            raise StoreError(msg) from None
        body: BinaryIO = response["Body"]
        return body
    handle = store.open(key)
    if handle.seekable():
        handle.seek(start)
        return handle
    remaining = start
    while remaining:
        skipped = handle.read(min(remaining, media_views.CHUNK))
        if not skipped:
            break
        remaining -= len(skipped)
    return handle
