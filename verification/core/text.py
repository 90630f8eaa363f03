"""Untrusted text made safe to show: object keys, EXIF strings and claims reach terminals and logs.

An S3 submitter chooses the key; a camera (or a forger) writes the EXIF strings. Printed raw, an
ESC sequence can clear an operator's screen or recolour a table, a newline can forge a log line,
and a bidirectional override can make a name read backwards. :func:`printable` escapes them.
"""

from __future__ import annotations

import unicodedata

# Control (Cc), format (Cf: bidi overrides, zero-width joiners), line and paragraph separators.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})


def printable(text: str) -> str:
    """``text`` with every control or invisible formatting character escaped (``\\x1b``, ``\\u202e``).

    Backslashes are escaped too, so the result cannot be mistaken for an escape that was in the
    input; ordinary letters of every script are kept as they are.
    """
    if text.isprintable() and "\\" not in text:
        return text
    return "".join(_escape(char) for char in text)


def _escape(char: str) -> str:
    if char == "\\":
        return "\\\\"
    if unicodedata.category(char) not in _UNSAFE_CATEGORIES and char.isprintable():
        return char
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"
