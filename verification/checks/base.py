"""Values shared by the checks: the result, a resolved capture time, the scratch state of a run."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from verification.checks.catalogue import FINDING_CODES
from verification.core.findings import Finding

if TYPE_CHECKING:
    from verification.core.config import AnalysisOptions as Settings


@dataclass(frozen=True, slots=True)
class CheckResult:
    """Geolocation summary (JSON-ready dict) and the findings of the check step."""

    geolocation: dict[str, Any]
    findings: tuple[Finding, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "geolocation": self.geolocation,
            "findings": [f.to_dict() for f in self.findings],
        }


@dataclass(frozen=True, slots=True)
class CaptureTime:
    """Resolved capture time in UTC; ``slack_hours`` > 0 when the UTC offset is unknown."""

    when: datetime
    source: str  # exif-offset | gps-timezone-inferred | gps-time | container | exif-naive
    slack_hours: float = 0.0
    inference: str | None = None


@dataclass(frozen=True, slots=True)
class Position:
    lat: float
    lon: float


@dataclass(slots=True)
class CheckContext:
    """Mutable scratch state of one run_checks call (never escapes it)."""

    settings: Settings
    readable: bool = True
    findings: list[Finding] = field(default_factory=list)
    geolocation: dict[str, Any] = field(default_factory=dict)

    def add(self, code: str, message: str, **evidence: Any) -> None:
        self.findings.append(Finding(code, FINDING_CODES[code][0], message, evidence))

    def add_absence(self, code: str, message: str) -> None:
        """A finding about something the file lacks; it says nothing if the file is unreadable."""
        if self.readable:
            self.add(code, message)
