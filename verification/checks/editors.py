"""Which software a metadata string names, when that software edits photos or videos."""

from __future__ import annotations

import re
from typing import Any

_EDITORS: tuple[tuple[str, str], ...] = (
    ("Photoshop", r"photoshop"),
    ("Lightroom", r"lightroom"),
    ("Adobe Express", r"adobe express"),
    ("Adobe Premiere", r"premiere (?:pro|rush)"),
    ("After Effects", r"after effects"),
    ("GIMP", r"\bgimp\b"),
    ("Snapseed", r"snapseed"),
    ("Affinity Photo", r"\baffinity\b"),
    ("Pixelmator", r"pixelmator"),
    ("PicsArt", r"picsart"),
    ("Canva", r"\bcanva\b"),
    ("FaceApp", r"faceapp"),
    ("Facetune", r"facetune"),
    ("Paint.NET", r"paint\.net"),
    ("PhotoScape", r"photoscape"),
    ("Luminar", r"\bluminar\b"),
    ("Capture One", r"capture one"),
    ("DxO", r"\bdxo\b"),
    ("darktable", r"darktable"),
    ("RawTherapee", r"rawtherapee"),
    ("PaintShop Pro", r"paintshop"),
    ("Fotor", r"\bfotor\b"),
    ("VSCO", r"\bvsco\b"),
    ("Meitu", r"\bmeitu\b"),
    ("Remini", r"\bremini\b"),
    ("Photopea", r"photopea"),
    ("Krita", r"\bkrita\b"),
    ("Picasa", r"picasa"),
    ("PhotoDirector", r"photodirector"),
    ("Lensa", r"\blensa\b"),
    ("CapCut", r"capcut"),
    ("InShot", r"\binshot\b"),
    ("KineMaster", r"kinemaster"),
    ("Filmora", r"filmora"),
    ("Final Cut", r"final cut"),
    ("DaVinci Resolve", r"davinci resolve"),
    ("iMovie", r"\bimovie\b"),
)
_EDITOR_PATTERNS = tuple((name, re.compile(rx, re.IGNORECASE)) for name, rx in _EDITORS)


def editor_name(text: Any) -> str | None:
    """Name of the editing application mentioned in a metadata string, or None."""
    if not isinstance(text, str) or not text.strip():
        return None
    return next((name for name, rx in _EDITOR_PATTERNS if rx.search(text)), None)
