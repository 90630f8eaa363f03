"""Attacks by someone with access to the servers, each performed as the attacker would on the
embedded default, and what `evidence custody verify` / `evidence fixity` say afterwards.

Every test here failed before reconciliation, anchors and key pins existed (the tools said
everything was fine); docs/custody.md's threat-model table points at them.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
from sqlalchemy import text

from tests.helpers import photo
from verification.cli.main import main
from verification.ledger.anchors import anchor_key, sign_anchor
from verification.ledger.custody import CustodyEvent
from verification.ledger.models import make_engine
from verification.ledger.signing import create_key, load_key
from verification.storage.local import LocalStore


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An initialised embedded home with three ingested photos and one anchored checkpoint."""
    home = tmp_path / "home"
    monkeypatch.setenv("EVIDENCE_HOME", str(home))
    monkeypatch.setenv("EVIDENCE_WORKERS", "1")
    assert main(["init"]) == 0
    for seed in (1, 2, 3):
        path = tmp_path / f"p{seed}.jpg"
        path.write_bytes(photo(seed))
        assert main(["submit", str(path), "--case", "case-1", "--submitter", "w1"]) == 0
    assert main(["ingest", "--no-progress"]) == 0
    assert main(["custody", "checkpoint"]) == 0
    return home


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def sql(home: Path, statement: str, **params: object) -> list[tuple[object, ...]]:
    engine = make_engine(f"sqlite:///{home / 'evidence.db'}")
    with engine.begin() as conn:
        result = conn.execute(text(statement), params)
        rows = [tuple(r) for r in result] if result.returns_rows else []
    engine.dispose()
    return rows


def items(home: Path) -> list[str]:
    return [str(r[0]) for r in sql(home, "SELECT sha256 FROM items ORDER BY sha256")]


def store(home: Path) -> LocalStore:
    return LocalStore(home / "store")


def vault_file(home: Path, sha: str) -> Path:
    return home / "store" / "objects" / "vault" / "sha256" / sha[:2] / sha[2:4] / sha


