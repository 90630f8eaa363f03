"""Court-ready exports of a case: a BagIt package, a self-contained HTML report, or JSON.

The BagIt package (RFC 8493) is what is handed over: its payload is the preserved originals,
byte for byte, and its tag files carry everything needed to check them without our database
(records, custody chains, public keys, a checkpoint with Merkle inclusion proofs and its
RFC 3161 token). :mod:`verification.verify_export` checks a package with nothing else.

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
import io
import json
import logging
import shutil
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import rfc8785

from verification import __version__
from verification.geo import gps_text
from verification.text import printable
from verification.verify_export import (
    ALGORITHMS,
    CHECKPOINT,
    CHECKPOINT_MESSAGE,
    CUSTODY,
    FORMAT_VERSION,
    INDEX,
    KEYS,
    ORIGINALS,
    RECORDS,
    REDACTED,
    TIMESTAMP,
    TIMESTAMP_PENDING,
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


@dataclass(frozen=True, slots=True)
class Redacted:
    """A redacted working copy: its bytes, how it was made and what was removed."""

    data: bytes
    method: str
    removed: tuple[str, ...] = field(default_factory=tuple)


class RedactionUnsupported(Exception):
    """No redaction is implemented for this format (the item is exported unredacted only)."""


class RedactionError(Exception):
    """The file could not be redacted safely (structure unreadable, metadata left behind)."""


# ---------------------------------------------------------------------------------------------
# Entry point


def export_case(
    ctx: Any,
    case: str,
    fmt: str,
    out_dir: Path,
    analyst: str,
    *,
    redact: bool = False,
    organization: str | None = None,
    destination: str | None = None,
) -> Path:
    """Export ``case`` as ``fmt`` into a new file or directory under ``out_dir``; return its path.

    Every included item gets an ``export`` custody event (see the module docstring for when)
    naming ``destination`` (default: the written path). ``redact`` adds metadata-free working
    copies to a BagIt package (``data/redacted/``).
    """
    from verification.custody import timestamp
    from verification.intake import check_case_id

    if fmt not in FORMATS:
        msg = f"format must be one of {', '.join(FORMATS)}"
        raise ExportError(msg)
    if redact and fmt != "bagit":
        msg = "redacted copies are part of a BagIt package: use --format bagit"
        raise ExportError(msg)
    check_case_id(case)
    analyst = analyst.strip()
    if not analyst:
        msg = "the exporting analyst must be named"
        raise ExportError(msg)
    meta = ExportMeta(str(uuid.uuid4()), case, fmt, analyst, timestamp(), organization, destination)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{case}-{meta.created_at[:19].replace(':', '')}-{meta.id[:8]}"
    if fmt == "bagit":
        return _export_bag(ctx, meta, target, redact)
    return _export_file(ctx, meta, target.with_suffix(f".{fmt}"))


def case_items(engine: Any, case: str) -> list[str]:
    """Items of ``case``: first submitted to it, or submitted to it again later (oldest first)."""
    from sqlalchemy import or_, select
    from sqlalchemy.orm import Session

    from verification.db import Item, Submission

    in_case = select(Submission.item_sha256).where(Submission.case_id == case)
    with Session(engine) as session:
        query = (
            select(Item.sha256)
            .where(or_(Item.case_id == case, Item.sha256.in_(in_case)))
            .order_by(Item.first_seen, Item.sha256)
        )
        return list(session.scalars(query))


def collect(ctx: Any, case: str) -> list[ItemContent]:
    """Everything to export about ``case``'s items (raises :class:`ExportError` when empty)."""
    shas = case_items(ctx.engine, case)
    if not shas:
        msg = f"case {case} has no items"
        raise ExportError(msg)
    return [_item_content(ctx, case, sha) for sha in shas]


def _item_content(ctx: Any, case: str, sha: str) -> ItemContent:
    from verification.report import item_report

    report = item_report(ctx, sha)
    cases = {report["item"]["case_id"], *(s["case_id"] for s in report["submissions"])}
    return ItemContent(
        sha256=sha,
        report=report,
        events=ctx.ledger.events(sha),
        thumbnail=_thumbnail(ctx.store, sha),
        other_cases=tuple(sorted(cases - {case})),
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


def _agent(analyst: str) -> dict[str, str]:
    return {"type": "person", "name": analyst}


# ---------------------------------------------------------------------------------------------
# Shared content: per-item entries, keys, checkpoint


def item_entry(content: ItemContent) -> dict[str, Any]:
    """The item's verification record and summary as exported (custody events separately)."""
    from verification.review import decisions

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
        log.info("no checkpoint yet: writing one for the export")
        cp = ctx.ledger.write_checkpoint()
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
# BagIt


def _export_bag(ctx: Any, meta: ExportMeta, target: Path, redact: bool) -> Path:
    import bagit

    contents = collect(ctx, meta.case)
    if target.exists():
        msg = f"{target.name} already exists"
        raise ExportError(msg)
    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=target.parent))
    try:
        redacted = _write_payload(ctx, contents, staging, meta, redact)
        oxum = _oxum(staging)
        _record_exports(
            ctx,
            meta,
            contents,
            {"payload_oxum": oxum, "destination": meta.destination or str(target)},
        )
        fresh = [_refresh(ctx, c) for c in contents]
        bag = bagit.make_bag(str(staging), _bag_info(meta, fresh), checksums=list(ALGORITHMS))
        _write_tag_files(ctx, staging, meta, fresh, redacted)
        bag.save()  # regenerates bag-info.txt and the tag manifests over evidence/
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log.info(
        "exported case %s as BagIt: %s items, Payload-Oxum %s",
        printable(meta.case),
        len(fresh),
        oxum,
    )
    return target


