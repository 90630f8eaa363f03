"""The values that travel through the pipeline: what was learned about a submission, and its outcome."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from verification.analysis import FileAnalysis
from verification.core.claims import Claims
from verification.core.findings import Finding
from verification.core.hashing import Digests
from verification.duplicates.index import BaseScan
from verification.storage import ObjectInfo

# Evidence outcomes: the submission was preserved and recorded with one of these statuses.
EVIDENCE_STATUSES = ("consistent", "needs-review", "inconsistent", "unreadable")
# The pipeline could not do its work (store, database or workers): nothing was decided about
# the file, the submission stays unprocessed and the next run tries again.
FAILED = "failed"
# The object's key is refused (control characters, "..", ...): the submission is recorded once
# with the reason, its bytes stay untouched under incoming/, and it is not tried again.
REJECTED = "rejected"


@dataclass(frozen=True)
class Analysis:
    """What preservation and analysis learned about one submission; what recording needs.

    ``error`` set with ``info`` and ``digests`` present means the file was preserved but defeats
    the analysis (it is quarantined); ``error`` without ``digests`` means it could not be read.
    """

    key: str
    info: ObjectInfo | None
    claims: Claims | None = None
    digests: Digests | None = None
    vault_version: str | None = None
    vault_check: Mapping[str, Any] = field(default_factory=dict)
    format: Mapping[str, Any] = field(default_factory=dict)
    media: Mapping[str, Any] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)
    raw: Mapping[str, str] = field(default_factory=dict)
    perceptual: Mapping[str, Any] = field(default_factory=dict)
    geolocation: Mapping[str, Any] = field(default_factory=dict)
    item_findings: tuple[Finding, ...] = ()
    claim_findings: tuple[Finding, ...] = ()
    derivatives: tuple[Mapping[str, Any], ...] = ()
    extractors: Mapping[str, str] = field(default_factory=dict)
    error: str | None = None
    error_stage: str | None = None
    # The duplicate search over the collection as the batch loaded it, done in the I/O thread
    # while earlier submissions were recorded (a cache: recording checks it still applies).
    ahead: BaseScan | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of one submission, as printed by the CLI and returned by DAG tasks.

    ``status`` is an evidence status (:data:`EVIDENCE_STATUSES`), ``rejected`` when the object's
    key is refused (a recorded result, with the reason in ``error``) or ``failed`` when the
    pipeline could not do its work. It carries no coordinates: it travels through logs and XComs.
    """

    key: str
    item: str | None
    status: str
    findings: tuple[str, ...] = ()
    error: str | None = None
    format: str | None = None
    size: int | None = None

    @property
    def failed(self) -> bool:
        """True when nothing was decided about the file (infrastructure failure; retried)."""
        return self.status == FAILED

    @property
    def rejected(self) -> bool:
        """True when the object's key was refused; recorded once, never retried."""
        return self.status == REJECTED

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "key": self.key,
            "item": self.item,
            "status": self.status,
            "findings": list(self.findings),
            "error": self.error,
            "format": self.format,
            "size": self.size,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Outcome:
        """Inverse of :meth:`to_dict`."""
        return cls(
            data["key"],
            data.get("item"),
            data["status"],
            tuple(data.get("findings") or ()),
            data.get("error"),
            data.get("format"),
            data.get("size"),
        )


def reason(exc: BaseException) -> str:
    """``Type: message`` of an exception on one line, bounded, for records and logs.

    A database error gives only the driver's first line: SQLAlchemy's own message goes on with
    the statement and its parameters, which hold claims (coordinates) and keys.
    """
    from sqlalchemy.exc import SQLAlchemyError, StatementError

    if isinstance(exc, StatementError) and exc.orig is not None:
        inner = exc.orig
        lines = str(inner).strip().splitlines()
        return f"database error: {type(inner).__name__}: {lines[0] if lines else ''}"[:500]
    text = str(exc) or type(exc).__name__
    if isinstance(exc, SQLAlchemyError):
        text = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
        return f"database error: {type(exc).__name__}: {text}"[:500]
    return f"{type(exc).__name__}: {' '.join(text.split())}"[:500]


def with_analysis(
    base: Analysis,
    result: FileAnalysis,
    derivatives: Sequence[Mapping[str, Any]],
    claim_problems: Sequence[Finding] = (),
) -> Analysis:
    """``base`` (a preserved submission) completed with what the analysis found, plus what the
    store side found about the claims (unreadable claims, a hash at collection that differs)."""
    claim_findings = (*result.claim_findings, *claim_problems)
    return replace(
        base,
        format=result.format,
        media=result.media,
        metadata=result.metadata,
        raw=result.raw,
        perceptual=result.perceptual,
        geolocation=result.geolocation,
        item_findings=result.item_findings,
        claim_findings=claim_findings,
        derivatives=tuple(derivatives),
        extractors=result.extractors,
    )
