"""Near-duplicates across the whole collection: find an item's matches, store its PDQ hashes
and the links (inside the transaction that records the submission)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from verification.ledger.models import DuplicateLink, PerceptualHash, insert_if_absent, utcnow
from verification.pipeline.context import Context
from verification.pipeline.layout import derivative_key
from verification.pipeline.model import Analysis
from verification.storage import ObjectStore, StoreError


def find_matches(ctx: Context, analysis: Analysis) -> list[dict[str, Any]]:
    """Every near or exact duplicate of the analysed item in the collection (reads only).

    Runs before the recording transaction, so the thumbnails of candidates are read from the
    store without holding the item's lock.
    """
    from verification.duplicates import find_duplicates

    assert analysis.digests is not None
    sha = analysis.digests.sha256
    return find_duplicates(
        analysis.perceptual,
        load_index(ctx, exclude=sha),
        threshold=ctx.settings.pdq_threshold,
        exclude=sha,
        image=_thumbnail(ctx.store, sha),
        load_image=lambda other: _thumbnail(ctx.store, other),
    )


def link_duplicates(
    session: Session, sha: str, perceptual: Mapping[str, Any], matches: list[dict[str, Any]]
) -> None:
    """Store the item's PDQ hashes and link it to each match, both ways, in ``session``.

    Links are written in one order (sorted), whoever writes them, and an existing link is
    kept: two runs linking the same pair at once neither deadlock nor fail.
    """
    _store_pdq(session, sha, perceptual)
    now = utcnow()
    pairs = sorted(
        (a, b, match["kind"], match["distance"])
        for match in matches
        for a, b in ((sha, match["item"]), (match["item"], sha))
    )
    for a, b, kind, distance in pairs:
        values = {
            "item_sha256": a,
            "other_sha256": b,
            "kind": kind,
            "distance": distance,
            "created_at": now,
        }
        insert_if_absent(session, DuplicateLink, values, ("item_sha256", "other_sha256", "kind"))


def _thumbnail(store: ObjectStore, sha: str) -> bytes | None:
    """An item's thumbnail derivative (for the crop check), or None."""
    try:
        with store.open(derivative_key(sha, "thumbnail.jpg")) as handle:
            return bytes(handle.read(4 * 1024 * 1024))
    except (StoreError, OSError):
        return None


def _store_pdq(session: Session, sha: str, perceptual: Mapping[str, Any]) -> None:
    rows: list[tuple[int, str, int | None]] = []
    if perceptual.get("pdq"):
        rows.append((0, perceptual["pdq"], perceptual.get("pdq_quality")))
    for i, frame in enumerate(perceptual.get("keyframes") or []):
        if frame.get("pdq"):
            rows.append((i + 1, frame["pdq"], frame.get("quality")))
    session.execute(delete(PerceptualHash).where(PerceptualHash.item_sha256 == sha))
    for frame, pdq, quality in rows:
        session.add(
            PerceptualHash(item_sha256=sha, frame=frame, pdq=bytes.fromhex(pdq), quality=quality)
        )
    session.flush()


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