def _write_payload(
    ctx: Any, contents: Sequence[ItemContent], staging: Path, meta: ExportMeta, redact: bool
) -> dict[str, list[str]]:
    """Originals to ``originals/`` (moved under ``data/`` by bagit), redacted copies beside them."""
    (staging / "originals").mkdir()
    redacted: dict[str, list[str]] = {}
    for content in contents:
        original = staging / "originals" / f"{content.sha256}{content.extension}"
        copy_original(ctx.store, content.report["item"], original)
        if redact:
            name = redact_item(ctx, content, original, staging / "redacted", meta.analyst)
            redacted[content.sha256] = [f"{REDACTED}/{name}"] if name else []
    return redacted


def copy_original(store: Any, item: Mapping[str, Any], dest: Path) -> None:
    """Stream the vault copy to ``dest``, byte for byte, refusing one that fails its SHA-256."""
    digest, size = hashlib.sha256(), 0
    with store.open(item["vault_key"], item.get("vault_version")) as src, dest.open("wb") as out:
        while chunk := src.read(CHUNK):
            digest.update(chunk)
            out.write(chunk)
            size += len(chunk)
    if digest.hexdigest() != item["sha256"]:
        msg = (
            f"fixity failure: the vault copy of item {item['sha256'][:12]} hashes to "
            f"{digest.hexdigest()[:16]}… ({size} bytes); not exporting a corrupted original"
        )
        raise ExportError(msg)


def _oxum(staging: Path) -> str:
    files = [p for p in staging.rglob("*") if p.is_file()]
    return f"{sum(p.stat().st_size for p in files)}.{len(files)}"


def _record_exports(
    ctx: Any, meta: ExportMeta, contents: Sequence[ItemContent], detail: Mapping[str, Any]
) -> None:
    for content in contents:
        ctx.ledger.append(
            content.sha256,
            "export",
            "success",
            {"export": meta.id, "case": meta.case, "format": meta.format, **detail},
            step_key=f"export:{meta.id}",
            agents=[_agent(meta.analyst)],
        )


def _refresh(ctx: Any, content: ItemContent) -> ItemContent:
    """The content again, with the chain as it is now (after the export's own events)."""
    from dataclasses import replace

    from verification.report import item_report

    return replace(
        content, report=item_report(ctx, content.sha256), events=ctx.ledger.events(content.sha256)
    )


def _bag_info(meta: ExportMeta, contents: Sequence[ItemContent]) -> dict[str, str]:
    info = {
        "Source-Organization": meta.organization or "not stated",
        "Contact-Name": meta.analyst,
        "External-Identifier": meta.id,
        "External-Description": (
            f"Evidence package of case {meta.case}: {len(contents)} preserved original(s) with "
            "verification records, custody chains, public keys and a signed checkpoint."
        ),
        "Bag-Group-Identifier": meta.case,
        "Bag-Software-Agent": f"evidence-verification {__version__} (bagit.py)",
        "Case-Id": meta.case,
        "Exported-By": meta.analyst,
        "Export-Time": meta.created_at,
        "Export-Id": meta.id,
        "Item-Count": str(len(contents)),
        "Export-Format": FORMAT_VERSION,
    }
    return {k: _one_line(v) for k, v in info.items()}


def _one_line(value: str) -> str:
    return " ".join(value.split())


def _write_tag_files(
    ctx: Any,
    bag: Path,
    meta: ExportMeta,
    contents: Sequence[ItemContent],
    redacted: Mapping[str, list[str]],
) -> None:
    keys = public_keys(ctx)
    checkpoint = checkpoint_entry(ctx, [c.sha256 for c in contents])
    for rel in (RECORDS, CUSTODY, KEYS, "evidence/checkpoint"):
        (bag / rel).mkdir(parents=True, exist_ok=True)
    for key_id, pem in keys.items():
        (bag / KEYS / f"{key_id}.pem").write_text(pem.strip() + "\n", encoding="utf-8")
    for content in contents:
        _write_json(bag / RECORDS / f"{content.sha256}.json", item_entry(content))
        (bag / CUSTODY / f"{content.sha256}.json").write_bytes(
            chain_json(content.sha256, content.events)
        )
    _write_checkpoint(bag, checkpoint)
    index = _index(meta, contents, redacted, keys, checkpoint)
    _write_json(bag / INDEX, index)


