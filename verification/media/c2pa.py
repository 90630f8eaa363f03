"""C2PA (Content Credentials): read the manifest a photo or video carries, offline.

``read_c2pa`` returns a small JSON-ready summary of the active manifest (signer, claim
generator, validation state and codes, actions, ingredient count) as c2pa-python reports it,
None when the file carries no manifest. Whether a manifest is there is decided from the file's
container (:mod:`verification.media.c2pa_locate`), because the SDK raises the same error kinds
for a manifest it cannot read and for a file it cannot parse. Nothing is fetched: remote
manifests and OCSP are off and the SDK's network allow-list is empty, so a file that only
points to a manifest online is reported with that address instead of contacting it.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Mapping
from importlib import metadata
from typing import TYPE_CHECKING, Any

from verification.media.c2pa_locate import Embedding, locate

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
# manifest (or a reference to a remote one) was found in the file. Others (Other, Io,
# NotSupported) come both from manifests the SDK cannot read (an unknown signing algorithm,
# prerelease content) and from files it cannot parse: the container decides for those.
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


def jpeg_without_c2pa(path: Path) -> bool:
    """True when a JPEG's header segments (up to the image data) hold no C2PA data or reference.

    C2PA embeds its manifest store in APP11 (JUMBF) segments and points to manifests from XMP
    (``dcterms:provenance``). When the header walks cleanly to the start of the image data
    without either, the SDK (which reads the whole file) is not needed. Anything unusual
    answers False, so the SDK decides.
    """
    with path.open("rb") as fh:
        return _plain_jpeg(locate(fh))


def _plain_jpeg(embedding: Embedding) -> bool:
    return (
        embedding.container == "jpeg"
        and embedding.complete
        and embedding.store is None
        and embedding.reference is None
    )


def read_c2pa(path: Path, mime: str) -> dict[str, Any] | None:
    """The summary of the file's C2PA manifest, None if it has none; never raises for the file.

    Only photos and videos of a type the SDK reads are looked at. A manifest that is there but
    cannot be read, and a file the SDK cannot parse, give :func:`unread_summary`.
    """
    if not mime.startswith(("image/", "video/")):
        return None
    try:
        import c2pa
    except ImportError:  # pragma: no cover - c2pa-python is a pinned dependency
        logger.warning("c2pa-python is not installed; C2PA manifests are not read")
        return {"present": False, "error": "ImportError"}
    embedding = Embedding()
    try:
        if mime not in c2pa.Reader.get_supported_mime_types():
            return None
        with path.open("rb") as fh:
            embedding = locate(fh)
        if mime == "image/jpeg" and _plain_jpeg(embedding):
            return None
        if path.stat().st_size > MAX_BYTES:
            too_large = f"the file is over {MAX_BYTES} bytes, the limit for validation"
            return unread_summary(embedding, "FileTooLarge", too_large)
        store = _read_store(c2pa, path, mime)
    except MemoryError:
        raise  # the worker's memory limit: reported by the worker, not as a C2PA problem
    except Exception as error:  # hostile input of any shape ends as an error summary
        name = error_name(error)
        logger.info(
            "C2PA reader failed: %s (C2PA data in the container: %s)", name, embedding.found
        )
        return unread_summary(embedding, name, error_text(error))
    if store is not None:
        return summarise(store)
    if embedding.found:  # C2PA data in the container, yet the SDK saw no manifest store
        return unread_summary(
            embedding, "C2paError.ManifestNotFound", "the SDK found no manifest store"
        )
    return None


def _read_store(c2pa: Any, path: Path, mime: str) -> dict[str, Any] | None:
    """The manifest store as ``Reader.json()`` gives it, None when the SDK finds none."""
    with path.open("rb") as fh, c2pa.Context.from_dict(OFFLINE_SETTINGS) as context:
        reader = c2pa.Reader.try_create(mime, fh, context=context)
        if reader is None:
            return None
        with reader:
            store: dict[str, Any] = json.loads(reader.json())
    return store


def unread_summary(embedding: Embedding, error: str, text: str) -> dict[str, Any]:
    """The summary when the SDK gave no manifest: whether one is there, and why it was not read.

    ``present`` is what the container says (an embedded store, or a reference to a manifest
    online); an error kind the SDK raises only after finding C2PA data also counts, in case
    it knows a placement the walk does not. ``error_text`` is the SDK's message, bounded.
    """
    kind = error.removeprefix("C2paError.")
    return {
        "present": embedding.found or kind in _MANIFEST_ERRORS,
        "error": error,
        "error_text": text,
        "found_in": embedding.store,
        "remote_url": embedding.remote_url,
    }


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


def error_text(error: BaseException) -> str:
    """The SDK's message for the record (printable, at most 300 characters); else the type.

    Other exceptions give only their type name: their messages may name local paths.
    """
    if not any(cls.__name__ == "C2paError" for cls in type(error).__mro__):
        return type(error).__name__
    text = "".join(ch for ch in str(error) if ch.isprintable()).strip()
    return text[:300] or error_name(error)


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
