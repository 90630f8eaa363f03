"""A PDQ index saved to one file, so a new batch starts from it instead of re-reading every
stored hash from the database (the read that grew with the collection).

The file is a cache, never evidence: numpy arrays in an ``.npz`` without pickles, plus an
identity (which database, up to which ``perceptual_log`` id) that the caller checks before use.
An unreadable, foreign or stale file is ignored and the index is read from the database again.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from verification.duplicates.index import PDQIndex

log = logging.getLogger(__name__)

SNAPSHOT_FORMAT = 1


def save_snapshot(path: Path, index: PDQIndex, identity: Mapping[str, Any]) -> None:
    """Write ``index`` with ``identity`` to ``path``, replacing it atomically."""
    ids, numbers, words, frames = index.to_arrays()
    encoded = [item.encode() for item in ids]
    width = max((len(item) for item in encoded), default=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=".index-", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as sink:
            np.savez(
                sink,
                identity=np.frombuffer(json.dumps(dict(identity)).encode(), dtype=np.uint8),
                ids=np.array(encoded, dtype=f"S{width}"),
                numbers=numbers,
                words=words,
                frames=frames,
            )
        Path(name).replace(path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise


def load_snapshot(path: Path) -> tuple[PDQIndex, dict[str, Any]] | None:
    """The index and identity saved in ``path``, or None when there is none or it is unreadable."""
    try:
        with np.load(path, allow_pickle=False) as data:
            identity = json.loads(data["identity"].tobytes())
            ids = [item.decode() for item in data["ids"].tolist()]
            index = PDQIndex.from_arrays(ids, data["numbers"], data["words"], data["frames"])
    except FileNotFoundError:
        return None
    except (OSError, KeyError, ValueError, UnicodeDecodeError, zipfile.BadZipFile) as exc:
        log.warning("ignoring the duplicate index snapshot %s: %s", path, type(exc).__name__)
        return None
    if not isinstance(identity, dict):
        return None
    return index, identity