def _write_checkpoint(bag: Path, checkpoint: Mapping[str, Any]) -> None:
    from verification.custody import checkpoint_message

    token = checkpoint["timestamp"]["token"]
    entry = {k: v for k, v in checkpoint.items() if k != "timestamp"}
    entry["timestamp"] = {
        "status": checkpoint["timestamp"]["status"],
        "tsa_url": checkpoint["timestamp"]["tsa_url"],
        "file": TIMESTAMP if token else None,
        "signed_data": CHECKPOINT_MESSAGE,
    }
    _write_json(bag / CHECKPOINT, entry)
    message = checkpoint_message(
        checkpoint["created_at"], checkpoint["root"], checkpoint["tree_size"]
    )
    (bag / CHECKPOINT_MESSAGE).write_bytes(message)
    if token:
        (bag / TIMESTAMP).write_bytes(base64.b64decode(token))
    else:
        (bag / TIMESTAMP_PENDING).write_text(
            "pending: this checkpoint had not been time-stamped by an RFC 3161 authority "
            "when the package was made.\n",
            encoding="utf-8",
        )


def _index(
    meta: ExportMeta,
    contents: Sequence[ItemContent],
    redacted: Mapping[str, list[str]],
    keys: Mapping[str, str],
    checkpoint: Mapping[str, Any],
) -> dict[str, Any]:
    return {
        "format": FORMAT_VERSION,
        "export": meta.to_dict(),
        "public_keys": {k: f"{KEYS}/{k}.pem" for k in sorted(keys)},
        "checkpoint": {
            "file": CHECKPOINT,
            "created_at": checkpoint["created_at"],
            "root": checkpoint["root"],
            "timestamp": checkpoint["timestamp"]["status"],
        },
        "items": [
            {
                "sha256": c.sha256,
                "format": c.report["item"]["format"],
                "size": c.report["item"]["size"],
                "status": c.report["item"]["status"],
                "original": f"{ORIGINALS}/{c.sha256}{c.extension}",
                "redacted": redacted.get(c.sha256, []),
                "record": f"{RECORDS}/{c.sha256}.json",
                "custody": f"{CUSTODY}/{c.sha256}.json",
                "other_cases": list(c.other_cases),
            }
            for c in contents
        ],
    }


def _write_json(path: Path, data: Any) -> None:
    path.write_text(
        json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8"
    )


# ---------------------------------------------------------------------------------------------
# HTML and JSON reports