def test_verify_passes_on_an_untouched_installation(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The baseline: nothing touched, custody verify and fixity both pass."""
    code, out, err = run(capsys, "custody", "verify")
    assert code == 0, err
    assert "pinned key" in out
    assert run(capsys, "fixity")[0] == 0


# Attacker with database write ---------------------------------------------------------------


def test_deleted_events_and_checkpoint_rows_fail_verify(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """All events of one item and every checkpoint row deleted: verify names the item and the
    anchored checkpoint the database lost."""
    victim = items(home)[0]
    sql(home, "DELETE FROM custody_events WHERE item_sha256 = :s", s=victim)
    sql(home, "DELETE FROM checkpoints")
    code, _, err = run(capsys, "custody", "verify")
    assert code == 1
    assert f"item {victim[:12]}: chain: no custody events recorded" in err
    assert "anchored checkpoint #1" in err and "missing from the database" in err


def test_item_deleted_with_its_chain_is_named_by_checkpoint_and_vault(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An item erased from every table is still named: the anchored checkpoint holds its head
    and its original is still in the vault."""
    victim = items(home)[1]
    for table in ("custody_events", "item_findings", "perceptual_hashes", "records"):
        sql(home, f"DELETE FROM {table} WHERE item_sha256 = :s", s=victim)  # noqa: S608
    sql(home, "DELETE FROM duplicate_links WHERE item_sha256 = :s OR other_sha256 = :s", s=victim)
    sql(home, "UPDATE submissions SET item_sha256 = NULL WHERE item_sha256 = :s", s=victim)
    sql(home, "DELETE FROM items WHERE sha256 = :s", s=victim)
    code, _, err = run(capsys, "custody", "verify")
    assert code == 1
    assert f"item {victim[:12]}: chain: item in the anchored checkpoint has no chain" in err
    assert f"item {victim[:12]}: chain: vault object without an item" in err


def test_rolled_back_chain_is_behind_the_anchored_checkpoint(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Removing an item's newest event leaves a valid-looking prefix; the anchored head exposes it."""
    victim = items(home)[2]
    sql(
        home,
        "DELETE FROM custody_events WHERE item_sha256 = :s AND seq = "
        "(SELECT max(seq) FROM custody_events WHERE item_sha256 = :s)",
        s=victim,
    )
    code, _, err = run(capsys, "custody", "verify")
    assert code == 1
    assert f"item {victim[:12]}: chain: chain head behind the anchored checkpoint" in err


def test_item_without_its_vault_object_fails_verify(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A preserved original deleted from the vault is named by custody verify."""
    victim = items(home)[0]
    path = vault_file(home, victim)
    path.chmod(0o644)
    path.unlink()
    code, _, err = run(capsys, "custody", "verify")
    assert code == 1
    assert f"item {victim[:12]}: chain: item without its vault object" in err


# Attacker with the bucket (planted objects, unreadable originals) -----------------------------


def test_planted_vault_and_derivative_objects_are_reported(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Objects no item owns (one at a future item's SHA-256 path) are `untracked`: fixity exits 1
    and custody verify names them."""
    future = "ab" * 32
    key = f"vault/sha256/{future[:2]}/{future[2:4]}/{future}"
    store(home).put(key, io.BytesIO(b"planted"))
    store(home).put(f"derivatives/{'cd' * 32}/thumbnail.jpg", io.BytesIO(b"planted"))
    code, out, err = run(capsys, "fixity")
    assert code == 1
    assert "untracked: 2" in out and "untracked: 2" in err
    assert key in out
    code, _, err = run(capsys, "custody", "verify")
    assert code == 1
    assert f"item {future[:12]}: chain: vault object without an item" in err


def test_unreadable_original_is_not_a_pass(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A vault original replaced by a symlink loop cannot be read: not-run, and exit 1."""
    victim = items(home)[0]
    path = vault_file(home, victim)
    path.chmod(0o644)
    path.unlink()
    os.symlink(path.name, path)  # points at itself
    code, out, err = run(capsys, "fixity")
    assert code == 1
    assert "not-run: 1" in out and "not-run: 1" in err


# Attacker with database write and the key file ------------------------------------------------


def _resign_with_new_key(home: Path, victim: str) -> str:
    """What the attacker does: a new key at the key path, registered, the victim's claims
    rewritten and its whole chain re-signed. Returns the new key id."""
    key_path = home / "keys" / "installation.pem"
    key_path.unlink()
    signer = create_key(key_path)
    sql(
        home,
        "INSERT INTO signing_keys (key_id, public_key, created_at) VALUES (:k, :p, :t)",
        k=signer.key_id,
        p=signer.public_pem,
        t="2026-01-01 00:00:00",
    )
    rows = sql(
        home,
        "SELECT uuid, seq, event_type, event_time, outcome, detail, agents FROM custody_events "
        "WHERE item_sha256 = :s ORDER BY seq",
        s=victim,
    )
    prev = "0" * 64
    for uuid, seq, kind, when, outcome, detail_json, agents_json in rows:
        detail = json.loads(str(detail_json))
        if kind == "ingestion":
            detail["claims"] = {**detail["claims"], "submitter": "someone else", "lat": 1.0}
        draft = CustodyEvent(
            str(uuid),
            victim,
            int(str(seq)),
            str(kind),
            str(when),
            str(outcome),
            detail,
            json.loads(str(agents_json)),
            prev,
            signer.key_id,
        )
        digest = draft.compute_hash()
        sql(
            home,
            "UPDATE custody_events SET detail = :d, prev_hash = :p, hash = :h, key_id = :k, "
            "signature = :g WHERE uuid = :u",
            d=json.dumps(detail),
            p=prev,
            h=digest,
            k=signer.key_id,
            g=signer.sign(digest.encode()),
            u=uuid,
        )
        prev = digest
    return signer.key_id


def test_chain_resigned_with_a_new_key_fails_verify(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Forged claims under a freshly registered key: the key is not pinned, the checkpoint is
    refused, and the re-signed chain is named."""
    victim = items(home)[0]
    new_key = _resign_with_new_key(home, victim)
    code, _, err = run(capsys, "custody", "checkpoint")
    assert code == 2
    assert "not trusted" in err or "not pinned" in err
    code, _, err = run(capsys, "custody", "verify")
    assert code == 1
    assert f"item {victim[:12]}: event #1" in err
    assert f"signed by key {new_key[:16]}…, which is not a pinned installation key" in err


def test_resigned_chain_is_broken_in_show_and_on_the_item_report(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What an analyst reads agrees with `custody verify`: `evidence show` and the item report
    behind the review page and the exports check the chain under the pinned keys, so a chain
    re-signed with a key registered only in the database is not shown as verified."""
    from verification.core.config import load_settings
    from verification.pipeline import open_context
    from verification.pipeline.records import item_report
    from verification.pipeline.trust import forget_pinned_keys

    victim, intact = items(home)[0], items(home)[1]
    new_key = _resign_with_new_key(home, victim)
    forget_pinned_keys()
    code, out, _ = run(capsys, "show", victim)
    assert "BROKEN" in out and "not a pinned installation key" in out
    ctx = open_context(load_settings())
    try:
        custody = item_report(ctx, victim)["custody"]
        assert custody["verified"] is False
        assert f"signed by key {new_key[:16]}" in custody["problem"]
        assert item_report(ctx, intact)["custody"]["verified"] is True
    finally:
        ctx.engine.dispose()


def test_anchor_forged_with_a_new_key_is_not_trusted(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The attacker writes the next anchor themselves with the new key: it is not trusted."""
    victim = items(home)[0]
    _resign_with_new_key(home, victim)
    signer = load_key(home / "keys" / "installation.pem")
    docs = [json.loads(p.read_text()) for p in sorted(anchor_dir(home).glob("*.json"))]
    from verification.ledger.anchors import anchor_hash

    forged = sign_anchor(
        signer,
        {
            "seq": len(docs),
            "prev": anchor_hash(docs[-1]),
            "kind": "rotation",
            "created_at": "2026-01-01T00:00:00.000000Z",
            "rotation": {"old": docs[0]["key_id"], "new": signer.key_id, "public_key": "x"},
            "trusted_keys": {signer.key_id: signer.public_pem},
        },
    )
    store(home).put(anchor_key(len(docs)), io.BytesIO(json.dumps(forged).encode()))
    code, _, err = run(capsys, "custody", "verify")
    assert code == 1
    assert "anchor #2: signed by key" in err and "do not trust" in err


def anchor_dir(home: Path) -> Path:
    return home / "store" / "objects" / "checkpoints" / "anchors"


def test_rotation_signed_by_the_old_key_is_accepted(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The legitimate path: rotate-key anchors the new key, later events and checkpoints signed
    by it verify, and the events signed before stay valid."""
    new_path = tmp_path / "new.pem"
    code, out, err = run(capsys, "custody", "rotate-key", str(new_path))
    assert "replaces" in out
    assert code == 0, err
    monkeypatch.setenv("EVIDENCE_KEY_PATH", str(new_path))
    path = tmp_path / "p9.jpg"
    path.write_bytes(photo(9))
    assert main(["submit", str(path), "--case", "case-2"]) == 0
    assert main(["ingest", "--no-progress"]) == 0
    assert run(capsys, "custody", "checkpoint")[0] == 0
    code, _, err = run(capsys, "custody", "verify")
    assert code == 0, err


# Attacker with database, key and a bucket without Object Lock ---------------------------------


def test_removed_anchor_is_a_gap_in_the_sequence(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Deleting an anchor from a bucket without Object Lock leaves a gap that verify names."""
    assert run(capsys, "custody", "checkpoint")[0] == 0
    (anchor_dir(home) / "0000000001.json").unlink()
    code, _, err = run(capsys, "custody", "verify")
    assert code == 1
    assert "gap in the checkpoint sequence: expected anchor #1, found #2" in err


def test_repinned_store_is_caught_only_by_the_operator_setting(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With every anchor deleted and a new pin written by the attacker's key, the store agrees
    with itself; EVIDENCE_TRUSTED_KEYS (kept off the database host) still refuses it."""
    original = load_key(home / "keys" / "installation.pem").key_id
    victim = items(home)[0]
    _resign_with_new_key(home, victim)
    for path in anchor_dir(home).glob("*"):
        path.unlink()
    sql(home, "DELETE FROM checkpoints")
    assert main(["custody", "checkpoint"]) == 0  # re-pins the attacker's key
    capsys.readouterr()
    monkeypatch.setenv("EVIDENCE_TRUSTED_KEYS", json.dumps([original]))
    code, _, err = run(capsys, "custody", "verify")
    assert code == 1
    assert "anchor #0 pins a key that is not in EVIDENCE_TRUSTED_KEYS" in err
