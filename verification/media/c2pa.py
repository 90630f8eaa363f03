"""C2PA (Content Credentials): read the manifest a photo or video carries, offline.

``read_c2pa`` returns a small JSON-ready summary of the active manifest (signer, claim
generator, validation state and codes, actions, ingredient count) as c2pa-python reports it,
None when the file carries no manifest. Nothing is fetched: remote manifests and OCSP are off
and the SDK's network allow-list is empty, so a file that only points to a manifest online is
reported as such instead of making the pipeline contact that address.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Mapping
from importlib import metadata
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

logger = logging.getLogger(__name__)

MAX_BYTES = 512 * 1024 * 1024
"""Larger files are not read: validation hashes the whole asset."""

MAX_LIST = 64
"""At most this many action names or validation codes are kept from one manifest."""

# Every network path of the SDK closed: remote manifests, OCSP, and (belt and braces) an empty
# host allow-list, which refuses any URL the SDK might still try. Trust is still checked,
# against the SDK's configured anchors, so "valid" (intact, signer not trusted) stays distinct
# from "trusted".
OFFLINE_SETTINGS: dict[str, Any] = {
    "verify": {"remote_manifest_fetch": False, "ocsp_fetch": False},
    "core": {"allowed_network_hosts": []},
}

# c2pa-python error kinds (the "Kind: ..." prefix of the native message) raised only after a
# manifest (or a reference to a remote one) was found in the file.
_MANIFEST_ERRORS = frozenset(
    {
        "Assertion",
        "AssertionNotFound",
        "Decoding",
        "Json",
        "Manifest",
        "Remote",
        "RemoteManifest",
        "ResourceNotFound",
        "Signature",
        "Verify",
    }
)


_MAX_SEGMENTS = 256


def jpeg_without_c2pa(path: Path) -> bool:
    """True when a JPEG's header segments (up to the image data) hold no C2PA data or reference.

    C2PA embeds its manifest store in APP11 (JUMBF) segments and points to remote manifests
    from XMP (``dcterms:provenance``). When the header walks cleanly to the start of the image
    data without either, the SDK (which reads the whole file) is not needed. Anything unusual
    answers False, so the SDK decides.
    """
    with path.open("rb") as fh:
        if fh.read(2) != b"\xff\xd8":
            return False
        for _ in range(_MAX_SEGMENTS):
            head = fh.read(4)
            if len(head) < 4 or head[0] != 0xFF:
                return False
            marker, length = head[1], int.from_bytes(head[2:4], "big")
            if marker == 0xDA:  # start of scan: no more header segments
                return True
            if marker == 0xEB or length < 2:  # APP11: JUMBF, where C2PA lives
                return False
            body = fh.read(length - 2)
            if marker == 0xE1 and b"provenance" in body:
                return False
    return False


def read_c2pa(path: Path, mime: str) -> dict[str, Any] | None:
    """The summary of the file's C2PA manifest, None if it has none; never raises for the file.

    Only photos and videos of a type the SDK reads are looked at. A file that cannot be read
    gives ``{"present": <whether a manifest was found>, "error": <error kind>}``.
    """
    if not mime.startswith(("image/", "video/")):
        return None
    try:
        import c2pa
    except ImportError:  # pragma: no cover - c2pa-python is a pinned dependency
        logger.warning("c2pa-python is not installed; C2PA manifests are not read")
        return {"present": False, "error": "ImportError"}
    try:
        if mime not in c2pa.Reader.get_supported_mime_types():
            return None
        if mime == "image/jpeg" and jpeg_without_c2pa(path):
            return None
        if path.stat().st_size > MAX_BYTES:
            return {"present": False, "error": "FileTooLarge"}
        with path.open("rb") as fh, c2pa.Context.from_dict(OFFLINE_SETTINGS) as context:
            reader = c2pa.Reader.try_create(mime, fh, context=context)
            if reader is None:
                return None
            with reader:
                store = json.loads(reader.json())
    except Exception as error:  # hostile input of any shape ends as an error summary
        name = error_name(error)
        logger.info("C2PA manifest unreadable: %s", name)
        return {"present": name.removeprefix("C2paError.") in _MANIFEST_ERRORS, "error": name}
    return summarise(store)


@functools.cache
def library_version() -> str | None:
    """The installed c2pa-python version, for the record's ``extractors``; None if absent.

    Cached: reading package metadata costs about a millisecond, per photo otherwise.
    """
    try:
        return metadata.version("c2pa-python")
    except metadata.PackageNotFoundError:  # pragma: no cover - a pinned dependency
        return None


def error_name(error: BaseException) -> str:
    """``C2paError.<Kind>`` from the native message's prefix, else the exception's type name.

    Only the prefix is kept: the rest of the message may quote the file's content.
    """
    name = type(error).__name__.lstrip("_")
    if not any(cls.__name__ == "C2paError" for cls in type(error).__mro__):
        return name
    kind = str(error).split(":", 1)[0]
    return f"C2paError.{kind}" if kind.isidentifier() and len(kind) <= 40 else "C2paError"


def summarise(store: Mapping[str, Any]) -> dict[str, Any]:
    """The summary of a manifest store as c2pa-python's ``Reader.json()`` gives it."""
    label = store.get("active_manifest")
    manifests = _mapping(store.get("manifests"))
    active = _mapping(manifests.get(label)) if isinstance(label, str) else {}
    signature = _mapping(active.get("signature_info"))
    state = store.get("validation_state")
    return {
        "present": True,
        "active_manifest": label if isinstance(label, str) else None,
        "claim_generator": claim_generator(active),
        "signer": _text(signature.get("issuer")) or _text(signature.get("common_name")),
        "signed_at": _text(signature.get("time")),
        "validation_state": state.lower() if isinstance(state, str) else None,
        "validation_errors": validation_errors(store),
        "actions": action_names(active),
        "ingredients": len(_list(active.get("ingredients"))),
    }


def claim_generator(manifest: Mapping[str, Any]) -> str | None:
    """The v1 ``claim_generator`` string, else ``name/version`` of the first generator info."""
    legacy = _text(manifest.get("claim_generator"))
    if legacy:
        return legacy
    infos = _list(manifest.get("claim_generator_info"))
    first = _mapping(infos[0]) if infos else {}
    name, version = _text(first.get("name")), _text(first.get("version"))
    if name and version:
        return f"{name}/{version}"
    return name


def validation_errors(store: Mapping[str, Any]) -> list[str]:
    """Failure codes of the store (e.g. ``assertion.dataHash.mismatch``), first seen first."""
    entries = store.get("validation_status")
    if not isinstance(entries, list):
        active = _mapping(_mapping(store.get("validation_results")).get("activeManifest"))
        entries = active.get("failure")
    codes = [_text(_mapping(entry).get("code")) for entry in _list(entries)]
    return _bounded(codes)


def action_names(manifest: Mapping[str, Any]) -> list[str]:
    """Action names (``c2pa.created``, ``c2pa.edited`` ...) of the manifest's actions assertions."""
    names: list[str | None] = []
    for item in _list(manifest.get("assertions")):
        assertion = _mapping(item)
        label = _text(assertion.get("label")) or ""
        if label == "c2pa.actions" or label.startswith("c2pa.actions.v"):
            actions = _list(_mapping(assertion.get("data")).get("actions"))
            names += [_text(_mapping(action).get("action")) for action in actions]
    return _bounded(names)


def _bounded(values: list[str | None]) -> list[str]:
    return list(dict.fromkeys(v for v in values if v))[:MAX_LIST]


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _text(value: Any) -> str | None:
    return value[:200] if isinstance(value, str) and value else None
