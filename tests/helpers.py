"""Builders shared by tests: settings on a temporary home, an initialised context, photos."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from verification.config import Settings, load_settings
from verification.custody import initialise_ledger
from verification.pipeline import Context, open_context
from verification.storage import ObjectStore


def make_settings(home: Path, **overrides: Any) -> Settings:
    """Embedded settings rooted at ``home`` (one worker unless asked)."""
    return load_settings(home=home, workers=overrides.pop("workers", 1), **overrides)


def init_context(settings: Settings, store: ObjectStore | None = None, **kw: Any) -> Context:
    """What `evidence init` does, then a pipeline context."""
    initialise_ledger(settings).engine.dispose()
    return open_context(settings, store=store, **kw)


def photo(seed: int = 1, **exif: Any) -> bytes:
    """A synthetic JPEG with EXIF (camera, time, offset, GPS) as the demo builds them."""
    from verification.samples import exif_bytes, jpeg, scene

    return jpeg(scene(seed, size=(640, 480)), exif_bytes(**exif) if exif else None)
