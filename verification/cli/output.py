"""What the CLI prints: tables with untrusted text escaped, sizes for people, the ingest summary."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from verification.core.text import printable


def print_outcomes(outcomes: Sequence[Any]) -> None:
    """The summary table: item, SHA-256 prefix, type, size, status, findings."""
    rows = [
        (
            clip(o.key.rsplit("/", 1)[-1], 28),
            (o.item or "-")[:12],
            o.format or "-",
            human_size(o.size),
            o.status,
            ", ".join(c for c in o.findings if c not in INFORMATIVE) or clip(o.error or "", 80),
        )
        for o in outcomes
    ]
    table(("submission", "sha256", "type", "size", "status", "findings"), rows)
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.status] = counts.get(o.status, 0) + 1
    print("\n" + "  ".join(f"{k}: {v}" for k, v in sorted(counts.items())))


INFORMATIVE = {"location-matches-claim", "time-matches-claim"}


def human_size(size: int | None) -> str:
    """A byte count for people (KB, MB, GB with one decimal)."""
    if size is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024  # type: ignore[assignment]
    return "-"


def clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A plain-text table; every cell escaped (cells hold keys, case ids, names from outside)."""
    rows = [[printable(str(cell)) for cell in row] for row in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