def _export_file(ctx: Any, meta: ExportMeta, target: Path) -> Path:
    contents = collect(ctx, meta.case)
    if target.exists():
        msg = f"{target.name} already exists"
        raise ExportError(msg)
    document = export_document(ctx, meta, contents)
    if meta.format == "json":
        data = (json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()
    else:
        data = render_html(document, contents).encode()
    partial = target.with_name(f".{target.name}.partial")
    partial.write_bytes(data)
    partial.rename(target)
    digest = hashlib.sha256(data).hexdigest()
    _record_exports(
        ctx, meta, contents, {"sha256": digest, "destination": meta.destination or str(target)}
    )
    log.info(
        "exported case %s as %s: %s items, sha256 %s",
        printable(meta.case),
        meta.format,
        len(contents),
        digest,
    )
    return target


def export_document(ctx: Any, meta: ExportMeta, contents: Sequence[ItemContent]) -> dict[str, Any]:
    """The machine-readable export (docs/export-schema.json): records, chains, keys, checkpoint."""
    keys = public_keys(ctx)
    return {
        "format": FORMAT_VERSION,
        "export": meta.to_dict(),
        "public_keys": [{"key_id": k, "pem": v} for k, v in sorted(keys.items())],
        "checkpoint": checkpoint_entry(ctx, [c.sha256 for c in contents]),
        "items": [{**item_entry(c), "custody": [e.to_dict() for e in c.events]} for c in contents],
    }


# ---------------------------------------------------------------------------------------------
# Redacted working copies

REDACTION_VERSION = "1"
# JPEG segments kept in a redacted copy (everything else that is not image data is dropped):
# APP0 JFIF/JFXX, APP2 ICC profile and APP14 Adobe change how pixels are shown, not who took them.
_JPEG_KEEP_APP = {0xE0: (b"JFIF\x00", b"JFXX\x00"), 0xE2: (b"ICC_PROFILE\x00",), 0xEE: (b"Adobe",)}
_PNG_DROP = {b"eXIf", b"tEXt", b"zTXt", b"iTXt", b"tIME"}
_WEBP_DROP = {b"EXIF", b"XMP "}
# EXIF tags that name a person or identify a device: Artist, Copyright, CameraOwnerName,
# BodySerialNumber, LensSerialNumber, CameraSerialNumber (DNG), ImageUniqueID.
_IDENTIFYING_TAGS = {0x013B, 0x8298, 0xA430, 0xA431, 0xA435, 0xC62F, 0xA420}
_GPS_IFD, _EXIF_IFD = 0x8825, 0x8769


def redact_item(
    ctx: Any, content: ItemContent, original: Path, out_dir: Path, analyst: str
) -> str | None:
    """Write a metadata-free working copy of ``original`` and record a ``redaction`` event.

    Returns the copy's file name, or None when the format has no redaction (a ``not-run`` event)
    or the file could not be redacted safely (a ``failure`` event); the original is never touched.
    """
    sha, fmt = content.sha256, str(content.report["item"]["format"])
    try:
        if fmt not in _REDACTORS:
            msg = f"no redaction for {fmt} files"
            raise RedactionUnsupported(msg)
        result = redact_bytes(original.read_bytes(), fmt)
    except RedactionUnsupported as exc:
        _record_redaction(ctx, sha, "not-run", {"reason": str(exc)}, "not-run", analyst)
        return None
    except RedactionError as exc:
        _record_redaction(ctx, sha, "failure", {"reason": str(exc)}, "failure", analyst)
        log.warning("item %s: redaction failed: %s", sha[:12], printable(str(exc)))
        return None
    out_dir.mkdir(exist_ok=True)
    name = f"{sha}-redacted{content.extension}"
    (out_dir / name).write_bytes(result.data)
    digest = hashlib.sha256(result.data).hexdigest()
    detail = {
        "original_sha256": sha,
        "derivative_sha256": digest,
        "derivative": f"{REDACTED}/{name}",
        "store_key": _store_redacted(ctx.store, sha, digest, content.extension, result.data),
        "size": len(result.data),
        "method": result.method,
        "removed": list(result.removed),
        "version": REDACTION_VERSION,
    }
    ctx.ledger.append(
        sha,
        "redaction",
        "success",
        detail,
        step_key=f"redaction:{digest}",
        agents=[_agent(analyst)],
    )
    return name


def _record_redaction(
    ctx: Any, sha: str, outcome: Any, detail: Mapping[str, Any], kind: str, analyst: str
) -> None:
    ctx.ledger.append(
        sha,
        "redaction",
        outcome,
        {"original_sha256": sha, "version": REDACTION_VERSION, **detail},
        step_key=f"redaction:{sha}:{REDACTION_VERSION}:{kind}",
        agents=[_agent(analyst)],
    )


def _store_redacted(store: Any, sha: str, digest: str, extension: str, data: bytes) -> str | None:
    """Keep the working copy as a derivative (never next to the vault copy); None if not stored."""
    from verification.pipeline import derivative_key
    from verification.storage import ObjectExists, StoreError

    key = derivative_key(sha, f"redacted{extension}")
    try:
        store.put(key, io.BytesIO(data), sha256=digest, if_absent=True)
    except ObjectExists:
        if store.head(key).size != len(data):
            log.warning("item %s: a different redacted derivative is already stored", sha[:12])
            return None
    except StoreError as exc:
        log.warning("item %s: redacted copy not stored: %s", sha[:12], type(exc).__name__)
        return None
    return key


def redact_bytes(data: bytes, fmt: str) -> Redacted:
    """A copy of an image without location, serial numbers, owner names or other metadata.

    JPEG, PNG and WebP are redacted byte-wise (metadata segments or chunks dropped, image data
    untouched, never re-encoded); TIFF, where the metadata is the container, is re-saved
    losslessly by Pillow. The result is checked before it is returned.
    """
    redactor = _REDACTORS.get(fmt)
    if redactor is None:
        msg = f"no redaction for {fmt} files"
        raise RedactionUnsupported(msg)
    result = redactor(data)
    _assert_clean(result.data)
    return result


def _redact_jpeg(data: bytes) -> Redacted:
    if not data.startswith(b"\xff\xd8"):
        raise RedactionError("not a JPEG (no SOI marker)")
    out, removed, pos = bytearray(b"\xff\xd8"), [], 2
    while pos < len(data):
        if data[pos] != 0xFF or pos + 1 >= len(data):
            raise RedactionError(f"JPEG structure unreadable at offset {pos}")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xD9:
            out += b"\xff\xd9"
            if pos + 2 < len(data):
                removed.append(f"{len(data) - pos - 2} bytes after the image (trailer)")
            break
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            out += data[pos : pos + 2]
            pos += 2
            continue
        end = pos + 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
        if end > len(data):
            raise RedactionError(f"JPEG segment at offset {pos} runs past the end of the file")
        segment = data[pos:end]
        if _jpeg_keeps(marker, segment[4:]):
            out += segment
        else:
            removed.append(_jpeg_segment_name(marker, segment[4:]))
        pos = end
        if marker == 0xDA:  # entropy-coded scan data follows the SOS header
            scan_end = _scan_end(data, pos)
            out += data[pos:scan_end]
            pos = scan_end
    orientation = _orientation(data)
    if orientation not in (None, 1):
        out[2:2] = _orientation_segment(orientation)
        removed.append("EXIF (except Orientation, kept so the picture displays upright)")
    return Redacted(bytes(out), "jpeg-segments-dropped", tuple(dict.fromkeys(removed)))


def _jpeg_keeps(marker: int, payload: bytes) -> bool:
    if marker == 0xFE or 0xE0 <= marker <= 0xEF:
        return any(payload.startswith(p) for p in _JPEG_KEEP_APP.get(marker, ()))
    return True


def _jpeg_segment_name(marker: int, payload: bytes) -> str:
    if marker == 0xFE:
        return "COM (comment)"
    ident = payload[:32].split(b"\x00", 1)[0].decode("ascii", "replace")
    ident = "".join(c for c in ident if c.isprintable())[:40]
    return f"APP{marker - 0xE0} ({ident or 'unnamed'})"


def _scan_end(data: bytes, pos: int) -> int:
    """Offset of the first marker after entropy-coded data (stuffed 0xFF00 and RSTn skipped)."""
    while True:
        i = data.find(b"\xff", pos)
        if i < 0 or i + 1 >= len(data):
            return len(data)  # truncated file: keep what there is
        nxt = data[i + 1]
        if nxt == 0x00 or 0xD0 <= nxt <= 0xD7:
            pos = i + 2
        elif nxt == 0xFF:
            pos = i + 1
        else:
            return i


def _orientation(data: bytes) -> int | None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            value = image.getexif().get(0x0112)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return None
    return value if isinstance(value, int) and 1 <= value <= 8 else None


def _orientation_segment(orientation: int) -> bytes:
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = orientation
    payload = exif.tobytes()
    return b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload


def _redact_png(data: bytes) -> Redacted:
    signature = b"\x89PNG\r\n\x1a\n"
    if not data.startswith(signature):
        raise RedactionError("not a PNG (bad signature)")
    out, removed, pos = bytearray(signature), [], len(signature)
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if end > len(data):
            raise RedactionError(f"PNG chunk at offset {pos} runs past the end of the file")
        if kind in _PNG_DROP:
            removed.append(kind.decode("ascii"))
        else:
            out += data[pos:end]
        pos = end
        if kind == b"IEND":
            break
    if pos < len(data):
        removed.append(f"{len(data) - pos} bytes after IEND (trailer)")
    return Redacted(bytes(out), "png-chunks-dropped", tuple(dict.fromkeys(removed)))


def _redact_webp(data: bytes) -> Redacted:
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise RedactionError("not a WebP (bad RIFF header)")
    body, removed, pos = bytearray(b"WEBP"), [], 12
    end_of_riff = min(len(data), 8 + int.from_bytes(data[4:8], "little"))
    while pos + 8 <= end_of_riff:
        kind = data[pos : pos + 4]
        size = int.from_bytes(data[pos + 4 : pos + 8], "little")
        end = pos + 8 + size + (size & 1)
        if pos + 8 + size > len(data):
            raise RedactionError(f"WebP chunk at offset {pos} runs past the end of the file")
        chunk = bytearray(data[pos:end])
        if kind in _WEBP_DROP:
            removed.append(kind.decode("ascii").strip())
        else:
            if kind == b"VP8X":
                chunk[8] &= ~0x0C & 0xFF  # clear the EXIF (0x08) and XMP (0x04) flags
            body += chunk
        pos = end
    riff = b"RIFF" + len(body).to_bytes(4, "little") + bytes(body)
    return Redacted(riff, "webp-chunks-dropped", tuple(dict.fromkeys(removed)))


def _redact_tiff(data: bytes) -> Redacted:
    from PIL import Image, ImageSequence, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            icc = image.info.get("icc_profile")
            frames = [_bare_copy(frame) for frame in ImageSequence.Iterator(image)]
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise RedactionError(f"TIFF not decodable ({type(exc).__name__})") from exc
    out = io.BytesIO()
    options: dict[str, Any] = {"compression": "tiff_adobe_deflate"}
    if icc:
        options["icc_profile"] = icc
    frames[0].save(
        out, format="TIFF", save_all=len(frames) > 1, append_images=frames[1:], **options
    )
    return Redacted(
        out.getvalue(), "tiff-resaved-lossless", ("all TIFF/EXIF tags but image structure",)
    )


def _bare_copy(frame: Any) -> Any:
    """The pixels alone: a new image without the source's tags or info."""
    from PIL import Image

    frame.load()
    bare = Image.new(frame.mode, frame.size)
    bare.frombytes(frame.tobytes())
    if frame.mode == "P" and frame.getpalette():
        bare.putpalette(frame.getpalette())
    return bare


_REDACTORS = {"jpeg": _redact_jpeg, "png": _redact_png, "webp": _redact_webp, "tiff": _redact_tiff}


def _assert_clean(data: bytes) -> None:
    """Refuse a copy that still carries GPS, identifying tags or XMP (defence in depth)."""
    from PIL import Image, UnidentifiedImageError

    if b"ns.adobe.com/xap/1.0/" in data or b"<x:xmpmeta" in data:
        raise RedactionError("XMP metadata left in the redacted copy")
    try:
        with Image.open(io.BytesIO(data)) as image:
            exif = image.getexif()
            text = {
                k
                for k in image.info
                if k
                not in {
                    "dpi",
                    "jfif",
                    "jfif_version",
                    "jfif_unit",
                    "jfif_density",
                    "icc_profile",
                    "adobe",
                    "adobe_transform",
                    "progressive",
                    "progression",
                    "compression",
                    "gamma",
                    "transparency",
                    "loop",
                    "duration",
                    "background",
                    "exif",
                    "resolution",
                    "aspect",
                }
            }
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return  # a truncated image: the byte-wise pass above already removed every segment
    if exif.get_ifd(_GPS_IFD) or _GPS_IFD in exif:
        raise RedactionError("GPS metadata left in the redacted copy")
    tags = set(exif) | set(exif.get_ifd(_EXIF_IFD))
    if tags & _IDENTIFYING_TAGS:
        raise RedactionError("identifying EXIF tags left in the redacted copy")
    if text:
        raise RedactionError("text metadata left in the redacted copy")


# ---------------------------------------------------------------------------------------------
# HTML report: one self-contained file. Every value is escaped (EXIF and claims are written by
# whoever made or sent the file), and a Content-Security-Policy forbids scripts and any fetch.

_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
_STATUSES = {"consistent", "needs-review", "inconsistent", "unreadable", "pending"}
_CSS = """
:root { --ink:#1d2330; --muted:#5b6475; --line:#d8dce3; --bg:#f6f7f9; }
* { box-sizing:border-box; }
body { font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif; color:var(--ink);
  margin:0; background:var(--bg); }
main { max-width:1180px; margin:0 auto; padding:24px; }
h1 { font-size:22px; margin:0 0 4px; } h2 { font-size:17px; margin:0; } h3 { font-size:14px;
  margin:18px 0 6px; text-transform:uppercase; letter-spacing:.04em; color:var(--muted); }
.meta, table { width:100%; border-collapse:collapse; }
td, th { text-align:left; vertical-align:top; padding:4px 8px; border-bottom:1px solid var(--line); }
th { color:var(--muted); font-weight:600; white-space:nowrap; }
code, .hash { font-family:ui-monospace,SFMono-Regular,Menlo,monospace; font-size:12px;
  word-break:break-all; }
header.export { background:#fff; border:1px solid var(--line); border-radius:8px; padding:16px 20px; }
.summary span { display:inline-block; margin:6px 8px 0 0; }
section.item { background:#fff; border:1px solid var(--line); border-radius:8px; padding:16px 20px;
  margin-top:18px; }
.item-head { display:flex; gap:12px; align-items:center; justify-content:space-between; }
.cols { display:grid; grid-template-columns:260px 1fr; gap:20px; margin-top:12px; }
figure { margin:0; } figure img { width:100%; border-radius:4px; border:1px solid var(--line); }
.nothumb { height:160px; display:flex; align-items:center; justify-content:center;
  background:var(--bg); color:var(--muted); border-radius:4px; }
.badge { padding:2px 10px; border-radius:999px; font-weight:600; font-size:12px; background:#e6e8ec; }
.st-consistent { background:#dff3e4; color:#155724; } .st-needs-review { background:#fff1cc; color:#6b4e00; }
.st-inconsistent { background:#fbdcdc; color:#7a1010; } .st-unreadable { background:#e2e3e5; color:#383d41; }
.sev-critical { color:#7a1010; font-weight:600; } .sev-warning { color:#6b4e00; font-weight:600; }
.sev-info { color:var(--muted); }
.ok { color:#155724; font-weight:600; } .bad { color:#7a1010; font-weight:600; }
.note { color:var(--muted); font-size:12px; }
table.timeline td:nth-child(2) { white-space:nowrap; }
@media print {
  body { background:#fff; font-size:11px; } main { max-width:none; padding:0; }
  section.item { break-before:page; border:none; padding:0; }
  header.export { border:none; padding:0; }
  tr, figure { break-inside:avoid; }
  .badge, .sev-critical, .sev-warning { -webkit-print-color-adjust:exact; print-color-adjust:exact; }
  @page { margin:14mm; }
}
"""


def _e(value: Any) -> str:
    """Escape anything for HTML text or attribute context (None shows as an em dash)."""
    import html

    if value is None or value == "":
        return "—"
    return html.escape(str(value), quote=True)


def _row(label: str, value: Any, *, raw: bool = False) -> str:
    return f"<tr><th>{_e(label)}</th><td>{value if raw else _e(value)}</td></tr>"


def render_html(document: Mapping[str, Any], contents: Sequence[ItemContent]) -> str:
    """The case report as one HTML file: no script, no external asset, print-friendly."""
    thumbs = {c.sha256: c.thumbnail for c in contents}
    export = document["export"]
    items = "".join(_html_item(item, thumbs.get(item["sha256"])) for item in document["items"])
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Case {_e(export['case'])}: evidence report</title><style>{_CSS}</style></head>"
        f"<body><main>{_html_header(document)}{items}"
        '<p class="note">Findings are signals for an analyst, not verdicts; analyst decisions are '
        "signed custody events. The custody chains, keys and checkpoint in this report verify "
        "offline; the BagIt package of the same case carries the originals.</p>"
        "</main></body></html>\n"
    )


