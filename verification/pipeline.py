"""The pipeline: preserve ─> hash ─> identify ─> extract ─> check ─> dedupe ─> record.

Work is split in two halves so a batch can use every core and still write one clean ledger:

* :func:`analyse_submission` runs in a worker process. It reads the incoming object once while
  hashing it, preserves it write-once in the vault, re-reads the vault copy to prove it, and runs
  the pure analysis steps (format, media, checks). It touches the store, never the database.
* :func:`record_analysis` runs in the batch's parent. It writes items, submissions, records and
  custody events, and compares the item against the whole collection for duplicates.

Both halves are idempotent: a step that already left its custody event is not repeated, a
submission (key + ETag) already processed is returned as it was.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from datetime import UTC
from multiprocessing import get_context
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from verification import __version__
from verification.claims import Claims, InvalidClaim, claims_from_metadata
from verification.config import Settings
from verification.custody import Ledger
from verification.db import (
    DuplicateLink,
    Item,
    ItemFinding,
    PerceptualHash,
    Record,
    Submission,
    make_engine,
    utcnow,
)
from verification.findings import Finding, derive_status
from verification.formats import HEAD_SIZE, describe
from verification.hashing import Digests, hash_stream, sha256_stream
from verification.signing import load_key
from verification.storage import (
    InvalidKey,
    ObjectExists,
    ObjectInfo,
    ObjectStore,
    StoreError,
    open_store,
)

log = logging.getLogger(__name__)

INCOMING = "incoming/"
SIDECAR_SUFFIX = ".claims.json"
MAX_SIDECAR_BYTES = 64 * 1024


def pipeline_version() -> str:
    """Version of everything that shapes a record; a change makes the nightly DAG reprocess."""
    from verification.media import MEDIA_VERSION

    return f"{__version__}+media{MEDIA_VERSION}"


def vault_key(sha256: str) -> str:
    """Where an item's preserved original lives."""
    return f"vault/sha256/{sha256[:2]}/{sha256[2:4]}/{sha256}"


def derivative_key(sha256: str, name: str) -> str:
    """Where a derivative (thumbnail, keyframe, report) of an item lives."""
    return f"derivatives/{sha256}/{name}"


class PreservationError(StoreError):
    """The vault copy could not be written or does not match what was read."""


@dataclass(frozen=True)
class Context:
    """What the steps need: settings, the object store and the ledger."""

    settings: Settings
    store: ObjectStore
    ledger: Ledger
    agents: tuple[Mapping[str, Any], ...] = ()

    @property
    def engine(self) -> Any:
        """The ledger's database engine."""
        return self.ledger.engine


def open_context(
    settings: Settings,
    *,
    store: ObjectStore | None = None,
    agents: Sequence[Mapping[str, Any]] = (),
) -> Context:
    """Connect to the configured store and ledger (run ``evidence init`` first)."""
    engine = make_engine(settings.resolved_database_url)
    signer = load_key(settings.resolved_key_path)
    return Context(settings, store or open_store(settings), Ledger(engine, signer), tuple(agents))


