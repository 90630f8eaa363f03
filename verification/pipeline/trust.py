"""The installation keys an item's chain may be signed by, as the store's anchors establish them.

`evidence show` and the review pages check one chain at a time; the keys they accept are the
pinned ones (``verification.ledger.anchors``: anchor #0 and signed rotations, with the operator's
``EVIDENCE_TRUSTED_KEYS``), never merely the keys registered in the database, which anyone with
write access to it could add to. The anchors are read from the store at most once a minute per
process, so an item page costs no store listing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

from verification.core.text import printable
from verification.pipeline.context import Context
from verification.storage import StoreError

TTL_SECONDS = 60.0
_lock = threading.Lock()
_cache: dict[tuple[str, tuple[str, ...]], tuple[float, PinnedKeys]] = {}


@dataclass(frozen=True, slots=True)
class PinnedKeys:
    """The keys a chain may be signed by, or why none can be trusted."""

    keys: Mapping[str, str]
    problem: str | None = None


def pinned_keys(ctx: Context) -> PinnedKeys:
    """Every key the anchors have trusted at any time (events signed before a rotation stay
    valid); ``problem`` says why, when the anchors cannot be read or do not verify."""
    from verification.ledger.anchors import check_anchors, read_anchors

    cache_key = (ctx.store.url, tuple(ctx.settings.trusted_keys))
    now = time.monotonic()
    with _lock:
        hit = _cache.get(cache_key)
        if hit is not None and now - hit[0] < TTL_SECONDS:
            return hit[1]
    try:
        state = check_anchors(read_anchors(ctx.store), ctx.settings.trusted_keys)
    except StoreError as exc:  # not cached: the next page asks the store again
        return PinnedKeys({}, printable(f"the key pins could not be read from the store: {exc}"))
    if state.ok:
        found = PinnedKeys(dict(state.ever or state.trusted))
    else:
        found = PinnedKeys({}, f"the key pins do not verify: {state.failures[0]}")
    with _lock:
        _cache[cache_key] = (now, found)
    return found


def forget_pinned_keys() -> None:
    """Drop the cache (after a key is pinned or rotated in this process)."""
    with _lock:
        _cache.clear()
