"""The BagIt package (RFC 8493): the originals byte for byte, with records, custody chains,
public keys and a checkpoint with Merkle inclusion proofs as tag files."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from verification import __version__
from verification.core.text import printable
from verification.exports.content import (
    CHUNK,
    ExportError,
    ExportMeta,
    ItemContent,
    chain_json,
    checkpoint_entry,
    collect,
    exported_records,
    public_keys,
    record_exports,
)
from verification.exports.layout import (
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
)
from verification.exports.redaction import redact_item
from verification.exports.signed import canonical_sha256, sign_tag_manifests

log = logging.getLogger(__name__)

# BagIt


def export_bag(ctx: Any, meta: ExportMeta, target: Path, redact: bool) -> Path:
    import bagit

    contents = collect(ctx, meta.case)
    if target.exists():
        msg = f"{target.name} already exists"
        raise ExportError(msg)
    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=target.parent))
    try:
        redacted = _write_payload(ctx, contents, staging, meta, redact)
        oxum = _oxum(staging)
        records = exported_records(contents)
        record_exports(
            ctx,
            meta,
            contents,
            {"payload_oxum": oxum, "destination": meta.destination or str(target)},
            {sha: canonical_sha256(entry) for sha, entry in records.items()},
        )
        fresh = [_refresh(ctx, c) for c in contents]
        bag = bagit.make_bag(str(staging), _bag_info(meta, fresh), checksums=list(ALGORITHMS))
        _write_tag_files(ctx, staging, meta, fresh, redacted, records)
        bag.save()  # regenerates bag-info.txt and the tag manifests over evidence/
        sign_tag_manifests(ctx.ledger.signer, staging)
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


def _refresh(ctx: Any, content: ItemContent) -> ItemContent:
    """The content again, with the chain as it is now (after the export's own events)."""
    from dataclasses import replace

    from verification.pipeline.records import item_report

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
    records: Mapping[str, Mapping[str, Any]],
) -> None:
    keys = public_keys(ctx)
    checkpoint = checkpoint_entry(ctx, [c.sha256 for c in contents])
    for rel in (RECORDS, CUSTODY, KEYS, "evidence/checkpoint"):
        (bag / rel).mkdir(parents=True, exist_ok=True)
    for key_id, pem in keys.items():
        (bag / KEYS / f"{key_id}.pem").write_text(pem.strip() + "\n", encoding="utf-8")
    for content in contents:
        _write_json(bag / RECORDS / f"{content.sha256}.json", records[content.sha256])
        (bag / CUSTODY / f"{content.sha256}.json").write_bytes(
            chain_json(content.sha256, content.events)
        )
    _write_checkpoint(bag, checkpoint)
    index = _index(meta, contents, redacted, keys, checkpoint)
    _write_json(bag / INDEX, index)


def _write_checkpoint(bag: Path, checkpoint: Mapping[str, Any]) -> None:
    from verification.ledger.checkpoints import checkpoint_message

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
                "fixity": c.report["item"].get("fixity"),
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
