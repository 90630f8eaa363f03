"""Our photo extraction agrees with ExifTool on the shared sample corpus."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO.parent / "shared" / "corpus"


@pytest.mark.conformance
def test_extraction_agrees_with_exiftool_on_the_corpus() -> None:
    """At least 99.5% of the fields ExifTool reports (or we invent) agree."""
    if not (CORPUS / "exif-samples.expected.json").exists():
        pytest.skip(f"sample corpus not found at {CORPUS} (it lives in ../shared, CI only)")
    sys.path.insert(0, str(REPO))
    from bench.conformance import GOAL, run_conformance

    report = run_conformance(CORPUS)
    detail = "; ".join(f"{m.file}:{m.field}" for m in report.mismatches[:20])
    assert report.files == 100
    assert report.overall >= GOAL, f"agreement {report.overall:.2%}; mismatches: {detail}"