def _html_header(document: Mapping[str, Any]) -> str:
    export, cp = document["export"], document["checkpoint"]
    counts: dict[str, int] = {}
    for item in document["items"]:
        counts[item["item"]["status"]] = counts.get(item["item"]["status"], 0) + 1
    summary = "".join(
        f'<span class="badge {_status_class(s)}">{_e(s)}: {n}</span>'
        for s, n in sorted(counts.items())
    )
    keys = "<br>".join(f"<code>{_e(k['key_id'])}</code>" for k in document["public_keys"])
    rows = [
        _row("Case", export["case"]),
        _row("Exported by", export["analyst"]),
        _row("Export time (UTC)", export["created_at"]),
        _row("Export id", f"<code>{_e(export['id'])}</code>", raw=True),
        _row("Organization", export.get("organization")),
        _row("Software", f"{export['software']['name']} {export['software']['version']}"),
        _row("Signing key(s)", keys, raw=True),
        _row(
            "Checkpoint",
            f"<code>{_e(cp['root'])}</code> signed {_e(cp['created_at'])}, "
            f"time-stamp: {_e(cp['timestamp']['status'])}",
            raw=True,
        ),
    ]
    return (
        '<header class="export"><h1>Evidence report: case '
        f'{_e(export["case"])}</h1><div class="summary">{len(document["items"])} item(s) '
        f'{summary}</div><table class="meta">{"".join(rows)}</table></header>'
    )


