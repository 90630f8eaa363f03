"""Verify a JSON export with nothing but the file: the signatures over each item entry and the
document, every custody chain, each entry's decisions against the chain's signed review events,
and the checkpoint's inclusion proofs."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from verification.exports.signed import pinned_keys, signature_problem
from verification.exports.verify import ExportReport, PackageFailure, check_package_checkpoint


def verify_json_export(path: Path, *, expect_keys: Sequence[str] = ()) -> ExportReport:
    """Verify the JSON export at ``path``; the first failure names the forged item or part."""
    chains: dict[str, list[Any]] = {}
    keys: dict[str, str] = {}
    try:
        doc = _load(path)
        keys = pinned_keys(_keys(doc), expect_keys)
        if not keys:
            raise PackageFailure("content", "no public key in the export is an expected key")
        for entry in doc.get("items", []):
            sha, events = _check_item(entry, keys)
            chains[sha] = events
        problem = signature_problem(doc, keys, "the export document")
        if problem:
            raise PackageFailure("signature", problem)
        problem = check_package_checkpoint(doc["checkpoint"], keys, chains)
        if problem:
            raise PackageFailure("checkpoint", problem)
    except PackageFailure as failure:
        return _report(path, chains, keys, (str(failure),))
    except (KeyError, TypeError, ValueError) as exc:
        return _report(path, chains, keys, (f"content: malformed export ({type(exc).__name__})",))
    return _report(path, chains, keys, ())


def _load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise PackageFailure("content", f"{path.name} is not a readable JSON export") from exc
    if not isinstance(data, dict) or "items" not in data:
        raise PackageFailure("content", f"{path.name} is not a JSON export")
    return data


def _keys(doc: Mapping[str, Any]) -> dict[str, str]:
    from verification.ledger.signing import key_id

    keys = {}
    for entry in doc.get("public_keys", []):
        pem = str(entry["pem"]).strip()
        if key_id(pem) != entry["key_id"]:
            raise PackageFailure("content", "a public key does not match its key id")
        keys[entry["key_id"]] = pem
    return keys


def _check_item(entry: Mapping[str, Any], keys: Mapping[str, str]) -> tuple[str, list[Any]]:
    from verification.ledger.custody import CustodyEvent, verify_chain
    from verification.ledger.review_events import decisions

    sha = str(entry["sha256"])
    problem = signature_problem(entry, keys, f"item {sha[:12]}'s entry")
    if problem:
        raise PackageFailure("records", problem)
    events = [CustodyEvent.from_dict(e) for e in entry["custody"]]
    failure = verify_chain(sha, events, keys)
    if failure is not None:
        raise PackageFailure("custody", str(failure))
    if entry.get("decisions") != decisions(events):
        raise PackageFailure(
            "records", f"item {sha[:12]}: decisions are not the signed review events of its chain"
        )
    return sha, events


def _report(
    path: Path, chains: Mapping[str, list[Any]], keys: Mapping[str, str], failures: tuple[str, ...]
) -> ExportReport:
    return ExportReport(
        path,
        items=len(chains),
        events=sum(len(c) for c in chains.values()),
        key_ids=tuple(sorted(keys)),
        checkpoint="verified" if not failures else "not checked",
        timestamp="not checked (a JSON export carries the token only as data)",
        failures=failures,
    )
