"""Find and summarise an XMP packet: creator tool and edit history.

The packet is untrusted text. At most ``MAX_XMP_BYTES`` are parsed, and packets that declare a
DOCTYPE or entities are read with regular expressions only, so no entity is ever expanded.
"""

from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ET
from typing import Any, BinaryIO

logger = logging.getLogger(__name__)

MAX_XMP_BYTES = 1 << 20
_SCAN_BYTES = 4 << 20
_CHUNK = 1 << 16
_START = b"<x:xmpmeta"
_END = b"</x:xmpmeta>"

_NS = {
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "xmp": "http://ns.adobe.com/xap/1.0/",
    "xmpMM": "http://ns.adobe.com/xap/1.0/mm/",
    "stEvt": "http://ns.adobe.com/xap/1.0/sType/ResourceEvent#",
}
_CREATOR_RE = re.compile(
    r"xmp:CreatorTool\s*=\s*[\"']([^\"']{0,500})[\"']|<xmp:CreatorTool>([^<]{0,500})<", re.S
)
_EVENT_FIELDS = ("action", "softwareAgent", "when", "changed")
_MAX_EVENTS = 200


def empty_xmp() -> dict[str, Any]:
    """The summary of a file without XMP."""
    return {"present": False, "creator_tool": None, "history": []}


def find_packet(fh: BinaryIO) -> bytes | None:
    """The first ``<x:xmpmeta>`` packet within the first few MiB of the file, bounded in size."""
    fh.seek(0)
    window = b""
    scanned = 0
    while scanned < _SCAN_BYTES:
        chunk = fh.read(_CHUNK)
        if not chunk:
            break
        scanned += len(chunk)
        window = window[-len(_START) :] + chunk
        start = window.find(_START)
        if start >= 0:
            return _read_packet(fh, window[start:])
    return None


def _read_packet(fh: BinaryIO, head: bytes) -> bytes:
    packet = head
    while _END not in packet and len(packet) < MAX_XMP_BYTES:
        chunk = fh.read(_CHUNK)
        if not chunk:
            break
        packet += chunk
    end = packet.find(_END)
    return packet[: end + len(_END)] if end >= 0 else packet[:MAX_XMP_BYTES]


def summarise(packet: bytes | None) -> dict[str, Any]:
    """``{"present", "creator_tool", "history"}`` for an XMP packet (or its absence)."""
    if not packet:
        return empty_xmp()
    text = packet[:MAX_XMP_BYTES].decode("utf-8", errors="replace")
    start = text.find("<x:xmpmeta")
    end = text.find("</x:xmpmeta>")
    if start >= 0 and end > start:
        text = text[start : end + len("</x:xmpmeta>")]
    summary = _parse_tree(text) if "<!" not in text else None
    if summary is None:
        summary = _parse_regex(text)
    return {"present": True, **summary}


def _parse_tree(text: str) -> dict[str, Any] | None:
    try:
        root = ET.fromstring(text)  # noqa: S314 - DOCTYPE/ENTITY packets never reach here
    except ET.ParseError:
        logger.debug("XMP packet is not well-formed XML; falling back to patterns")
        return None
    creator = root.find(".//rdf:Description[@xmp:CreatorTool]", _NS)
    tool = creator.get(f"{{{_NS['xmp']}}}CreatorTool") if creator is not None else None
    if tool is None:
        element = root.find(".//xmp:CreatorTool", _NS)
        tool = element.text if element is not None else None
    history = [_event_text(item) for item in root.iterfind(".//xmpMM:History//rdf:li", _NS)]
    return {"creator_tool": _clean(tool), "history": [h for h in history if h][:_MAX_EVENTS]}


def _event_text(item: ET.Element) -> str:
    parts = []
    for name in _EVENT_FIELDS:
        key = f"{{{_NS['stEvt']}}}{name}"
        value = item.get(key)
        if value is None:
            child = item.find(key)
            value = child.text if child is not None else None
        if value and value.strip():
            parts.append(f"{name}={value.strip()}")
    return " ".join(parts)[:500]


def _parse_regex(text: str) -> dict[str, Any]:
    match = _CREATOR_RE.search(text)
    tool = (match.group(1) or match.group(2)) if match else None
    actions = re.findall(r"stEvt:action\s*=\s*[\"']([^\"']{0,100})[\"']", text)[:_MAX_EVENTS]
    return {"creator_tool": _clean(tool), "history": [f"action={a}" for a in actions]}


def _clean(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()[:500]
    return value or None
