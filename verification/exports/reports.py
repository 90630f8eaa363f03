"""One-file exports: the JSON document (docs/export-schema.json) and the self-contained HTML report."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from verification.core.text import printable
from verification.exports.content import (
    ExportError,
    ExportMeta,
    ItemContent,
    checkpoint_entry,
    collect,
    exported_records,
    public_keys,
    record_exports,
)
from verification.exports.layout import (
    FORMAT_VERSION,
)
from verification.exports.scope import exported_event
from verification.exports.signed import canonical_sha256, sign
from verification.media.gps import gps_text

log = logging.getLogger(__name__)

# HTML and JSON reports


def export_file(
    ctx: Any, meta: ExportMeta, target: Path, *, omit_other_cases: bool = False
) -> Path:
    contents = collect(ctx, meta.case, omit_other_cases=omit_other_cases)
    if target.exists():
        msg = f"{target.name} already exists"
        raise ExportError(msg)
    document = export_document(ctx, meta, contents)
    if meta.format == "json":
        document = sign_document(ctx.ledger.signer, document)
        data = (json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()
    else:
        data = render_html(document, contents).encode()
    partial = target.with_name(f".{target.name}.partial")
    partial.write_bytes(data)
    partial.rename(target)
    digest = hashlib.sha256(data).hexdigest()
    records = {
        c.sha256: canonical_sha256(e) for c, e in zip(contents, _entries(contents), strict=True)
    }
    record_exports(
        ctx,
        meta,
        contents,
        {"sha256": digest, "destination": meta.destination or str(target)},
        records,
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
        "items": [
            {**entry, "custody": [exported_event(e, c.withheld) for e in c.events]}
            for c, entry in zip(contents, _entries(contents), strict=True)
        ],
    }


def _entries(contents: Sequence[ItemContent]) -> list[dict[str, Any]]:
    records = exported_records(contents)
    return [records[c.sha256] for c in contents]


def sign_document(signer: Any, document: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON export with each item entry signed, then the whole document."""
    items = [sign(signer, item) for item in document["items"]]
    return sign(signer, {**document, "items": items})


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
    if summary.get("fixity") in {"failure", "missing"}:
        custody += _row("Fixity", f'<span class="bad">{_fixity_line(summary)}</span>', raw=True)
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


def _fixity_line(summary: Mapping[str, Any]) -> str:
    """The line an export shows for an original that failed its last fixity check."""
    words = "its bytes no longer match" if summary["fixity"] == "failure" else "it is gone"
    return _e(
        f"FIXITY {str(summary['fixity']).upper()}: the preserved original failed its last "
        f"fixity check ({words}); see the fixity check events in the custody timeline"
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
    from verification.core.findings import SEVERITY_ORDER

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
        if (ev.get("detail") or {}).get("withheld"):
            who = ev["detail"]["withheld"]
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