def _status_class(status: Any) -> str:
    return f"st-{status}" if status in _STATUSES else ""


def _html_item(item: Mapping[str, Any], thumbnail: bytes | None) -> str:
    summary, status = item["item"], item["item"]["status"]
    verified = (
        '<span class="ok">chain verified</span>'
        if item["custody_verified"]
        else f'<span class="bad">chain broken: {_e(item["custody_problem"])}</span>'
    )
    custody = _row("Custody", f"{len(item['custody'])} events, {verified}", raw=True)
    return (
        f'<section class="item" id="item-{_e(item["sha256"])}">'
        f'<div class="item-head"><h2>Item <code>{_e(item["sha256"][:16])}…</code></h2>'
        f'<span class="badge {_status_class(status)}">{_e(status)}</span></div>'
        f'<div class="cols"><figure>{_html_thumb(thumbnail)}</figure>'
        f"<table>{_html_facts(item)}{custody}</table></div>"
        f"<h3>Findings</h3>{_html_findings(item['record'].get('findings', []))}"
        f"<h3>Claims and observations</h3>{_html_claims(item, summary['case_id'])}"
        f"<h3>Duplicates</h3>{_html_duplicates(item)}"
        f"<h3>Analyst decisions</h3>{_html_decisions(item['decisions'])}"
        f"<h3>Custody timeline</h3>{_html_timeline(item['custody'])}</section>"
    )


