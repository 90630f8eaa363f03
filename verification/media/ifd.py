"""The IFD structure of an EXIF block or a TIFF file: what is malformed, and what not to trust.

exifread reads past malformed structure quietly. It stops an IFD chain that loops, but follows
the Exif, GPS and Interoperability pointers wherever they lead: an Exif pointer aimed back at
IFD0 yields IFD0's tags a second time, and a pointer past the end of the block reads whatever
bytes follow (image data, in a JPEG). No camera or editor writes such files, so
:func:`inspect` walks the same pointers exifread follows, with bounds, and reports each problem
together with the tag groups (exifread's key prefixes) whose values must not be trusted.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, BinaryIO

from verification.core.findings import Finding

MAX_IFDS = 1024
MAX_PROBLEMS = 8

_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}
_POINTER_TYPES = frozenset({4, 13})  # LONG, IFD
_EXIF, _GPS, _INTEROP = 0x8769, 0x8825, 0xA005
_POINTER_GROUPS = {_EXIF: "EXIF", _GPS: "GPS", _INTEROP: "Interoperability"}
# The pointers exifread follows: IFD0's Exif pointer, and GPS and Interop pointers in any IFD it
# reads with its main tag table (the chain's IFDs and the Exif IFD).
_CHAIN_POINTERS = frozenset({_EXIF, _GPS, _INTEROP})
_SUB_POINTERS = frozenset({_GPS, _INTEROP})
_THUMBNAIL_KEYS = ("JPEGThumbnail", "TIFFThumbnail")


@dataclass(frozen=True, slots=True)
class Report:
    """What is wrong with one IFD structure (empty when nothing is)."""

    problems: tuple[str, ...] = ()
    distrusted: frozenset[str] = frozenset()
    size: int | None = None  # of the inspected block; None when there was none to inspect

    @property
    def malformed(self) -> bool:
        """True when anything was wrong."""
        return bool(self.problems)

    def with_problem(self, problem: str) -> Report:
        """This report with one more problem (e.g. the parser's own failure)."""
        return replace(self, problems=(*self.problems, problem)[:MAX_PROBLEMS])

    def trusted(self, tags: Mapping[str, Any]) -> dict[str, Any]:
        """``tags`` (exifread's) without the groups and values this report distrusts."""
        return {key: tag for key, tag in tags.items() if self._trusts(key, tag)}

    def _trusts(self, key: str, tag: Any) -> bool:
        if key in _THUMBNAIL_KEYS:
            return "Thumbnail" not in self.distrusted
        if any(key.startswith(f"{group} ") for group in self.distrusted):
            return False
        start = getattr(tag, "field_offset", None)
        length = getattr(tag, "field_length", None)
        if self.size is not None and isinstance(start, int) and isinstance(length, int):
            return length <= 4 or start + length <= self.size  # up to 4 bytes sit in the entry
        return True


def malformed_finding(report: Report, dropped: int) -> Finding | None:
    """The ``metadata-malformed`` finding for a report with problems, else None.

    ``dropped`` is how many tags were left out because the structure lent them.
    """
    if not report.malformed:
        return None
    what = "; ".join(report.problems)
    if dropped:
        groups = ", ".join(sorted(report.distrusted)) or "values outside the block"
        consequence = f"{dropped} tag values read through it are not used ({groups})"
    else:
        consequence = "no values had to be dropped"
    message = f"EXIF metadata is malformed: {what}; {consequence}."
    evidence = {
        "problems": list(report.problems),
        "distrusted_groups": sorted(report.distrusted),
        "dropped_tags": dropped,
    }
    return Finding("metadata-malformed", "warning", message, evidence)


@dataclass(slots=True)
class _Visit:
    offset: int
    group: str
    parent: int | None  # index of the visit whose pointer led here


@dataclass(slots=True)
class _Walk:
    fh: BinaryIO
    size: int
    endian: str
    visits: list[_Visit] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    distrusted: set[str] = field(default_factory=set)

    def problem(self, text: str, *groups: str) -> None:
        if text not in self.problems:
            self.problems.append(text)
        self.distrusted.update(groups)


def inspect_block(block: bytes) -> Report:
    """Inspect an EXIF block (a TIFF header and its IFDs), as found in JPEG, PNG, WebP, HEIF."""
    return inspect(io.BytesIO(block))


def inspect(fh: BinaryIO) -> Report:
    """Inspect the IFDs of a TIFF-structured stream that starts at its byte-order mark."""
    size = fh.seek(0, io.SEEK_END)
    fh.seek(0)
    header = fh.read(8)
    if len(header) < 8 or header[:2] not in {b"II", b"MM"}:
        return Report(("the TIFF header is cut off or has no byte-order mark",), size=size)
    endian = "<" if header[:2] == b"II" else ">"
    if struct.unpack(f"{endian}H", header[2:4])[0] != 42:
        return Report(size=size)  # BigTIFF and other variants are not inspected
    walk = _Walk(fh, size, endian)
    _walk_chain(walk, struct.unpack(f"{endian}I", header[4:8])[0])
    problems = tuple(walk.problems[:MAX_PROBLEMS])
    return Report(problems, frozenset(walk.distrusted), size)


def _chain_group(position: int) -> str:
    # exifread's names for the IFDs of the main chain.
    return ("Image", "Thumbnail")[position] if position < 2 else f"IFD {position}"


def _walk_chain(walk: _Walk, offset: int) -> None:
    parent: int | None = None
    position = 0
    exif_pointer: int | None = None
    via = "the TIFF header"
    while offset:
        group = _chain_group(position)
        index = _visit(walk, offset, group, parent, via)
        if index is None:
            break
        follow = _CHAIN_POINTERS if position == 0 else _SUB_POINTERS
        pointers = _read_entries(walk, index, follow)
        exif_pointer = pointers.pop(_EXIF, exif_pointer)
        for tag, target in pointers.items():
            _walk_sub_ifd(walk, index, tag, target)
        offset = _next_link(walk, index)
        parent, position, via = index, position + 1, f"the next-IFD link of {group}"
    if exif_pointer is not None:
        # exifread reads the Exif IFD after the whole chain, from IFD0's pointer only.
        _walk_sub_ifd(walk, 0, _EXIF, exif_pointer)


def _walk_sub_ifd(walk: _Walk, parent: int, tag: int, offset: int) -> None:
    group = _POINTER_GROUPS[tag]
    pointer = f"the {group} pointer in {walk.visits[parent].group}"
    index = _visit(walk, offset, group, parent, pointer)
    if index is None:
        return
    # Only the Exif IFD is read with the tag table that follows GPS and Interop pointers.
    follow = _SUB_POINTERS if group == "EXIF" else frozenset()
    for sub_tag, target in _read_entries(walk, index, follow).items():
        _walk_sub_ifd(walk, index, sub_tag, target)


def _visit(walk: _Walk, offset: int, group: str, parent: int | None, via: str) -> int | None:
    """Record a visit of the IFD at ``offset``; None when it must not be read (with why)."""
    if offset < 8 or offset + 2 > walk.size:
        walk.problem(f"{via} points outside the block (offset {offset}, size {walk.size})", group)
        return None
    earlier = next((i for i, v in enumerate(walk.visits) if v.offset == offset), None)
    if earlier is not None:
        _revisit(walk, earlier, group, parent, via)
        return None
    if len(walk.visits) >= MAX_IFDS:
        walk.problem(f"more than {MAX_IFDS} IFDs", group)
        return None
    walk.visits.append(_Visit(offset, group, parent))
    return len(walk.visits) - 1


def _revisit(walk: _Walk, earlier: int, group: str, parent: int | None, via: str) -> None:
    """An IFD reached twice: a loop when it leads back to itself, else an overlap."""
    target = walk.visits[earlier]
    cycle = _ancestors(walk, parent)
    if earlier in cycle:
        groups = [walk.visits[i].group for i in cycle[: cycle.index(earlier) + 1]]
        walk.problem(f"IFD loop: {via} leads back to {target.group}", group, *groups)
    elif target.group != group:
        # One IFD read with two tag tables: which pointer is right cannot be told.
        walk.problem(f"{via} points at the {target.group} IFD", group, target.group)


def _ancestors(walk: _Walk, index: int | None) -> list[int]:
    chain: list[int] = []
    while index is not None and len(chain) <= MAX_IFDS:
        chain.append(index)
        index = walk.visits[index].parent
    return chain


def _read_entries(walk: _Walk, index: int, follow: frozenset[int]) -> dict[int, int]:
    """Check one IFD's entries; return its pointers (of those in ``follow``) by tag."""
    visit = walk.visits[index]
    walk.fh.seek(visit.offset)
    count = struct.unpack(f"{walk.endian}H", walk.fh.read(2))[0]
    end = visit.offset + 2 + 12 * count
    if end > walk.size:
        walk.problem(f"the {visit.group} IFD's {count} entries run past the end", visit.group)
        return {}
    table = walk.fh.read(12 * count)
    pointers: dict[int, int] = {}
    for start in range(0, len(table), 12):
        tag, kind, number, value = struct.unpack(f"{walk.endian}HHII", table[start : start + 12])
        if tag in follow:
            _pointer(walk, visit.group, tag, kind, number, value, pointers)
        elif kind in _TYPE_SIZES and _TYPE_SIZES[kind] * number > 4:
            _value_in_range(walk, visit.group, tag, value, _TYPE_SIZES[kind] * number)
    return pointers


def _pointer(
    walk: _Walk, group: str, tag: int, kind: int, number: int, value: int, out: dict[int, int]
) -> None:
    name = _POINTER_GROUPS[tag]
    if kind not in _POINTER_TYPES:
        walk.problem(f"the {name} pointer in {group} has the wrong type ({kind})", name)
        return
    if number < 1:
        walk.problem(f"the {name} pointer in {group} is empty", name)
        return
    out[tag] = value


def _value_in_range(walk: _Walk, group: str, tag: int, offset: int, length: int) -> None:
    if offset + length > walk.size:
        walk.problem(f"the value of tag 0x{tag:04X} in {group} lies outside the block")


def _next_link(walk: _Walk, index: int) -> int:
    visit = walk.visits[index]
    walk.fh.seek(visit.offset)
    count = struct.unpack(f"{walk.endian}H", walk.fh.read(2))[0]
    walk.fh.seek(visit.offset + 2 + 12 * count)
    link = walk.fh.read(4)
    return struct.unpack(f"{walk.endian}I", link)[0] if len(link) == 4 else 0
