"""Near-duplicates across the whole collection: store an item's PDQ hashes, link its matches."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from verification.db import DuplicateLink, PerceptualHash, utcnow
from verification.pipeline.context import Context
from verification.pipeline.layout import derivative_key
from verification.pipeline.model import Analysis
from verification.storage import ObjectStore, StoreError


def dedupe(ctx: Context, analysis: Analysis) -> list[dict[str, Any]]:
    """Store the item's PDQ hashes, then link it to every near or exact duplicate."""
    from verification.duplicates import find_duplicates

    assert analysis.digests is not None
    sha = analysis.digests.sha256
    _store_pdq(ctx, sha, analysis.perceptual)
    index = load_index(ctx, exclude=sha)
    matches = find_duplicates(
        analysis.perceptual,
        index,
        threshold=ctx.settings.pdq_threshold,
        exclude=sha,
        image=_thumbnail(ctx.store, sha),
        load_image=lambda other: _thumbnail(ctx.store, other),
    )
    now = utcnow()
    with Session(ctx.engine) as session, session.begin():
        for match in matches:
            for a, b in ((sha, match["item"]), (match["item"], sha)):
                link = session.get(DuplicateLink, (a, b, match["kind"]))
                if link is None:
                    session.add(
                        DuplicateLink(
                            item_sha256=a,
                            other_sha256=b,
                            kind=match["kind"],
                            distance=match["distance"],
                            created_at=now,
                        )
                    )
    return matches


def _thumbnail(store: ObjectStore, sha: str) -> bytes | None:
    """An item's thumbnail derivative (for the crop check), or None."""
    try:
        with store.open(derivative_key(sha, "thumbnail.jpg")) as handle:
            return bytes(handle.read(4 * 1024 * 1024))
    except (StoreError, OSError):
        return None


def _store_pdq(ctx: Context, sha: str, perceptual: Mapping[str, Any]) -> None:
    rows: list[tuple[int, str, int | None]] = []
    if perceptual.get("pdq"):
        rows.append((0, perceptual["pdq"], perceptual.get("pdq_quality")))
    for i, frame in enumerate(perceptual.get("keyframes") or []):
        if frame.get("pdq"):
            rows.append((i + 1, frame["pdq"], frame.get("quality")))
    with Session(ctx.engine) as session, session.begin():
        session.execute(delete(PerceptualHash).where(PerceptualHash.item_sha256 == sha))
        for frame, pdq, quality in rows:
            session.add(
                PerceptualHash(
                    item_sha256=sha, frame=frame, pdq=bytes.fromhex(pdq), quality=quality
                )
            )


def load_index(ctx: Context, exclude: str | None = None) -> Any:
    """Every stored PDQ hash of the collection, as a vectorised index."""
    from verification.duplicates import PDQIndex

    index = PDQIndex()
    with Session(ctx.engine) as session:
        query = select(PerceptualHash.item_sha256, PerceptualHash.pdq)
        if exclude:
            query = query.where(PerceptualHash.item_sha256 != exclude)
        for item, pdq in session.execute(query):
            index.add(item, pdq)
    return index