def _html_thumb(thumbnail: bytes | None) -> str:
    if not thumbnail:
        return '<div class="nothumb">no thumbnail</div>'
    data = base64.b64encode(thumbnail).decode("ascii")
    return f'<img alt="thumbnail" src="data:image/jpeg;base64,{data}">'


def _html_facts(item: Mapping[str, Any]) -> str:
    summary, record = item["item"], item["record"]
    media, meta = record.get("media") or {}, record.get("metadata") or {}
    camera = " ".join(str(x) for x in (meta.get("make"), meta.get("model")) if x)
    rows = [
        _row("SHA-256", f"<code>{_e(item['sha256'])}</code>", raw=True),
        _row("Type", f"{summary['format']} ({summary['mime']}), {summary['size']} bytes"),
        _row(
            "Dimensions", f"{media['width']} × {media['height']} px" if media.get("width") else None
        ),
        _row("Camera", camera),
        _row("Taken (file says)", meta.get("datetime_original")),
        _row("Software", meta.get("software")),
        _row("GPS (file says)", gps_text(meta.get("gps"))),
        _row("First seen", summary["first_seen"]),
        _row("Fixity", summary["fixity"]),
        _row("Also in cases", ", ".join(item["other_cases"]) or None),
    ]
    return "".join(rows)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], empty: str, css: str = "") -> str:
    """A table of already-escaped cells, or a note when there are no rows."""
    if not rows:
        return f'<p class="note">{_e(empty)}</p>'
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _html_findings(findings: Sequence[Mapping[str, Any]]) -> str:
    from verification.findings import SEVERITY_ORDER

    ordered = sorted(
        findings, key=lambda f: (SEVERITY_ORDER.get(str(f.get("severity")), 9), str(f.get("code")))
    )
    rows = [
        (
            f'<span class="sev-{_e(f.get("severity"))}">{_e(f.get("severity"))}</span>',
            f"<code>{_e(f.get('code'))}</code>",
            _e(f.get("message")),
        )
        for f in ordered
    ]
    return _table(("Severity", "Code", "Message"), rows, "No findings.")


