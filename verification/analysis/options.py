"""The settings an analysis needs (defined beside :class:`~verification.config.Settings`)."""

from __future__ import annotations

from verification.config import AnalysisOptions

__all__ = ["AnalysisOptions"]
