"""What an export holds: the case's items with their records, chains and checkpoint proofs, and
the entry point that writes a case in one of the three formats.

The BagIt package (RFC 8493) is what is handed over: its payload is the preserved originals,
byte for byte, and its tag files carry everything needed to check them without our database
(records, custody chains, public keys, a checkpoint with Merkle inclusion proofs and its
RFC 3161 token). :mod:`verification.exports.verify` checks a package with nothing else.

Custody: a package's ``export`` events are recorded *before* its chains are written, so the
package contains its own export event (with the payload's Payload-Oxum, which does not depend on
the tag files). An HTML or JSON report cannot contain its own SHA-256, so its export event is
recorded *after* the file is written and carries the file's SHA-256; the file itself shows the
chain up to that point. Redacted working copies get a ``redaction`` event each, linking the
original's and the copy's SHA-256.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import rfc8785

from verification import __version__
from verification.exports.layout import (
    inclusion_proof,
)

log = logging.getLogger(__name__)

ExportFormat = Literal["bagit", "html", "json"]
FORMATS: tuple[str, ...] = ("bagit", "html", "json")
CHUNK = 1024 * 1024
MAX_THUMBNAIL = 2 * 1024 * 1024

# Preferred file extension per identified format (the original's name is never used).
EXTENSION = {
    "jpeg": ".jpg",
    "png": ".png",
    "tiff": ".tif",
    "heif": ".heic",
    "webp": ".webp",
    "gif": ".gif",
    "mp4": ".mp4",
    "mov": ".mov",
    "avi": ".avi",
    "mkv": ".mkv",
    "webm": ".webm",
}


class ExportError(Exception):
    """An export that cannot be made as asked (unknown case, corrupted original, bad target)."""


@dataclass(frozen=True, slots=True)
class ItemContent:
    """One item as exported: its report, full chain, thumbnail and the other cases it is in."""

    sha256: str
    report: Mapping[str, Any]
    events: Sequence[Any]
    thumbnail: bytes | None
    other_cases: tuple[str, ...]
    # Seqs of custody events whose detail is left out (other cases' submissions, when asked).
    withheld: frozenset[int] = frozenset()

    @property
    def extension(self) -> str:
        """File extension of the original, from its identified format."""
        return EXTENSION.get(str(self.report["item"]["format"]), ".bin")


@dataclass(frozen=True, slots=True)
class ExportMeta:
    """Who exported which case when, under which id."""

    id: str
    case: str
    format: str
    analyst: str
    created_at: str
    organization: str | None = None
    destination: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form, with the software that made the export."""
        return {
            "id": self.id,
            "case": self.case,
            "format": self.format,
            "analyst": self.analyst,
            "created_at": self.created_at,
            "organization": self.organization,
            "software": {"name": "evidence-verification", "version": __version__},
        }


# ---------------------------------------------------------------------------------------------
# Entry point


def case_items(engine: Any, case: str) -> list[str]:
    """Items of ``case``: first submitted to it, or submitted to it again later (oldest first)."""
    from sqlalchemy import or_, select
    from sqlalchemy.orm import Session

    from verification.ledger.models import Item, Submission

    in_case = select(Submission.item_sha256).where(Submission.case_id == case)
    with Session(engine) as session:
        query = (
            select(Item.sha256)
            .where(or_(Item.case_id == case, Item.sha256.in_(in_case)))
            .order_by(Item.first_seen, Item.sha256)
        )
        return list(session.scalars(query))


def collect(ctx: Any, case: str, *, omit_other_cases: bool = False) -> list[ItemContent]:
    """Everything to export about ``case``'s items (raises :class:`ExportError` when empty).

    ``omit_other_cases`` leaves out what other cases' submissions say (see
    :mod:`verification.exports.scope`).
    """
    shas = case_items(ctx.engine, case)
    if not shas:
        msg = f"case {case} has no items"
        raise ExportError(msg)
    return [_item_content(ctx, case, sha, omit_other_cases) for sha in shas]


def _item_content(ctx: Any, case: str, sha: str, omit_other_cases: bool = False) -> ItemContent:
    from verification.exports.scope import withheld_events, withhold_other_cases
    from verification.pipeline.records import item_report

    report = item_report(ctx, sha)
    events = ctx.ledger.events(sha)
    cases = {report["item"]["case_id"], *(s["case_id"] for s in report["submissions"])}
    if not omit_other_cases:
        return ItemContent(
            sha, report, events, _thumbnail(ctx.store, sha), tuple(sorted(cases - {case}))
        )
    report = withhold_other_cases(report, case)
    kept = [s["id"] for s in report["submissions"]]
    return ItemContent(
        sha, report, events, _thumbnail(ctx.store, sha), (), withheld_events(events, kept)
    )


