"""The settings an analysis needs (defined beside :class:`~verification.core.config.Settings`)."""

from __future__ import annotations

from verification.core.config import AnalysisOptions

__all__ = ["AnalysisOptions"]
