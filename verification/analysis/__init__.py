"""The analysis layer: what is computed from a preserved file's bytes, and the worker processes
that compute it.

Owns: :func:`analyse_file` (format, media facts, checks against the claims, derivatives as
bytes), :class:`AnalysisOptions` (the only settings it sees) and :class:`AnalysisPool` (worker
processes with crash isolation). It may import the media, checks and findings modules; it never
imports the object store, the database, the ledger or Airflow, and never reads the environment.
"""

from __future__ import annotations

from verification.analysis.core import AnalysisJob, FileAnalysis, analyse_file
from verification.analysis.options import AnalysisOptions
from verification.analysis.pool import AnalysisPool, FileFailed, WorkersUnavailable

__all__ = [
    "AnalysisJob",
    "AnalysisOptions",
    "AnalysisPool",
    "FileAnalysis",
    "FileFailed",
    "WorkersUnavailable",
    "analyse_file",
]
