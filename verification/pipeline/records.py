"""Reading results back: item lists, one item's full report (record, submissions, custody
summary, decisions), and its text rendering; what `evidence show`, the review pages and the
exports read."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from verification.core.findings import SEVERITY_ORDER
from verification.core.text import printable
from verification.ledger.custody import ChainFailure, CustodyEvent
from verification.ledger.models import DuplicateLink, Item, ItemFinding, Record, Submission
from verification.media.gps import gps_text


def _check_chain(ctx: Any, sha: str, events: Sequence[CustodyEvent]) -> ChainFailure | None:
    """The item's chain under the pinned keys (``pipeline.trust``), not the database's list: a
    key someone registered in the database and re-signed the chain with is refused."""
    from verification.ledger.reconcile import verify_pinned_chain
    from verification.pipeline.trust import pinned_keys

    if not events:
        return ChainFailure(sha, None, None, "no custody events recorded")
    pinned = pinned_keys(ctx)
    if pinned.problem:
        return ChainFailure(sha, None, None, pinned.problem)
    return verify_pinned_chain(sha, events, pinned.keys)


def list_items(
    engine: Engine, *, case: str | None = None, status: str | None = None, limit: int = 1000
) -> list[dict[str, Any]]:
    """Items (newest first) with their warning and critical finding codes."""
    with Session(engine) as session:
        query = select(Item).order_by(Item.first_seen.desc(), Item.sha256).limit(limit)
        if case:
            query = query.where(Item.case_id == case)
        if status:
            query = query.where(Item.status == status)
        items = list(session.scalars(query))
        codes: dict[str, list[str]] = {}
        shas = [i.sha256 for i in items]
        for sha, code, severity in session.execute(
            select(ItemFinding.item_sha256, ItemFinding.code, ItemFinding.severity).where(
                ItemFinding.item_sha256.in_(shas)
            )
        ):
            if severity != "info":
                codes.setdefault(sha, []).append(code)
        return [
            {
                "sha256": i.sha256,
                "case_id": i.case_id,
                "format": i.format,
                "size": i.size,
                "status": i.status,
                "fixity": i.fixity,
                "capture_time": i.capture_time,
                "findings": sorted(codes.get(i.sha256, [])),
            }
            for i in items
        ]


def item_report(ctx: Any, sha: str) -> dict[str, Any]:
    """Everything known about an item: summary, newest record, submissions, duplicates, custody."""
    with Session(ctx.engine) as session:
        item = session.get(Item, sha)
        if item is None:
            msg = f"no item {sha}"
            raise KeyError(msg)
        records = list(
            session.scalars(select(Record).where(Record.item_sha256 == sha).order_by(Record.id))
        )
        submissions = list(
            session.scalars(
                select(Submission).where(Submission.item_sha256 == sha).order_by(Submission.id)
            )
        )
        links = list(session.scalars(select(DuplicateLink).where(DuplicateLink.item_sha256 == sha)))
        summary = {
            "sha256": item.sha256,
            "size": item.size,
            "format": item.format,
            "mime": item.mime,
            "kind": item.kind,
            "status": item.status,
            "fixity": item.fixity,
            "case_id": item.case_id,
            "first_seen": item.first_seen.replace(tzinfo=item.first_seen.tzinfo or UTC).isoformat(),
            "vault_key": item.vault_key,
            "vault_version": item.vault_version,
        }
        subs = [
            {
                "id": s.id,
                "key": s.store_key,
                "etag": s.etag,
                "case_id": s.case_id,
                "submitter": s.submitter,
                "claims": s.claims,
                "state": s.state,
                "error": s.error,
            }
            for s in submissions
        ]
        dups = [{"item": d.other_sha256, "kind": d.kind, "distance": d.distance} for d in links]
        versions = [r.pipeline_version for r in records]
        record = records[-1].data if records else {}
    events = ctx.ledger.events(sha)
    broken = _check_chain(ctx, sha, events)
    failure = [broken] if broken else []
    return {
        "item": summary,
        "record": record,
        "record_versions": versions,
        "submissions": subs,
        "duplicate_links": dups,
        "custody": {
            "events": len(events),
            "head": events[-1].hash if events else None,
            "verified": not failure,
            "problem": str(failure[0]) if failure else None,
            "decisions": [
                {"time": e.time, **e.detail}
                for e in events
                if e.type == "review" and "decision" in e.detail
            ],
        },
    }


def render_item_text(report: Mapping[str, Any]) -> str:
    """Human view of :func:`item_report`: facts first, then findings grouped by severity.

    Each line is escaped (:func:`verification.core.text.printable`) before the lines are joined, so
    a newline or an ESC sequence inside an EXIF string, a key or a claim stays inside its line.
    """
    return "\n".join(printable(line) for line in item_lines(report))


def item_lines(report: Mapping[str, Any]) -> list[str]:
    """The lines of :func:`render_item_text`, not yet escaped: values from outside as they are."""
    item, record = report["item"], report["record"]
    lines = [
        f"item      sha256:{item['sha256']}",
        f"status    {item['status']}  (fixity: {item['fixity']})",
        f"type      {item['format']} ({item['mime']}), {item['size']} bytes",
        f"vault     {item['vault_key']}",
    ]
    hashes = record.get("hashes", {})
    if hashes:
        lines += [f"sha1      {hashes.get('sha1')}", f"md5       {hashes.get('md5')}"]
    lines += _media_lines(record)
    lines += _perceptual_lines(record)
    lines += _submission_lines(record)
    lines += _finding_lines(record.get("findings", []))
    if record.get("duplicates"):
        lines.append("duplicates (earliest first)")
        lines += [
            f"  {d['item'][:12]}  {d['kind']:<18} distance {d['distance']:<3} first seen {d['first_seen'][:19]} case {d['case_id']}"
            for d in record["duplicates"]
        ]
    custody = report["custody"]
    badge = "verified" if custody["verified"] else f"BROKEN: {custody['problem']}"
    lines.append(f"custody   {custody['events']} events, chain {badge}")
    for d in custody["decisions"]:
        lines.append(
            f"  decision {d.get('decision')} by {d.get('analyst')} at {d['time']}: {d.get('note')}"
        )
    lines += [
        "",
        f"see also: evidence custody log {item['sha256'][:12]}   evidence show {item['sha256'][:12]} --json",
    ]
    return lines


def _media_lines(record: Mapping[str, Any]) -> list[str]:
    media, meta = record.get("media", {}), record.get("metadata", {})
    out = []
    if media.get("width"):
        out.append(f"size      {media.get('width')} x {media.get('height')} px")
    if media.get("duration_s"):
        out.append(
            f"duration  {media['duration_s']:.1f} s at {media.get('fps')} fps, codec {media.get('codec')}"
        )
    camera = " ".join(x for x in (meta.get("make"), meta.get("model")) if x)
    if camera:
        out.append(f"camera    {camera}")
    if meta.get("datetime_original"):
        out.append(f"taken     {meta['datetime_original']}")
    if meta.get("software"):
        out.append(f"software  {meta['software']}")
    gps = gps_text(meta.get("gps"))
    if gps:
        out.append(f"gps       {gps}")
    return out


def _perceptual_lines(record: Mapping[str, Any]) -> list[str]:
    perceptual, out = record.get("perceptual", {}), []
    if perceptual.get("pdq"):
        out.append(f"pdq       {perceptual['pdq']} (quality {perceptual.get('pdq_quality')})")
    if perceptual.get("phash"):
        out.append(f"phash     {perceptual['phash']}")
    if perceptual.get("keyframes"):
        out.append(f"keyframes {len(perceptual['keyframes'])} with PDQ hashes")
    derivatives = record.get("derivatives", [])
    if derivatives:
        names = ", ".join(d["name"] for d in derivatives[:4]) + (
            " …" if len(derivatives) > 4 else ""
        )
        out.append(
            f"derived   {len(derivatives)}: {names} (under derivatives/{record.get('item', '')[:12]}…/)"
        )
    return out


def _submission_lines(record: Mapping[str, Any]) -> list[str]:
    out = []
    for sub in record.get("submissions", []):
        claims, geo = sub.get("claims", {}), sub.get("geolocation", {})
        out.append(f"submission #{sub['id']} {sub['key']} (received {sub['received_at'][:19]})")
        if claims.get("lat") is not None:
            out.append(f"  claimed place  {claims['lat']:.5f}, {claims['lon']:.5f}")
        if claims.get("time"):
            out.append(f"  claimed time   {claims['time']}")
        place = geo.get("place") or {}
        if place:
            out.append(
                f"  observed place {place.get('name')}, {place.get('admin1')}, {place.get('country_code')}"
            )
        if geo.get("distance_km") is not None:
            out.append(f"  distance       {geo['distance_km']:.1f} km from the claim")
        if geo.get("capture_time"):
            out.append(f"  capture time   {geo['capture_time']} ({geo.get('capture_time_source')})")
    return out


def _finding_lines(findings: list[Mapping[str, Any]]) -> list[str]:
    if not findings:
        return ["findings  none"]
    out = ["findings"]
    for f in sorted(findings, key=lambda f: (SEVERITY_ORDER.get(f["severity"], 9), f["code"])):
        out.append(f"  [{f['severity']}] {f['code']}: {f['message']}")
    return out