@dataclass(frozen=True)
class Analysis:
    """What a worker learned about one submission; everything the recording half needs."""

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


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of one submission, as printed by the CLI and returned by DAG tasks.

    It carries no coordinates: it travels through logs and XComs.
    """

    key: str
    item: str | None
    status: str
    findings: tuple[str, ...] = ()
    error: str | None = None
    format: str | None = None
    size: int | None = None

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


# ---------------------------------------------------------------------------------------------
# Listing


def case_of(key: str) -> str:
    """The case id encoded in ``incoming/<case>/<name>``."""
    parts = key.split("/")
    return parts[1] if len(parts) > 2 and parts[0] == "incoming" else "unassigned"


def list_new(ctx: Context, case: str | None = None) -> list[ObjectInfo]:
    """Objects under ``incoming/`` not yet processed (by key + ETag); failed ones come back."""
    prefix = f"{INCOMING}{case}/" if case else INCOMING
    with Session(ctx.engine) as session:
        rows = session.execute(
            select(Submission.store_key, Submission.etag).where(Submission.state == "processed")
        )
        done = {(key, etag) for key, etag in rows}
    return [
        info
        for info in ctx.store.list(prefix)
        if not info.key.endswith(SIDECAR_SUFFIX) and (info.key, info.etag) not in done
    ]


# ---------------------------------------------------------------------------------------------
# Worker half


# Test hook: ``abort:<text>`` makes a worker process die (SIGABRT) on a key containing <text>,
# so tests can show that a crashed worker takes down only its own file.
FAULT_ENV = "EVIDENCE_TEST_FAULT"


def _injected_fault(key: str) -> None:
    spec = os.environ.get(FAULT_ENV, "")
    if spec.startswith("abort:") and len(spec) > 6 and spec[6:] in key:
        os.abort()


def analyse_submission(
    settings: Settings, key: str, store: ObjectStore | None = None, info: ObjectInfo | None = None
) -> Analysis:
    """Preserve and analyse one incoming object. Never raises: failures come back as values.

    ``info`` is the object's description when the caller already asked the store for it.
    """
    _injected_fault(key)
    store = store or open_store(settings)
    try:
        info = info or store.head(key)
    except (StoreError, OSError) as exc:
        return Analysis(key, None, error=_reason(exc), error_stage="read")
    try:
        with tempfile.TemporaryDirectory(prefix="evidence-") as tmp:
            return _analyse(settings, store, info, Path(tmp))
    except (StoreError, OSError) as exc:
        return Analysis(key, info, error=_reason(exc), error_stage="read")
    except Exception as exc:  # a bug in one file's analysis must not stop the batch
        log.exception("analysis of %s failed", key)
        return Analysis(
            key, info, error=f"internal error: {type(exc).__name__}", error_stage="analyse"
        )


def _analyse(settings: Settings, store: ObjectStore, info: ObjectInfo, tmp: Path) -> Analysis:
    claims, claim_problem = read_claims(store, info)
    working = tmp / "original"
    with store.open(info.key, info.version_id) as source, working.open("wb") as sink:
        digests = hash_stream(source, sink)
    if digests.size != info.size:
        msg = f"read {digests.size} bytes but the store announced {info.size}"
        raise PreservationError(msg)
    version, vault_check = preserve(store, working, digests)
    analysis = Analysis(info.key, info, claims, digests, version, vault_check)
    if vault_check["outcome"] != "success":
        return replace(
            analysis, error="vault copy does not match the submission", error_stage="preserve"
        )
    return _analyse_content(settings, store, analysis, working, claim_problem)


def _analyse_content(
    settings: Settings,
    store: ObjectStore,
    analysis: Analysis,
    working: Path,
    claim_problem: Finding | None,
) -> Analysis:
    from verification.checks import run_checks
    from verification.media import analyse as analyse_media

    assert analysis.info is not None and analysis.digests is not None
    with working.open("rb") as handle:
        fmt = describe(handle.read(HEAD_SIZE), PurePosixPath(analysis.key).name)
    media = analyse_media(working, fmt.format, settings)
    derivatives = store_derivatives(store, analysis.digests.sha256, media.derivatives)
    thumbnail = next((d.data for d in media.derivatives if d.name == "thumbnail.jpg"), None)
    claims = analysis.claims or Claims(case_of(analysis.key))
    checks = run_checks(
        media.media,
        media.metadata,
        media.perceptual,
        claims,
        analysis.info.last_modified,
        settings,
        extension_mismatch=fmt.extension_mismatch,
        mean_brightness=mean_brightness(thumbnail),
        c2pa=media.metadata.get("c2pa"),
    )
    item_findings = list(media.findings)
    claim_findings = list(checks.findings) + ([claim_problem] if claim_problem else [])
    return replace(
        analysis,
        format=fmt.to_dict(),
        media=media.media,
        metadata=media.metadata,
        raw=media.raw,
        perceptual=media.perceptual,
        geolocation=checks.geolocation,
        item_findings=tuple(item_findings),
        claim_findings=tuple(claim_findings),
        derivatives=tuple(derivatives),
        extractors=media.extractors,
    )


def read_claims(store: ObjectStore, info: ObjectInfo) -> tuple[Claims, Finding | None]:
    """Claims from the object's metadata, overlaid by a ``.claims.json`` sidecar when present.

    Unparsable claims do not stop the pipeline: they become a ``claims-invalid`` finding.
    """
    meta = dict(info.metadata)
    try:
        meta.update(_sidecar(store, info.key))
        return claims_from_metadata(meta, case_of(info.key)), None
    except (InvalidClaim, ValueError) as exc:
        finding = Finding("claims-invalid", "warning", f"submitter claims could not be read: {exc}")
        return Claims(meta.get("case-id") or case_of(info.key), meta.get("submitter")), finding


def _sidecar(store: ObjectStore, key: str) -> dict[str, str]:
    sidecar = key + SIDECAR_SUFFIX
    try:
        if not store.exists(sidecar):
            return {}
        with store.open(sidecar) as handle:
            raw = handle.read(MAX_SIDECAR_BYTES + 1)
    except InvalidKey:
        return {}
    if len(raw) > MAX_SIDECAR_BYTES:
        msg = "claims sidecar is larger than 64 KiB"
        raise ValueError(msg)
    data = json.loads(raw)
    if not isinstance(data, dict):
        msg = "claims sidecar is not a JSON object"
        raise ValueError(msg)
    return {str(k).replace("_", "-"): str(v) for k, v in data.items() if v is not None}


def preserve(
    store: ObjectStore, working: Path, digests: Digests
) -> tuple[str | None, dict[str, Any]]:
    """Write the original to the vault once, then re-read the vault copy and compare digests.

    An existing vault object is never overwritten: it is verified instead. Returns the vault
    version id and the fixity outcome (expected and found digests).
    """
    key = vault_key(digests.sha256)
    if not store.exists(key):
        try:
            with working.open("rb") as handle:
                store.put(key, handle, sha256=digests.sha256, if_absent=True)
        except ObjectExists:
            log.info("vault copy of %s appeared concurrently; verifying it", digests.sha256[:12])
    info = store.head(key)
    with store.open(key, info.version_id) as handle:
        found, size = sha256_stream(handle)
    outcome = "success" if (found, size) == (digests.sha256, digests.size) else "failure"
    check = {
        "outcome": outcome,
        "vault_key": key,
        "expected": f"sha256:{digests.sha256}",
        "found": f"sha256:{found}",
        "expected_size": digests.size,
        "found_size": size,
    }
    return info.version_id, check


def store_derivatives(
    store: ObjectStore, sha256: str, derivatives: Iterable[Any]
) -> list[dict[str, Any]]:
    """Write derivatives next to (never over) the original; existing ones are kept."""
    import hashlib
    import io

    written = []
    for derivative in derivatives:
        key = derivative_key(sha256, derivative.name)
        digest = hashlib.sha256(derivative.data).hexdigest()
        with contextlib.suppress(ObjectExists):
            store.put(key, io.BytesIO(derivative.data), sha256=digest, if_absent=True)
        written.append(
            {
                "name": derivative.name,
                "key": key,
                "sha256": digest,
                "mime": derivative.mime,
                "tool": derivative.tool,
            }
        )
    return written


def mean_brightness(jpeg: bytes | None) -> float | None:
    """Mean luma (0-255) of a thumbnail, for the day/night plausibility check."""
    if not jpeg:
        return None
    import io

    from PIL import Image, ImageStat

    with Image.open(io.BytesIO(jpeg)) as image:
        return float(ImageStat.Stat(image.convert("L")).mean[0])


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:500]


# ---------------------------------------------------------------------------------------------
# Recording half


def record_analysis(ctx: Context, analysis: Analysis) -> Outcome:
    """Write what a worker found into the ledger and the database; idempotent."""
    if analysis.info is not None:
        existing = _processed(ctx, analysis.info)
        if existing is not None:
            return existing
    if analysis.info is None or analysis.digests is None:
        return _record_failed_read(ctx, analysis)
    sha = analysis.digests.sha256
    submission_id = _upsert_item_and_submission(ctx, analysis)
    _record_preservation(ctx, analysis, submission_id)
    if analysis.error:
        return _record_quarantine(ctx, analysis, submission_id)
    _record_analysis_events(ctx, analysis)
    duplicates = _dedupe(ctx, analysis)
    status = _write_record(ctx, analysis, submission_id, duplicates)
    with Session(ctx.engine) as session, session.begin():
        sub = session.get(Submission, submission_id)
        assert sub is not None
        sub.state, sub.processed_at, sub.error = "processed", utcnow(), None
        _supersede_failures(session, analysis.key, submission_id)
    return _outcome(ctx, analysis.key, sha, status)


def _supersede_failures(session: Session, key: str, submission_id: int) -> None:
    """Earlier failed attempts at the same key stay on record, marked as retried."""
    earlier = session.scalars(
        select(Submission).where(
            Submission.store_key == key,
            Submission.state == "failed",
            Submission.id != submission_id,
        )
    )
    for failed in earlier:
        failed.state = "retried"


def _processed(ctx: Context, info: ObjectInfo) -> Outcome | None:
    with Session(ctx.engine) as session:
        sub = session.scalar(
            select(Submission).where(
                Submission.store_key == info.key,
                Submission.etag == info.etag,
                Submission.state == "processed",
            )
        )
        if sub is None or sub.item_sha256 is None:
            return None
        item = session.get(Item, sub.item_sha256)
        assert item is not None
        sha, status = item.sha256, item.status
    # A second session inside the first would wait for SQLite's write lock held by the first.
    return _outcome(ctx, info.key, sha, status)


def _outcome(ctx: Context, key: str, sha: str, status: str) -> Outcome:
    with Session(ctx.engine) as session:
        item = session.get(Item, sha)
        codes = session.scalars(
            select(ItemFinding.code).where(
                ItemFinding.item_sha256 == sha, ItemFinding.severity != "info"
            )
        )
        assert item is not None
        return Outcome(key, sha, status, tuple(sorted(codes)), format=item.format, size=item.size)


def _record_failed_read(ctx: Context, analysis: Analysis) -> Outcome:
    """A submission whose bytes could not be read: kept as ``failed`` so the next run retries."""
    info = analysis.info
    etag = info.etag if info else "unreadable"
    with Session(ctx.engine) as session, session.begin():
        sub = session.scalar(
            select(Submission).where(Submission.store_key == analysis.key, Submission.etag == etag)
        )
        if sub is None:
            sub = Submission(
                store_key=analysis.key,
                etag=etag,
                version_id=info.version_id if info else None,
                case_id=case_of(analysis.key),
                claims={},
                received_at=info.last_modified if info else utcnow(),
            )
            session.add(sub)
        sub.state, sub.error = "failed", analysis.error
    log.warning("could not read %s: %s", analysis.key, analysis.error)
    return Outcome(analysis.key, None, "failed", error=analysis.error)


def _upsert_item_and_submission(ctx: Context, analysis: Analysis) -> int:
    info, digests, claims = analysis.info, analysis.digests, analysis.claims
    assert info is not None and digests is not None
    claims = claims or Claims(case_of(analysis.key))
    fmt = analysis.format or {
        "format": "unknown",
        "mime": "application/octet-stream",
        "kind": "unknown",
    }
    with Session(ctx.engine) as session, session.begin():
        if session.get(Item, digests.sha256) is None:
            session.add(
                Item(
                    sha256=digests.sha256,
                    size=digests.size,
                    sha1=digests.sha1,
                    md5=digests.md5,
                    format=fmt["format"],
                    mime=fmt["mime"],
                    kind=fmt["kind"],
                    vault_key=vault_key(digests.sha256),
                    vault_version=analysis.vault_version,
                    first_seen=info.last_modified,
                    case_id=claims.case_id,
                    submitter=claims.submitter,
                    status="pending",
                )
            )
            session.flush()
        sub = session.scalar(
            select(Submission).where(Submission.store_key == info.key, Submission.etag == info.etag)
        )
        if sub is None:
            sub = Submission(store_key=info.key, etag=info.etag)
            session.add(sub)
        sub.version_id = info.version_id
        sub.item_sha256 = digests.sha256
        sub.case_id = claims.case_id
        sub.submitter = claims.submitter
        sub.claims = claims.to_dict()
        sub.received_at = info.last_modified
        sub.state = "recording"
        sub.error = None
        session.flush()
        return sub.id


def _record_preservation(ctx: Context, analysis: Analysis, submission_id: int) -> None:
    info, digests = analysis.info, analysis.digests
    assert info is not None and digests is not None
    sha, agents = digests.sha256, ctx.agents
    claims = analysis.claims.to_dict() if analysis.claims else {}
    ctx.ledger.append(
        sha,
        "ingestion",
        "success",
        {
            "submission": submission_id,
            "source": f"{ctx.store.url}/{info.key}",
            "etag": info.etag,
            "version_id": info.version_id,
            "received_at": info.last_modified.astimezone(UTC).isoformat(),
            "claims": claims,
            "vault_key": vault_key(sha),
            "vault_version": analysis.vault_version,
        },
        step_key=f"ingestion:{info.key}:{info.etag}",
        agents=agents,
    )
    ctx.ledger.append(
        sha,
        "message digest calculation",
        "success",
        {**digests.labelled(), "size": digests.size},
        step_key="digest",
        agents=agents,
    )
    vault = dict(analysis.vault_check)
    outcome = vault.pop("outcome", "not-run")
    ctx.ledger.append(
        sha,
        "fixity check",
        outcome,
        {"stage": "preservation", **vault},
        step_key=f"preservation:{info.key}:{info.etag}",
        agents=agents,
    )


def _record_analysis_events(ctx: Context, analysis: Analysis) -> None:
    assert analysis.digests is not None
    sha, agents, version = analysis.digests.sha256, ctx.agents, pipeline_version()
    tools = [
        {"type": "software", "name": k, "version": v}
        for k, v in sorted(analysis.extractors.items())
    ]
    ctx.ledger.append(
        sha,
        "format identification",
        "success",
        dict(analysis.format),
        step_key="format",
        agents=agents,
    )
    unreadable = any(f.code == "unreadable" for f in analysis.item_findings)
    ctx.ledger.append(
        sha,
        "metadata extraction",
        "failure" if unreadable else "success",
        {
            "pipeline_version": version,
            "media": dict(analysis.media),
            "findings": [f.to_dict() for f in analysis.item_findings],
        },
        step_key=f"extraction:{version}",
        agents=[*agents, *tools],
    )
    for derivative in analysis.derivatives:
        ctx.ledger.append(
            sha,
            "creation",
            "success",
            {
                "derivative": derivative["key"],
                "sha256": derivative["sha256"],
                "mime": derivative["mime"],
            },
            step_key=f"derivative:{derivative['key']}:{derivative['sha256']}",
            agents=[*agents, {"type": "software", "name": derivative["tool"]}],
        )


def _record_quarantine(ctx: Context, analysis: Analysis, submission_id: int) -> Outcome:
    assert analysis.digests is not None and analysis.info is not None
    sha = analysis.digests.sha256
    reason = analysis.error or "unreadable"
    ctx.ledger.append(
        sha,
        "quarantine",
        "warning",
        {"reason": reason, "stage": analysis.error_stage, "submission": submission_id},
        step_key=f"quarantine:{analysis.info.key}:{analysis.info.etag}",
        agents=ctx.agents,
    )
    finding = Finding("unreadable", "warning", reason, {"stage": analysis.error_stage})
    failed = replace(analysis, item_findings=(finding,), claim_findings=())
    status = _write_record(ctx, failed, submission_id, [])
    with Session(ctx.engine) as session, session.begin():
        sub = session.get(Submission, submission_id)
        assert sub is not None
        sub.state, sub.processed_at, sub.error = "processed", utcnow(), reason
        _supersede_failures(session, analysis.key, submission_id)
    return _outcome(ctx, analysis.key, sha, status)


def _dedupe(ctx: Context, analysis: Analysis) -> list[dict[str, Any]]:
    """Store the item's PDQ hashes, then link it to every near or exact duplicate."""
    from verification.duplicates import find_duplicates

    assert analysis.digests is not None
    sha = analysis.digests.sha256
    _store_pdq(ctx, sha, analysis.perceptual)
    index = load_index(ctx, exclude=sha)
    matches = find_duplicates(
        analysis.perceptual,
        index,
        threshold=ctx.settings.pdq_threshold,
        exclude=sha,
        image=_thumbnail(ctx.store, sha),
        load_image=lambda other: _thumbnail(ctx.store, other),
    )
    now = utcnow()
    with Session(ctx.engine) as session, session.begin():
        for match in matches:
            for a, b in ((sha, match["item"]), (match["item"], sha)):
                link = session.get(DuplicateLink, (a, b, match["kind"]))
                if link is None:
                    session.add(
                        DuplicateLink(
                            item_sha256=a,
                            other_sha256=b,
                            kind=match["kind"],
                            distance=match["distance"],
                            created_at=now,
                        )
                    )
    return matches


