"""Compare our photo extraction with ExifTool's readings of the shared sample corpus.

Usage: ``python bench/conformance.py [CORPUS_DIR]`` (default ``../shared/corpus``). Prints
per-field and overall agreement, lists every mismatch, and exits 1 below the goal.

Scoring: a field counts when ExifTool reports a value (agree when ours matches) or when
ExifTool reports null but we report a value (always a disagreement). Both null is not counted.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

GOAL = 0.995
FIELDS = (
    "width",
    "height",
    "make",
    "model",
    "datetime_original",
    "gps_lat",
    "gps_lon",
    "gps_alt",
    "orientation",
    "software",
)
TOLERANCE = {"gps_lat": 1e-6, "gps_lon": 1e-6, "gps_alt": 0.01}
DEFAULT_CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"


@dataclass(frozen=True, slots=True)
class Mismatch:
    """One field where our reading and ExifTool's differ."""

    file: str
    field: str
    expected: Any
    ours: Any


@dataclass(slots=True)
class Report:
    """Agreement counts per field and the mismatches behind them."""

    agree: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FIELDS, 0))
    total: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FIELDS, 0))
    mismatches: list[Mismatch] = field(default_factory=list)
    files: int = 0

    @property
    def overall(self) -> float:
        """Share of counted fields that agree (1.0 when nothing was counted)."""
        total = sum(self.total.values())
        return sum(self.agree.values()) / total if total else 1.0

    def field_ratio(self, name: str) -> float:
        """Agreement for one field."""
        return self.agree[name] / self.total[name] if self.total[name] else 1.0


def sniff(head: bytes) -> str:
    """Format from magic bytes; uses verification.core.formats when that module exists."""
    try:
        from verification.core.formats import identify
    except ImportError:
        identify = None
    if identify is not None:
        return identify(head)
    if head.startswith(b"\xff\xd8"):
        return "jpeg"
    if head[:4] in {b"II*\x00", b"MM\x00*"}:
        return "tiff"
    if head[4:8] == b"ftyp" and head[8:12] in {b"heic", b"heix", b"mif1", b"msf1", b"heim"}:
        return "heif"
    if head.startswith(b"\x89PNG"):
        return "png"
    return "unknown"


def ours(path: Path) -> dict[str, Any]:
    """Our reading of one file, in the expected JSON's field names."""
    from verification.core.config import Settings
    from verification.media import analyse

    with path.open("rb") as fh:
        fmt = sniff(fh.read(64))
    result = analyse(path, fmt, Settings())
    meta, media = result.metadata, result.media
    gps = meta["gps"] or {}
    return {
        "width": media["width"],
        "height": media["height"],
        "make": meta["make"],
        "model": meta["model"],
        "datetime_original": meta["datetime_original_raw"],
        "gps_lat": gps.get("lat"),
        "gps_lon": gps.get("lon"),
        "gps_alt": gps.get("alt"),
        "orientation": media["orientation"],
        "software": meta["software"],
    }


def same(name: str, expected: Any, got: Any) -> bool:
    """Equality with tolerance for coordinates and stripped whitespace for strings."""
    if expected is None or got is None:
        return expected is None and got is None
    if name in TOLERANCE:
        return abs(float(expected) - float(got)) <= TOLERANCE[name]
    if isinstance(expected, (int, float)) and isinstance(got, str):
        # exiftool -n turns numeric-looking strings ("8.3", "1.00") into JSON numbers.
        try:
            return float(got) == float(expected)
        except ValueError:
            return False
    if isinstance(expected, str):
        return expected.strip() == str(got).strip()
    return bool(expected == got)


def run_conformance(corpus_dir: Path) -> Report:
    """Compare every file listed in ``exif-samples.expected.json`` with our extraction."""
    expected_all = json.loads((corpus_dir / "exif-samples.expected.json").read_text("utf-8"))
    report = Report()
    for rel, expected in sorted(expected_all.items()):
        got = ours(corpus_dir / "exif-samples" / rel)
        report.files += 1
        for name in FIELDS:
            want, have = expected.get(name), got[name]
            if want is None and have is None:
                continue
            report.total[name] += 1
            if same(name, want, have):
                report.agree[name] += 1
            else:
                report.mismatches.append(Mismatch(rel, name, want, have))
    return report


def print_report(report: Report) -> None:
    """Human-readable table of the report."""
    print(f"files: {report.files}")
    for name in FIELDS:
        ratio = report.field_ratio(name)
        print(f"  {name:<18} {report.agree[name]:>4}/{report.total[name]:<4} {ratio:7.2%}")
    print(f"overall: {report.overall:.2%} (goal {GOAL:.1%})")
    for miss in report.mismatches:
        print(f"  MISMATCH {miss.file} {miss.field}: exiftool={miss.expected!r} ours={miss.ours!r}")


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and return the process exit code."""
    args = sys.argv[1:] if argv is None else argv
    corpus = Path(args[0]) if args else DEFAULT_CORPUS
    if not (corpus / "exif-samples.expected.json").exists():
        print(f"corpus not found at {corpus}")
        return 2
    report = run_conformance(corpus)
    print_report(report)
    return 0 if report.overall >= GOAL else 1


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())
