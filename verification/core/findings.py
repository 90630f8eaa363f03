"""Findings: what a step observed, with a code, a severity and the evidence behind it.

Findings are signals for an analyst, never verdicts. The item's status is derived from them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Severity = Literal["info", "warning", "critical"]
Status = Literal["consistent", "needs-review", "inconsistent", "unreadable"]

SEVERITY_ORDER: dict[str, int] = {"critical": 0, "warning": 1, "info": 2}


@dataclass(frozen=True, slots=True)
class Finding:
    """One observation. ``critical`` means a claim is contradicted; ``warning`` needs a look."""

    code: str
    severity: Severity
    message: str
    evidence: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, as stored in records and exports."""
        return {
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
            "evidence": dict(self.evidence),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Finding:
        """Inverse of :meth:`to_dict`."""
        return cls(data["code"], data["severity"], data["message"], dict(data.get("evidence", {})))


def derive_status(findings: Iterable[Finding]) -> tuple[Status, list[str]]:
    """Return the item status and the finding codes that decided it.

    ``unreadable`` wins over everything, then any critical finding makes the item
    ``inconsistent``, any warning ``needs-review``; otherwise it is ``consistent``.
    """
    items = list(findings)
    rules: tuple[tuple[Status, Callable[[Finding], bool]], ...] = (
        ("unreadable", lambda f: f.code == "unreadable"),
        ("inconsistent", lambda f: f.severity == "critical"),
        ("needs-review", lambda f: f.severity == "warning"),
    )
    for status, test in rules:
        reasons = [f.code for f in items if test(f)]
        if reasons:
            return status, reasons
    return "consistent", []