def _thumbnail(store: ObjectStore, sha: str) -> bytes | None:
    """An item's thumbnail derivative (for the crop check), or None."""
    try:
        with store.open(derivative_key(sha, "thumbnail.jpg")) as handle:
            return bytes(handle.read(4 * 1024 * 1024))
    except (StoreError, OSError):
        return None


def _store_pdq(ctx: Context, sha: str, perceptual: Mapping[str, Any]) -> None:
    rows: list[tuple[int, str, int | None]] = []
    if perceptual.get("pdq"):
        rows.append((0, perceptual["pdq"], perceptual.get("pdq_quality")))
    for i, frame in enumerate(perceptual.get("keyframes") or []):
        if frame.get("pdq"):
            rows.append((i + 1, frame["pdq"], frame.get("quality")))
    with Session(ctx.engine) as session, session.begin():
        session.execute(delete(PerceptualHash).where(PerceptualHash.item_sha256 == sha))
        for frame, pdq, quality in rows:
            session.add(
                PerceptualHash(
                    item_sha256=sha, frame=frame, pdq=bytes.fromhex(pdq), quality=quality
                )
            )


def load_index(ctx: Context, exclude: str | None = None) -> Any:
    """Every stored PDQ hash of the collection, as a vectorised index."""
    from verification.duplicates import PDQIndex

    index = PDQIndex()
    with Session(ctx.engine) as session:
        query = select(PerceptualHash.item_sha256, PerceptualHash.pdq)
        if exclude:
            query = query.where(PerceptualHash.item_sha256 != exclude)
        for item, pdq in session.execute(query):
            index.add(item, pdq)
    return index


