"""Object-key and metadata-name validation: keys are untrusted input and never become paths unchecked.

The rules are the intersection of what is safe as a relative POSIX path, what Windows tools would
not reinterpret, and what S3 accepts, so one key means the same object in every backend.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping

from verification.storage._stream import encode_metadata_value
from verification.storage.base import InvalidKey

MAX_KEY_BYTES = 1024
MAX_METADATA_BYTES = 2048  # S3's limit on user metadata as sent (names plus encoded values)
_DRIVE = re.compile(r"[A-Za-z]:")
_METADATA_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")


def _show(key: str) -> str:
    """The key for an error message: repr() so control characters stay visible, truncated."""
    shown = repr(key)
    return shown if len(shown) <= 100 else shown[:97] + "..."


def key_problem(key: str) -> str | None:
    """What is wrong with ``key`` (``"contains a control character"``), or None when it is safe.

    The text never contains the key, so it can be stored and shown next to the key without
    echoing what the key holds.
    """
    if not key:
        return "is empty"
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        return "is not valid UTF-8"
    if size > MAX_KEY_BYTES:
        return f"is {size} bytes long (limit {MAX_KEY_BYTES})"
    if any(unicodedata.category(char) == "Cc" for char in key):
        return "contains a control character"
    if "\\" in key:
        return "contains a backslash"
    if key.startswith("/"):
        return "is absolute"
    if _DRIVE.match(key):
        return "starts with a drive letter"
    for part in key.split("/"):
        if part in ("", ".", ".."):
            return f"has an empty, '.' or '..' path component ({part!r})"
    return None


def validate_key(key: str) -> str:
    """Return ``key`` unchanged if it is a safe relative object key, else raise :class:`InvalidKey`.

    Refused: empty keys, absolute keys, ``.``/``..``/empty components (``a//b``), backslashes,
    control characters (NUL included), a leading drive letter (``C:``) and keys over 1024 bytes.
    """
    problem = key_problem(key)
    if problem is not None:
        msg = f"object key {_show(key)} {problem}"
        raise InvalidKey(msg)
    return key


def validate_prefix(prefix: str) -> str:
    """Return ``prefix`` unchanged if listing under it is safe (``""`` and ``"a/"`` included)."""
    if prefix:
        validate_key(prefix.removesuffix("/"))
    return prefix


def normalize_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    """User metadata with lower-case names, as both backends store and return it.

    Names must be ASCII tokens (``case-id``, ``claimed-lat``) because S3 sends them as HTTP
    header names; values may be any text. Both backends enforce S3's 2 KiB limit, so an object
    that fits one store fits the other.
    """
    normalized: dict[str, str] = {}
    total = 0
    for name, value in (metadata or {}).items():
        lower = name.lower()
        if not _METADATA_NAME.fullmatch(lower) or len(lower) > 128:
            msg = f"metadata name {_show(name)} is not a lower-case ASCII token"
            raise InvalidKey(msg)
        if not isinstance(value, str):
            msg = f"metadata value for {lower!r} is {type(value).__name__}, not str"
            raise TypeError(msg)
        try:
            total += len(lower) + len(encode_metadata_value(value))
        except UnicodeEncodeError as exc:
            msg = f"metadata value for {lower!r} is not valid UTF-8"
            raise InvalidKey(msg) from exc
        normalized[lower] = value
    if total > MAX_METADATA_BYTES:
        msg = f"user metadata is {total} bytes once encoded (limit {MAX_METADATA_BYTES})"
        raise InvalidKey(msg)
    return normalized