def _html_claims(item: Mapping[str, Any], first_case: str) -> str:
    rows = []
    for sub in item["record"].get("submissions", []):
        claims, geo = sub.get("claims") or {}, sub.get("geolocation") or {}
        place = geo.get("place") or {}
        claimed = (
            f"{claims['lat']:.5f}, {claims['lon']:.5f}" if claims.get("lat") is not None else None
        )
        observed = (
            ", ".join(str(place[k]) for k in ("name", "admin1", "country_code") if place.get(k))
            or None
        )
        distance = f"{geo['distance_km']:.1f} km" if geo.get("distance_km") is not None else None
        rows.append(
            (
                f'#{_e(sub.get("id"))} {_e(claims.get("case_id"))}<br><span class="note">{_e(sub.get("key"))}</span>',
                _e(claims.get("submitter")),
                _e(claimed),
                _e(observed),
                _e(distance),
                _e(claims.get("time")),
                f'{_e(geo.get("capture_time"))} <span class="note">{_e(geo.get("capture_time_source"))}</span>',
            )
        )
    header = (
        "Submission",
        "Submitter",
        "Claimed place",
        "Observed place",
        "Distance",
        "Claimed time",
        "Capture time",
    )
    return _table(header, rows, "No submission details recorded.")


def _html_duplicates(item: Mapping[str, Any]) -> str:
    rows = [
        (
            f"<code>{_e(d.get('item', '')[:16])}…</code>",
            _e(d.get("kind")),
            _e(d.get("distance")),
            _e(d.get("case_id")),
        )
        for d in item["record"].get("duplicates", []) or item["duplicate_links"]
    ]
    return _table(("Item", "Kind", "Distance", "Case"), rows, "No duplicates found.")


def _html_decisions(decisions: Sequence[Mapping[str, Any]]) -> str:
    rows = [
        (
            _e(d.get("time")),
            _e(d.get("analyst")),
            f"<strong>{_e(d.get('decision'))}</strong>",
            _e(d.get("note")),
        )
        for d in decisions
    ]
    return _table(
        ("Time (UTC)", "Analyst", "Decision", "Note"), rows, "No analyst decision recorded yet."
    )


def _html_timeline(events: Sequence[Mapping[str, Any]]) -> str:
    rows = []
    for ev in events:
        people = [a.get("name") for a in ev.get("agents", [])[1:]]
        who = ", ".join(str(p) for p in people if p) or ev.get("agents", [{}])[0].get("name")
        rows.append(
            (
                _e(ev.get("seq")),
                _e(ev.get("time")),
                _e(ev.get("type")),
                _e(ev.get("outcome")),
                _e(who),
                f'<code class="hash">{_e(str(ev.get("hash"))[:16])}…</code>',
            )
        )
    return _table(
        ("#", "Time (UTC)", "Event", "Outcome", "Agent", "Hash"),
        rows,
        "No custody events.",
        "timeline",
    )


# ---------------------------------------------------------------------------------------------
# Publishing an export to the object store (the export DAG)


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