def _write_record(
    ctx: Context, analysis: Analysis, submission_id: int, duplicates: list[dict[str, Any]]
) -> str:
    """Create or update the item's record for this pipeline version; returns the status."""
    assert analysis.digests is not None and analysis.info is not None
    sha, version = analysis.digests.sha256, pipeline_version()
    with Session(ctx.engine) as session, session.begin():
        record = session.scalar(
            select(Record).where(Record.item_sha256 == sha, Record.pipeline_version == version)
        )
        data = dict(record.data) if record else _new_record(analysis, version)
        data["submissions"] = _merge_submission(
            data.get("submissions", []), analysis, submission_id
        )
        data["duplicates"] = _linked_duplicates(session, sha, duplicates)
        findings = _all_findings(data)
        status, reasons = derive_status(findings)
        data.update(findings=[f.to_dict() for f in findings], status=status, status_reasons=reasons)
        if record is None:
            session.add(
                Record(
                    item_sha256=sha,
                    pipeline_version=version,
                    created_at=utcnow(),
                    status=status,
                    data=data,
                )
            )
        else:
            record.data, record.status = data, status
        _update_item_summary(session, sha, data, findings, version)
    _record_validation(ctx, analysis, submission_id, status, reasons, findings)
    return status


def _new_record(analysis: Analysis, version: str) -> dict[str, Any]:
    assert analysis.digests is not None
    return {
        "item": analysis.digests.sha256,
        "pipeline_version": version,
        "hashes": analysis.digests.to_dict(),
        "format": dict(analysis.format),
        "media": dict(analysis.media),
        "metadata": dict(analysis.metadata),
        "raw": dict(analysis.raw),
        "perceptual": dict(analysis.perceptual),
        "derivatives": [dict(d) for d in analysis.derivatives],
        "item_findings": [f.to_dict() for f in analysis.item_findings],
        "extractors": dict(analysis.extractors),
    }


