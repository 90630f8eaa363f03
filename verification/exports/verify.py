"""Verify an exported evidence package with nothing but the package (no database, no network).

A package is a BagIt bag (RFC 8493) whose payload is the preserved originals and whose tag files
(``evidence/``) carry the verification records, the custody chains, the public keys and a
checkpoint. Checks run in stages and stop after the first stage that fails, because later
checks on a broken bag prove nothing:

1. bag structure: both manifests and tag manifests present, every manifest line well-formed
   with a safe relative path, no unlisted or missing file, no symbolic link, Payload-Oxum;
2. bagit's own validation (every checksum of every payload and tag file);
3. content: every item's original is its SHA-256, every custody chain verifies (hashes, links,
   signatures) under the package's public keys (only the expected ones when the recipient names
   them), every redacted copy and the export itself have their custody events, every record is
   the one whose hash the item's export event signed, with the chain's signed decisions, and
   the tag manifests carry the installation's signature (:mod:`.signed`);
4. the checkpoint: its signature, the signed message, each item's Merkle inclusion proof, and
   each checkpointed chain head still present in the item's chain; then the tag manifests'
   signature, which covers every tag file the checks before could not name;
5. the RFC 3161 time-stamp token over the checkpoint, against the recipient's TSA roots.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from verification.exports.layout import (
    ALGORITHMS,
    CHECKPOINT,
    CHECKPOINT_MESSAGE,
    CUSTODY,
    FORMAT_VERSION,
    INDEX,
    KEYS,
    RECORDS,
    SIGNATURE,
    TIMESTAMP,
    root_from_proof,
)
from verification.exports.signed import pinned_keys, record_problem, tag_manifest_problem

_HEX = {"sha256": 64, "sha512": 128}
_DRIVE = re.compile(r"^[A-Za-z]:")


class PackageFailure(Exception):
    """A check that failed; carries the stage name and a precise, content-free reason."""

    def __init__(self, stage: str, reason: str) -> None:
        super().__init__(f"{stage}: {reason}")
        self.stage = stage
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ExportReport:
    """What was checked and the first failure, if any (``ok`` is True when there is none)."""

    path: Path
    items: int = 0
    events: int = 0
    key_ids: tuple[str, ...] = ()
    checkpoint: str = "not checked"
    timestamp: str = "not checked"
    failures: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        """True when every check passed."""
        return not self.failures

    @property
    def first_failure(self) -> str | None:
        """The first failed check, stated precisely, or None."""
        return self.failures[0] if self.failures else None


# Entry point


def verify_export(
    path: Path, *, tsa_roots: bytes | None = None, expect_keys: Sequence[str] = ()
) -> ExportReport:
    """Verify the package at ``path``; ``tsa_roots`` (PEM) lets the time-stamp's signature be
    checked, ``expect_keys`` (fingerprints) are the only keys whose signatures count."""
    path = Path(path)
    state = _State(path, expect=tuple(expect_keys))
    try:
        if not path.is_dir():
            raise PackageFailure("bag", f"{path.name} is not a directory")
        check_bag_structure(path)
        check_bag_checksums(path)
        index = _check_content(path, state)
        _check_checkpoint(path, state, index)
        # Last of the content checks: whatever the checks above could not name (bag-info.txt,
        # the index) is still under the installation's signature.
        problem = tag_manifest_problem(path, state.keys)
        if problem:
            raise PackageFailure("signature", problem)
        _check_timestamp(path, state, tsa_roots)
    except PackageFailure as failure:
        state.failures.append(str(failure))
    return state.report()


@dataclass
class _State:
    path: Path
    expect: tuple[str, ...] = ()
    items: int = 0
    events: int = 0
    key_ids: tuple[str, ...] = ()
    chains: dict[str, list[Any]] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    checkpoint: str = "not checked"
    timestamp: str = "not checked"
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def report(self) -> ExportReport:
        return ExportReport(
            self.path,
            self.items,
            self.events,
            self.key_ids,
            self.checkpoint,
            self.timestamp,
            tuple(self.failures),
            tuple(self.notes),
        )


# ---------------------------------------------------------------------------------------------
# Stage 1: structure, manifests, completeness (explicit, before bagit)


def check_bag_structure(path: Path) -> None:
    """Manifests present and well-formed, safe paths, no unlisted or missing file, Payload-Oxum."""
    if not (path / "bagit.txt").is_file():
        raise PackageFailure("bag", "bagit.txt is missing (not a BagIt bag)")
    _reject_links(path)
    payload_files, tag_files = _files_on_disk(path)
    manifests = [
        (kind, f"{prefix}-{alg}.txt", alg, on_disk)
        for alg in ALGORITHMS
        for kind, prefix, on_disk in (
            ("payload manifest", "manifest", payload_files),
            ("tag manifest", "tagmanifest", tag_files),
        )
    ]
    for kind, name, _alg, _files in manifests:
        if not (path / name).is_file():
            raise PackageFailure("bag", f"{kind} {name} is missing")
    for kind, name, alg, on_disk in manifests:
        listed = read_manifest(path / name, payload=kind == "payload manifest", alg=alg)
        _compare(name, set(listed), on_disk)
    _check_oxum(path, payload_files)


def read_manifest(manifest: Path, *, payload: bool, alg: str) -> dict[str, str]:
    """``path -> digest`` of a (tag) manifest; every line checked for form and path safety."""
    entries: dict[str, str] = {}
    text = manifest.read_text(encoding="utf-8")
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or not re.fullmatch(rf"[0-9a-fA-F]{{{_HEX[alg]}}}", parts[0]):
            raise PackageFailure("bag", f"{manifest.name} line {number} is malformed")
        name = _decode_name(parts[1].strip())
        problem = unsafe_path(name, payload=payload)
        if problem:
            raise PackageFailure(
                "bag", f"{manifest.name} line {number}: unsafe path {name[:80]!r} ({problem})"
            )
        entries[name] = parts[0].lower()
    return entries


def unsafe_path(name: str, *, payload: bool) -> str | None:
    """Why a manifest path could reach outside the bag or its section, or None when it is safe."""
    if name.startswith(("/", "~")) or _DRIVE.match(name):
        return "absolute path"
    if "\\" in name:
        return "backslash in path"
    parts = PurePosixPath(name).parts
    if any(part in {"..", "."} for part in name.split("/")):
        return "path traversal"
    if any(ord(c) < 32 for c in name):
        return "control character in path"
    if payload and (not parts or parts[0] != "data"):
        return "payload path outside data/"
    if not payload and parts and parts[0] == "data":
        return "tag file inside data/"
    return None


def _decode_name(name: str) -> str:
    # RFC 8493 §2.1.3: CR, LF and % are percent-encoded in manifest paths.
    return name.replace("%0D", "\r").replace("%0A", "\n").replace("%25", "%")


def _reject_links(path: Path) -> None:
    for item in sorted(path.rglob("*")):
        if item.is_symlink():
            rel = item.relative_to(path).as_posix()
            raise PackageFailure("bag", f"symbolic link {rel}: a package holds regular files only")


def _files_on_disk(path: Path) -> tuple[set[str], set[str]]:
    payload, tags = set(), set()
    for item in path.rglob("*"):
        if not item.is_file():
            continue
        rel = item.relative_to(path).as_posix()
        if rel.startswith("data/"):
            payload.add(rel)
        elif rel != SIGNATURE and not re.fullmatch(r"tagmanifest-[a-z0-9]+\.txt", rel):
            tags.add(rel)
    return payload, tags


def _compare(manifest: str, listed: set[str], on_disk: set[str]) -> None:
    tag = "" if manifest.startswith("manifest-") else "tag "
    for rel in sorted(on_disk - listed):
        raise PackageFailure("bag", f"unlisted {tag}file {rel} (not in {manifest})")
    for rel in sorted(listed - on_disk):
        raise PackageFailure("bag", f"missing {tag}file {rel} (listed in {manifest})")


def _check_oxum(path: Path, payload_files: set[str]) -> None:
    info = _bag_info(path)
    oxum = info.get("Payload-Oxum")
    if oxum is None:
        raise PackageFailure("bag", "bag-info.txt has no Payload-Oxum")
    size = sum((path / rel).stat().st_size for rel in payload_files)
    found = f"{size}.{len(payload_files)}"
    if oxum != found:
        raise PackageFailure(
            "bag", f"Payload-Oxum mismatch: bag-info.txt says {oxum}, the payload is {found}"
        )


def _bag_info(path: Path) -> dict[str, str]:
    info_file = path / "bag-info.txt"
    if not info_file.is_file():
        raise PackageFailure("bag", "bag-info.txt is missing")
    info: dict[str, str] = {}
    for line in info_file.read_text(encoding="utf-8").splitlines():
        if ":" in line and not line[:1].isspace():
            key, _, value = line.partition(":")
            info[key.strip()] = value.strip()
    return info


# ---------------------------------------------------------------------------------------------
# Stage 2: bagit's validation (checksums)


def check_bag_checksums(path: Path) -> None:
    """Every payload and tag file against every manifest, by the Library of Congress validator."""
    import bagit

    try:
        bagit.Bag(str(path)).validate(processes=1)
    except bagit.BagValidationError as exc:
        raise PackageFailure("bag", _bagit_reason(exc)) from exc
    except bagit.BagError as exc:
        raise PackageFailure("bag", f"bagit refuses the bag: {exc}") from exc


def _bagit_reason(exc: Any) -> str:
    # bagit reports mismatches in hash-set order; sort so the same damage reads the same way.
    details = sorted(
        getattr(exc, "details", None) or [],
        key=lambda d: (str(getattr(d, "path", "")), str(getattr(d, "algorithm", ""))),
    )
    for detail in details:
        if detail.__class__.__name__ == "ChecksumMismatch":
            return (
                f"checksum mismatch: {detail.path} ({detail.algorithm} expected "
                f"{detail.expected[:16]}…, found {detail.found[:16]}…)"
            )
        return f"bagit: {detail}"
    return f"bagit: {exc.message if hasattr(exc, 'message') else exc}"


# ---------------------------------------------------------------------------------------------
# Stage 3: content (originals, custody chains, redactions, export events)


def _check_content(path: Path, state: _State) -> dict[str, Any]:
    index = _read_json(path, INDEX)
    if index.get("format") != FORMAT_VERSION:
        raise PackageFailure("content", f"{INDEX} is not an {FORMAT_VERSION} index")
    state.keys = pinned_keys(_load_keys(path), state.expect)
    if not state.keys:
        raise PackageFailure("content", "no public key in the package is an expected key")
    state.key_ids = tuple(sorted(state.keys))
    payload = read_manifest(path / "manifest-sha256.txt", payload=True, alg="sha256")
    oxum = _bag_info(path).get("Payload-Oxum")
    for entry in index.get("items", []):
        sha = _item_sha(entry)
        _check_original(sha, entry, payload)
        events = _check_chain(path, sha, state)
        _check_redactions(sha, entry, events, payload)
        _check_export_event(sha, index["export"], events, oxum)
        rel = f"{RECORDS}/{sha}.json"
        problem = record_problem(rel, _read_json(path, rel), events, index["export"].get("id"))
        if problem:
            raise PackageFailure("records", problem)
        state.items += 1
    return index


def _item_sha(entry: Mapping[str, Any]) -> str:
    sha = str(entry.get("sha256", ""))
    if not re.fullmatch(r"[0-9a-f]{64}", sha):
        raise PackageFailure("content", f"{INDEX} lists an item without a valid SHA-256")
    return sha


def _load_keys(path: Path) -> dict[str, str]:
    from verification.ledger.signing import key_id

    keys = {}
    for pem_file in sorted((path / KEYS).glob("*.pem")):
        pem = pem_file.read_text(encoding="utf-8").strip()
        keys[key_id(pem)] = pem
    if not keys:
        raise PackageFailure("content", f"no public key in {KEYS}/")
    return keys


def _check_original(sha: str, entry: Mapping[str, Any], payload: Mapping[str, str]) -> None:
    rel = str(entry.get("original", ""))
    if rel not in payload:
        raise PackageFailure("content", f"item {sha[:12]}: original {rel!r} is not in the payload")
    if payload[rel] != sha:
        raise PackageFailure(
            "content",
            f"item {sha[:12]}: {rel} hashes to {payload[rel][:16]}…, not the item's SHA-256",
        )


def _check_chain(path: Path, sha: str, state: _State) -> list[Any]:
    from verification.ledger.custody import CustodyEvent, verify_chain

    rel = f"{CUSTODY}/{sha}.json"
    data = _read_json(path, rel)
    try:
        events = [CustodyEvent.from_dict(e) for e in data["events"]]
    except (KeyError, TypeError) as exc:
        raise PackageFailure("custody", f"{rel} is not a custody chain") from exc
    if not events:
        raise PackageFailure("custody", f"item {sha[:12]}: no custody events")
    failure = verify_chain(sha, events, state.keys)
    if failure is not None:
        raise PackageFailure("custody", str(failure))
    state.chains[sha] = events
    state.events += len(events)
    return events


def _check_redactions(
    sha: str, entry: Mapping[str, Any], events: Sequence[Any], payload: Mapping[str, str]
) -> None:
    recorded = {
        e.detail.get("derivative_sha256")
        for e in events
        if e.type == "redaction" and e.outcome == "success"
    }
    for rel in entry.get("redacted", []) or []:
        digest = payload.get(rel)
        if digest is None:
            raise PackageFailure("content", f"item {sha[:12]}: redacted copy {rel} is missing")
        if digest not in recorded:
            raise PackageFailure(
                "custody", f"item {sha[:12]}: redacted copy {rel} has no redaction event"
            )


def _check_export_event(
    sha: str, export: Mapping[str, Any], events: Sequence[Any], oxum: str | None
) -> None:
    mine = [e for e in events if e.type == "export" and e.detail.get("export") == export.get("id")]
    if not mine:
        raise PackageFailure(
            "custody", f"item {sha[:12]}: no export event for this export in its chain"
        )
    recorded = mine[-1].detail.get("payload_oxum")
    if recorded != oxum:
        raise PackageFailure(
            "custody",
            f"item {sha[:12]}: export event records Payload-Oxum {recorded}, bag has {oxum}",
        )


def _read_json(path: Path, rel: str) -> dict[str, Any]:
    try:
        data = json.loads((path / rel).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise PackageFailure("content", f"{rel} is missing") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise PackageFailure("content", f"{rel} is not valid JSON") from exc
    if not isinstance(data, dict):
        raise PackageFailure("content", f"{rel} is not a JSON object")
    return data


# ---------------------------------------------------------------------------------------------
# Stage 4: the checkpoint


def _check_checkpoint(path: Path, state: _State, index: Mapping[str, Any]) -> None:
    if not (path / CHECKPOINT).is_file():
        state.checkpoint = "none in the package"
        state.notes.append("the package carries no checkpoint")
        return
    cp = _read_json(path, CHECKPOINT)
    problem = check_package_checkpoint(cp, state.keys, state.chains)
    if problem:
        raise PackageFailure("checkpoint", problem)
    if (path / CHECKPOINT_MESSAGE).read_bytes() != _message(cp):
        raise PackageFailure("checkpoint", f"{CHECKPOINT_MESSAGE} is not the signed message")
    covered = len(cp.get("items", {}))
    later = len(state.chains) - covered
    if later:
        state.notes.append(f"{later} item(s) joined the ledger after the checkpoint")
    state.checkpoint = (
        f"verified: root {cp['root'][:16]}… of {cp['created_at']} covers {covered} of the "
        f"package's {len(state.chains)} item(s)"
    )


def check_package_checkpoint(
    cp: Mapping[str, Any], keys: Mapping[str, str], chains: Mapping[str, Sequence[Any]]
) -> str | None:
    """The first problem with a package's checkpoint, or None.

    The checkpoint may predate later events: each checkpointed head must still be in its chain.
    """
    from verification.ledger.signing import verify_signature

    try:
        public = keys.get(cp["key_id"])
        if public is None:
            return f"signed by unknown key {cp['key_id'][:16]}…"
        if not verify_signature(public, _message(cp), cp["signature"]):
            return "checkpoint signature does not verify"
        for item, proof in sorted(cp["items"].items()):
            problem = _check_proof(cp, item, proof, chains)
            if problem:
                return problem
    except (KeyError, TypeError, ValueError, StopIteration):
        return "checkpoint.json is malformed"
    return None


def _check_proof(
    cp: Mapping[str, Any], item: str, proof: Mapping[str, Any], chains: Mapping[str, Sequence[Any]]
) -> str | None:
    root = root_from_proof(item, proof["head"], proof["index"], cp["tree_size"], proof["path"])
    if root != cp["root"]:
        return f"item {item[:12]}: inclusion proof does not lead to the checkpoint's Merkle root"
    chain = chains.get(item)
    if chain is None:
        return f"item {item[:12]} is in the checkpoint but not in the package"
    if proof["head"] not in {e.hash for e in chain}:
        return f"item {item[:12]}: checkpointed chain head is gone (chain rolled back or rewritten)"
    return None


def _message(cp: Mapping[str, Any]) -> bytes:
    from verification.ledger.checkpoints import checkpoint_message

    return checkpoint_message(cp["created_at"], cp["root"], cp["tree_size"])


# ---------------------------------------------------------------------------------------------
# Stage 5: the time-stamp


def _check_timestamp(path: Path, state: _State, roots: bytes | None) -> None:
    from verification.ledger.timestamps import TimestampError, token_imprint_matches, verify_token

    token_file = path / TIMESTAMP
    if not token_file.is_file():
        state.timestamp = "pending (no token in the package)"
        return
    if not (path / CHECKPOINT_MESSAGE).is_file():
        raise PackageFailure("timestamp", "a token without the checkpoint it time-stamps")
    message = (path / CHECKPOINT_MESSAGE).read_bytes()
    token = token_file.read_bytes()
    try:
        if roots is None:
            if not token_imprint_matches(token, message):
                raise TimestampError("message imprint does not match the checkpoint")
            state.timestamp = "token over the checkpoint; signature not checked (no TSA roots)"
            state.notes.append("pass the TSA's root certificate to check the time-stamp")
            return
        info = verify_token(token, message, roots)
    except TimestampError as exc:
        raise PackageFailure("timestamp", str(exc)) from exc
    state.timestamp = f"verified: checkpoint existed at {info.gen_time.isoformat()} (TSA time)"
