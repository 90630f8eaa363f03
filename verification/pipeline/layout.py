"""Where things live in the object store, and what version of the pipeline made a record."""

from __future__ import annotations

from verification import __version__

INCOMING = "incoming/"
SIDECAR_SUFFIX = ".claims.json"
MAX_SIDECAR_BYTES = 64 * 1024


def pipeline_version() -> str:
    """Version of everything that shapes a record; a change makes the nightly DAG reprocess."""
    from verification.media import MEDIA_VERSION

    return f"{__version__}+media{MEDIA_VERSION}"


def vault_key(sha256: str) -> str:
    """Where an item's preserved original lives."""
    return f"vault/sha256/{sha256[:2]}/{sha256[2:4]}/{sha256}"


def derivative_key(sha256: str, name: str) -> str:
    """Where a derivative (thumbnail, keyframe, report) of an item lives."""
    return f"derivatives/{sha256}/{name}"


def case_of(key: str) -> str:
    """The case id encoded in ``incoming/<case>/<name>``."""
    parts = key.split("/")
    return parts[1] if len(parts) > 2 and parts[0] == "incoming" else "unassigned"