def _merge_submission(
    existing: list[dict[str, Any]], analysis: Analysis, submission_id: int
) -> list[dict[str, Any]]:
    assert analysis.info is not None
    entry = {
        "id": submission_id,
        "key": analysis.key,
        "etag": analysis.info.etag,
        "received_at": analysis.info.last_modified.astimezone(UTC).isoformat(),
        "claims": analysis.claims.to_dict() if analysis.claims else {},
        "geolocation": dict(analysis.geolocation),
        "findings": [f.to_dict() for f in analysis.claim_findings],
    }
    kept = [s for s in existing if s.get("id") != submission_id]
    return sorted([*kept, entry], key=lambda s: (s["received_at"], s["id"]))


def _linked_duplicates(
    session: Session, sha: str, fresh: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    links = session.execute(
        select(DuplicateLink, Item.first_seen, Item.case_id)
        .join(Item, Item.sha256 == DuplicateLink.other_sha256)
        .where(DuplicateLink.item_sha256 == sha)
    ).all()
    out = [
        {
            "item": link.other_sha256,
            "kind": link.kind,
            "distance": link.distance,
            "first_seen": first_seen.astimezone(UTC).isoformat()
            if first_seen.tzinfo
            else first_seen.replace(tzinfo=UTC).isoformat(),
            "case_id": case_id,
        }
        for link, first_seen, case_id in links
    ]
    return sorted(out, key=lambda d: (d["first_seen"], d["distance"]))


def _all_findings(data: Mapping[str, Any]) -> list[Finding]:
    findings = [Finding.from_dict(f) for f in data.get("item_findings", [])]
    submissions = data.get("submissions", [])
    for sub in submissions:
        findings.extend(
            Finding.from_dict({**f, "evidence": {**f.get("evidence", {}), "submission": sub["id"]}})
            for f in sub.get("findings", [])
        )
    if len(submissions) > 1:
        first = submissions[0]
        findings.append(
            Finding(
                "exact-duplicate",
                "warning",
                f"the same bytes were submitted {len(submissions)} times; first as {first['key']}",
                {
                    "submissions": [s["id"] for s in submissions],
                    "keys": [s["key"] for s in submissions],
                },
            )
        )
    findings.extend(_duplicate_findings(data.get("duplicates", []), data))
    return findings


def _duplicate_findings(duplicates: list[dict[str, Any]], data: Mapping[str, Any]) -> list[Finding]:
    if not duplicates:
        return []
    earliest = duplicates[0]
    mine = data.get("submissions", [{}])[0].get("received_at", "")
    older = earliest["first_seen"] < mine
    message = (
        f"near-duplicate of {len(duplicates)} item(s); earliest copy {earliest['item'][:12]} "
        f"seen {earliest['first_seen'][:10]} in case {earliest['case_id']}"
    )
    return [
        Finding(
            "near-duplicate",
            "warning",
            message + (" (older than this submission)" if older else ""),
            {
                "earliest": earliest["item"],
                "matches": [d["item"] for d in duplicates],
                "older": older,
            },
        )
    ]


def _update_item_summary(
    session: Session, sha: str, data: Mapping[str, Any], findings: list[Finding], version: str
) -> None:
    item = session.get(Item, sha)
    assert item is not None
    geo = (data.get("submissions") or [{}])[0].get("geolocation", {})
    place = geo.get("place") or {}
    item.status = data["status"]
    item.capture_time = geo.get("capture_time") or (data.get("metadata") or {}).get(
        "datetime_original"
    )
    item.place = ", ".join(p for p in (place.get("name"), place.get("country_code")) if p) or None
    item.record_version = version
    session.execute(delete(ItemFinding).where(ItemFinding.item_sha256 == sha))
    severities: dict[str, str] = {}
    for f in findings:
        severities.setdefault(f.code, f.severity)
    for code, severity in severities.items():
        session.add(ItemFinding(item_sha256=sha, code=code, severity=severity))


def _record_validation(
    ctx: Context,
    analysis: Analysis,
    submission_id: int,
    status: str,
    reasons: list[str],
    findings: list[Finding],
) -> None:
    assert analysis.digests is not None and analysis.info is not None
    outcome: Literal["success", "warning"] = "success" if status == "consistent" else "warning"
    ctx.ledger.append(
        analysis.digests.sha256,
        "validation",
        outcome,
        {
            "pipeline_version": pipeline_version(),
            "submission": submission_id,
            "status": status,
            "status_reasons": reasons,
            "findings": sorted({f.code for f in findings}),
        },
        step_key=f"validation:{pipeline_version()}:{analysis.info.key}:{analysis.info.etag}",
        agents=ctx.agents,
    )


# ---------------------------------------------------------------------------------------------
# Entry points


def process_submission(ctx: Context, key: str) -> Outcome:
    """Run every step for one incoming object and return its outcome (idempotent)."""
    try:
        info = ctx.store.head(key)
    except (StoreError, OSError) as exc:
        return record_analysis(ctx, Analysis(key, None, error=_reason(exc), error_stage="read"))
    done = _processed(ctx, info)
    if done is not None:
        return done
    return record_analysis(ctx, analyse_submission(ctx.settings, key, ctx.store, info))


def process_batch(
    ctx: Context,
    keys: Sequence[str],
    *,
    workers: int | None = None,
    progress: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Process many submissions; one bad file never stops the batch.

    Analysis runs in ``workers`` processes (default: settings.workers); recording runs here, in
    order of completion. A worker that dies takes only its own file down: that file is recorded
    as failed (and retried by the next run) and the pool is rebuilt for the rest.
    """
    workers = max(1, min(workers or ctx.settings.workers, len(keys) or 1))
    order = {key: i for i, key in enumerate(keys)}
    outcomes: list[Outcome] = []
    for analysis in _analyses(ctx, keys, workers):
        try:
            outcome = record_analysis(ctx, analysis)
        except Exception as exc:  # the ledger write of one file failed: report it, go on
            log.exception("recording %s failed", analysis.key)
            outcome = Outcome(analysis.key, None, "failed", error=_reason(exc))
        outcomes.append(outcome)
        if progress:
            progress(outcome)
    return sorted(outcomes, key=lambda o: order.get(o.key, len(order)))


def _analyses(ctx: Context, keys: Sequence[str], workers: int) -> Iterator[Analysis]:
    if workers == 1:
        for key in keys:
            yield _analyse_unless_done(ctx, key)
        return
    survivors: list[str] = []
    yield from _pool_round(ctx, list(keys), workers, survivors)
    # A worker died (native crash, OOM kill). Its pool is gone and we cannot tell which file
    # killed it, so every unfinished file runs again alone: only the culprit fails.
    for key in survivors:
        alone: list[str] = []
        yield from _pool_round(ctx, [key], 1, alone)
        if alone:
            yield Analysis(key, None, error="analysis worker crashed", error_stage="analyse")


def _pool_round(
    ctx: Context, keys: list[str], workers: int, unfinished: list[str]
) -> Iterator[Analysis]:
    """Analyse ``keys`` in a fresh pool; on a crash, put the keys without a result in ``unfinished``."""
    done: set[str] = set()
    with ProcessPoolExecutor(workers, mp_context=get_context("forkserver")) as pool:
        futures = {
            pool.submit(analyse_submission, ctx.settings, key, None, info): key
            for key, info in ((key, _head_unless_done(ctx, key)) for key in keys)
            if info is not DONE
        }
        try:
            for future in as_completed(futures):
                result = future.result()
                done.add(futures[future])
                yield result
        except BrokenProcessPool:
            log.warning(
                "an analysis worker died; re-running %s file(s) one by one",
                len(futures) - len(done),
            )
            unfinished.extend(k for k in futures.values() if k not in done)


DONE = object()


def _head_unless_done(ctx: Context, key: str) -> Any:
    """The object's info for a worker; ``DONE`` when already processed; None when HEAD failed
    (the worker then asks again and records the failure)."""
    try:
        info = ctx.store.head(key)
    except (StoreError, OSError):
        return None
    return DONE if _processed(ctx, info) is not None else info


def _analyse_unless_done(ctx: Context, key: str) -> Analysis:
    try:
        info = ctx.store.head(key)
    except (StoreError, OSError) as exc:
        return Analysis(key, None, error=_reason(exc), error_stage="read")
    if _processed(ctx, info) is not None:
        return Analysis(key, info)  # record_analysis returns the stored outcome
    return analyse_submission(ctx.settings, key, ctx.store, info)


def ingest(
    ctx: Context,
    case: str | None = None,
    *,
    workers: int | None = None,
    progress: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Process everything new under ``incoming/`` (optionally one case)."""
    keys = [info.key for info in list_new(ctx, case)]
    return process_batch(ctx, keys, workers=workers, progress=progress)


# ---------------------------------------------------------------------------------------------
# Reprocessing with newer extractors (nightly)


def stale_items(ctx: Context) -> list[str]:
    """Items whose newest record came from an older pipeline version (or that have none)."""
    version = pipeline_version()
    with Session(ctx.engine) as session:
        query = select(Item.sha256).where(
            (Item.record_version != version) | (Item.record_version.is_(None))
        )
        return list(session.scalars(query.order_by(Item.sha256)))


def reprocess_item(ctx: Context, sha: str) -> Outcome:
    """Analyse the preserved original again with the current extractors.

    Adds a record for the current pipeline version and its custody events; older records and
    events stay as they were. Each submission's claims are checked again.
    """
    with Session(ctx.engine) as session:
        subs = list(
            session.scalars(
                select(Submission)
                .where(Submission.item_sha256 == sha, Submission.state == "processed")
                .order_by(Submission.id)
            )
        )
    if not subs:
        return Outcome(sha, sha, "failed", error="item has no processed submission to reprocess")
    status = "failed"
    with tempfile.TemporaryDirectory(prefix="evidence-") as tmp:
        working = Path(tmp) / "original"
        with ctx.store.open(vault_key(sha)) as source, working.open("wb") as sink:
            digests = hash_stream(source, sink)
        if digests.sha256 != sha:
            msg = f"vault copy of {sha[:12]} no longer matches its SHA-256; run the fixity check"
            raise PreservationError(msg)
        for sub in subs:
            info = ObjectInfo(
                key=sub.store_key,
                size=digests.size,
                etag=sub.etag,
                last_modified=sub.received_at.replace(tzinfo=sub.received_at.tzinfo or UTC),
                version_id=sub.version_id,
                metadata={},
            )
            claims = (
                Claims(**{**sub.claims, "time": _claim_time(sub.claims)}) if sub.claims else None
            )
            base = Analysis(sub.store_key, info, claims, digests, None, {"outcome": "success"})
            analysis = _analyse_content(ctx.settings, ctx.store, base, working, None)
            _record_analysis_events(ctx, analysis)
            duplicates = _dedupe(ctx, analysis)
            status = _write_record(ctx, analysis, sub.id, duplicates)
    return _outcome(ctx, subs[0].store_key, sha, status)


def _claim_time(claims: Mapping[str, Any]) -> Any:
    from verification.claims import parse_time

    value = claims.get("time")
    return parse_time(value) if value else None


def recorded_outcome(ctx: Context, key: str) -> Outcome:
    """What the ledger says about a submission key, without processing anything."""
    try:
        done = _processed(ctx, ctx.store.head(key))
    except (StoreError, OSError) as exc:
        return Outcome(key, None, "failed", error=_reason(exc))
    if done is not None:
        return done
    with Session(ctx.engine) as session:
        failed = session.scalar(
            select(Submission).where(Submission.store_key == key).order_by(Submission.id.desc())
        )
        error = failed.error if failed is not None else None
    return Outcome(key, None, "failed" if error else "pending", error=error)
