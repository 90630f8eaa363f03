"""Builders shared by tests: settings on a temporary home, an initialised context, photos."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any

from verification.core.config import Settings, load_settings
from verification.ledger.custody import initialise_ledger
from verification.pipeline import Context, open_context
from verification.storage import ObjectStore


def make_settings(home: Path, **overrides: Any) -> Settings:
    """Embedded settings rooted at ``home`` (one worker unless asked)."""
    return load_settings(home=home, workers=overrides.pop("workers", 1), **overrides)


def init_context(settings: Settings, store: ObjectStore | None = None, **kw: Any) -> Context:
    """What `evidence init` does (the ledger, the key and its pin in the store), then a
    pipeline context."""
    from verification.pipeline.fixity import pin_installation_key

    initialise_ledger(settings).engine.dispose()
    ctx = open_context(settings, store=store, **kw)
    pin_installation_key(ctx)
    return ctx


def photo(seed: int = 1, **exif: Any) -> bytes:
    """A synthetic JPEG with EXIF (camera, time, offset, GPS) as the demo builds them."""
    from verification.media.samples import exif_bytes, jpeg, scene

    return jpeg(scene(seed, size=(640, 480)), exif_bytes(**exif) if exif else None)


MIB = 1024 * 1024


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def zero_png(width: int, height: int, bit_depth: int = 8, colour_type: int = 6) -> bytes:
    """A valid PNG of all-zero pixels, built without ever holding its pixels in memory.

    Zero rows compress about 1000:1; each 1 MiB of them is compressed once (ending in a full
    flush, so the compressed segment can be repeated) and the zlib trailer is computed directly
    (the Adler-32 of n zero bytes is ``(n mod 65521) << 16 | 1``).
    """
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour_type]
    total = (1 + width * channels * bit_depth // 8) * height
    block = MIB
    head = zlib.compressobj(9, zlib.DEFLATED, -15)
    segment = head.compress(bytes(block)) + head.flush(zlib.Z_FULL_FLUSH)
    last = zlib.compressobj(9, zlib.DEFLATED, -15)
    tail = last.compress(bytes(total % block)) + last.flush()
    adler = ((total % 65521) << 16) | 1
    idat = b"\x78\xda" + segment * (total // block) + tail + struct.pack(">I", adler)
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
    )