def _thumbnail(store: Any, sha: str) -> bytes | None:
    from verification.pipeline import derivative_key
    from verification.storage import StoreError

    try:
        with store.open(derivative_key(sha, "thumbnail.jpg")) as handle:
            data = bytes(handle.read(MAX_THUMBNAIL))
    except (StoreError, OSError):
        return None
    return data if data.startswith(b"\xff\xd8") else None


def export_agent(analyst: str) -> dict[str, str]:
    return {"type": "person", "name": analyst}


# ---------------------------------------------------------------------------------------------
# Shared content: per-item entries, keys, checkpoint


def item_entry(content: ItemContent) -> dict[str, Any]:
    """The item's verification record and summary as exported (custody events separately)."""
    from verification.ledger.review_events import decisions

    report = content.report
    return {
        "sha256": content.sha256,
        "item": report["item"],
        "record": report["record"],
        "record_versions": report["record_versions"],
        "submissions": report["submissions"],
        "duplicate_links": report["duplicate_links"],
        "other_cases": list(content.other_cases),
        "decisions": decisions(content.events),
        "custody_verified": report["custody"]["verified"],
        "custody_problem": report["custody"]["problem"],
    }


def checkpoint_entry(ctx: Any, shas: Sequence[str]) -> dict[str, Any]:
    """The latest checkpoint (written now if there is none) with inclusion proofs for ``shas``.

    Only the package's items get a proof: the other heads of the installation stay private.
    """
    cp = ctx.ledger.latest_checkpoint()
    if cp is None:
        from verification.pipeline.fixity import write_checkpoint

        log.info("no checkpoint yet: writing (and anchoring) one for the export")
        cp = write_checkpoint(ctx)
    heads = dict(cp.heads)
    return {
        "id": cp.id,
        "created_at": cp.created_at,
        "root": cp.root,
        "tree_size": len(heads),
        "key_id": cp.key_id,
        "signature": cp.signature,
        "timestamp": {
            "status": cp.tsa_status,
            "tsa_url": cp.tsa_url,
            "token": base64.b64encode(cp.tsa_token).decode() if cp.tsa_token else None,
        },
        "items": {sha: inclusion_proof(heads, sha) for sha in shas if sha in heads},
    }


def public_keys(ctx: Any) -> dict[str, str]:
    """Every public key of the installation, by key id."""
    return dict(ctx.ledger.public_keys())


def chain_json(sha: str, events: Sequence[Any]) -> bytes:
    """An item's chain as RFC 8785 canonical JSON (what the event hashes are computed over)."""
    return bytes(rfc8785.dumps({"item": sha, "events": [e.to_dict() for e in events]}))


# ---------------------------------------------------------------------------------------------


def publish_export(store: Any, path: Path, prefix: str) -> list[str]:
    """Upload an export (a package directory or a report file) under ``prefix``; return the keys.

    Keys are built from the export's own relative paths (never from outside input) and checked
    by the store; each upload carries its SHA-256 so the store refuses a corrupted transfer.
    """
    from verification.storage import validate_key

    root = prefix.rstrip("/")
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        pairs = [(f, f"{root}/{path.name}/{f.relative_to(path).as_posix()}") for f in files]
    else:
        pairs = [(path, f"{root}/{path.name}")]
    keys = []
    for file, name in pairs:
        key = validate_key(name)
        digest = _file_sha256(file)
        with file.open("rb") as handle:
            store.put(key, handle, sha256=digest)
        keys.append(key)
    log.info("published export %s: %s object(s) under %s", path.name, len(keys), prefix)
    return keys


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def record_exports(
    ctx: Any,
    meta: ExportMeta,
    contents: Sequence[ItemContent],
    detail: Mapping[str, Any],
    records: Mapping[str, str] | None = None,
) -> None:
    """One ``export`` event per item; ``records`` puts each exported record's canonical hash
    (``record_sha256``) into the item's signed chain."""
    for content in contents:
        extra = {"record_sha256": records[content.sha256]} if records else {}
        ctx.ledger.append(
            content.sha256,
            "export",
            "success",
            {"export": meta.id, "case": meta.case, "format": meta.format, **detail, **extra},
            step_key=f"export:{meta.id}",
            agents=[export_agent(meta.analyst)],
        )


def exported_records(contents: Sequence[ItemContent]) -> dict[str, dict[str, Any]]:
    """Each item's record entry exactly as written (a JSON round trip), by item."""
    import json

    return {c.sha256: json.loads(json.dumps(item_entry(c))) for c in contents}
