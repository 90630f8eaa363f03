"""An exported package verifies on its own, and each kind of tampering is named precisely."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import bagit
import pytest

from tests.helpers import init_context, make_settings, photo
from verification import pipeline
from verification.core.claims import Claims
from verification.exports import export_case
from verification.exports.layout import inclusion_proof, root_from_proof
from verification.exports.verify import verify_export
from verification.ledger.checkpoints import merkle_root
from verification.pipeline.submission import submit_file


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One exported package of two photos, never modified (tests tamper with copies)."""
    tmp = tmp_path_factory.mktemp("export")
    ctx = init_context(make_settings(tmp / "home"))
    for seed in (1, 2):
        path = tmp / f"p{seed}.jpg"
        path.write_bytes(photo(seed))
        submit_file(ctx.store, path, Claims("case-1"))
    pipeline.ingest(ctx, workers=1)
    yield export_case(ctx, "case-1", "bagit", tmp / "out", "Ana")
    ctx.engine.dispose()


@pytest.fixture
def bag(pristine: Path, tmp_path: Path) -> Path:
    """A fresh copy of the package for one test to tamper with."""
    return Path(shutil.copytree(pristine, tmp_path / "bag"))


def original(bag: Path) -> Path:
    return sorted((bag / "data/originals").iterdir())[0]


def chain_file(bag: Path) -> Path:
    return sorted((bag / "evidence/custody").iterdir())[0]


def resave_tag_manifests(bag: Path) -> None:
    """What a careful forger does after editing tag files: recompute the tag manifests."""
    bagit.Bag(str(bag)).save()


def failure(bag: Path) -> str:
    report = verify_export(bag)
    assert not report.ok
    assert report.first_failure is not None
    return report.first_failure


def test_untouched_package_verifies(bag: Path) -> None:
    """The package passes every check and bagit's own validation."""
    report = verify_export(bag)
    assert report.ok, report.failures
    assert report.items == 2
    assert report.events > 2
    assert report.checkpoint.startswith("verified")
    assert report.timestamp.startswith("pending")
    bagit.Bag(str(bag)).validate()


def test_flipped_byte_in_an_original_is_a_checksum_mismatch(bag: Path) -> None:
    """One changed byte in a payload file names the file and the algorithm."""
    target = original(bag)
    data = bytearray(target.read_bytes())
    data[500] ^= 0x01
    target.write_bytes(bytes(data))
    rel = target.relative_to(bag).as_posix()
    assert failure(bag).startswith(f"bag: checksum mismatch: {rel} (sha256 expected")


def test_added_payload_file_is_unlisted(bag: Path) -> None:
    """A file slipped into data/ is named as not in the manifest."""
    (bag / "data/originals/extra.jpg").write_bytes(b"\xff\xd8 not evidence")
    assert (
        failure(bag) == "bag: unlisted file data/originals/extra.jpg (not in manifest-sha256.txt)"
    )


def test_added_tag_file_is_unlisted(bag: Path) -> None:
    """bagit ignores unlisted tag files; the verifier does not."""
    (bag / "evidence/records/note.json").write_text("{}")
    assert (
        failure(bag)
        == "bag: unlisted tag file evidence/records/note.json (not in tagmanifest-sha256.txt)"
    )


def test_removed_payload_file_is_missing(bag: Path) -> None:
    """A deleted original is named as listed but missing."""
    target = original(bag)
    target.unlink()
    rel = target.relative_to(bag).as_posix()
    assert failure(bag) == f"bag: missing file {rel} (listed in manifest-sha256.txt)"


def test_deleted_manifest_is_named(bag: Path) -> None:
    """Both payload manifests are required; a deleted one is named."""
    (bag / "manifest-sha512.txt").unlink()
    assert failure(bag) == "bag: payload manifest manifest-sha512.txt is missing"


def test_deleted_tag_manifest_is_named(bag: Path) -> None:
    """Without a tag manifest the records and chains would be unprotected."""
    (bag / "tagmanifest-sha256.txt").unlink()
    assert failure(bag) == "bag: tag manifest tagmanifest-sha256.txt is missing"


def test_edited_custody_event_fails_the_tag_manifest(bag: Path) -> None:
    """An edited chain file no longer matches its tag-manifest checksum."""
    target = chain_file(bag)
    target.write_bytes(target.read_bytes().replace(b'"success"', b'"failure"', 1))
    rel = target.relative_to(bag).as_posix()
    assert failure(bag).startswith(f"bag: checksum mismatch: {rel}")


def test_edited_custody_event_with_resaved_manifests_names_the_event(bag: Path) -> None:
    """Even with recomputed manifests, the chain names the first edited event."""
    target = chain_file(bag)
    chain = json.loads(target.read_text())
    chain["events"][1]["outcome"] = "failure"
    target.write_text(json.dumps(chain))
    resave_tag_manifests(bag)
    reason = failure(bag)
    assert reason.startswith(f"custody: item {chain['item'][:12]}: event #2 (")
    assert "content changed" in reason


def test_swapped_public_key_is_an_unknown_signer(bag: Path) -> None:
    """A different key in the package cannot verify the installation's signatures."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    (key_file,) = (bag / "evidence/keys").iterdir()
    other = Ed25519PrivateKey.generate().public_key()
    pem = other.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    key_file.write_bytes(pem)
    resave_tag_manifests(bag)
    reason = failure(bag)
    assert reason.startswith("custody: item ")
    assert ": event #1 (" in reason
    assert reason.endswith(f"signed by unknown key {key_file.stem[:16]}…")


def test_path_traversal_in_a_manifest_is_refused(bag: Path) -> None:
    """A manifest line pointing outside the bag is refused before anything is read."""
    manifest = bag / "manifest-sha256.txt"
    manifest.write_text(manifest.read_text() + f"{'0' * 64}  data/../../outside.txt\n")
    assert failure(bag).startswith("bag: manifest-sha256.txt line 3: unsafe path")
    assert "(path traversal)" in failure(bag)


def test_absolute_path_in_a_tag_manifest_is_refused(bag: Path) -> None:
    """Absolute paths in tag manifests are refused too."""
    manifest = bag / "tagmanifest-sha256.txt"
    manifest.write_text(f"{'0' * 64}  /etc/passwd\n" + manifest.read_text())
    assert (
        failure(bag)
        == "bag: tagmanifest-sha256.txt line 1: unsafe path '/etc/passwd' (absolute path)"
    )


def test_wrong_payload_oxum_is_named(bag: Path) -> None:
    """A Payload-Oxum that does not match the payload is named with both values."""
    info = bag / "bag-info.txt"
    text = info.read_text()
    oxum = next(
        line.split(": ")[1] for line in text.splitlines() if line.startswith("Payload-Oxum")
    )
    info.write_text(text.replace(oxum, "1.2"))
    assert (
        failure(bag) == f"bag: Payload-Oxum mismatch: bag-info.txt says 1.2, the payload is {oxum}"
    )


def test_removed_export_event_is_named(bag: Path) -> None:
    """Cutting the chain's last events (its export event) is noticed even though links hold."""
    target = chain_file(bag)
    chain = json.loads(target.read_text())
    chain["events"] = chain["events"][:-1]
    target.write_text(json.dumps(chain))
    resave_tag_manifests(bag)
    assert (
        failure(bag)
        == f"custody: item {chain['item'][:12]}: no export event for this export in its chain"
    )


def test_checkpoint_with_a_forged_head_is_named(bag: Path) -> None:
    """A checkpoint head changed in the package no longer leads to the signed root."""
    target = bag / "evidence/checkpoint/checkpoint.json"
    cp = json.loads(target.read_text())
    item = sorted(cp["items"])[0]
    cp["items"][item]["head"] = "0" * 64
    target.write_text(json.dumps(cp))
    resave_tag_manifests(bag)
    assert failure(bag) == (
        f"checkpoint: item {item[:12]}: inclusion proof does not lead to the checkpoint's Merkle root"
    )


def test_cli_exit_1_prints_the_first_failure(bag: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`evidence verify-export` exits 1 and prints the failure."""
    import argparse

    from verification.cli.exports import cmd_verify_export

    (bag / "manifest-sha512.txt").unlink()
    code = cmd_verify_export(None, argparse.Namespace(path=bag, tsa_roots=None))
    assert code == 1
    assert "FAILED bag: payload manifest manifest-sha512.txt is missing" in capsys.readouterr().err


@pytest.mark.parametrize("size", range(1, 10))
def test_inclusion_proofs_lead_to_the_ledgers_merkle_root(size: int) -> None:
    """Every leaf's audit path rebuilds custody.merkle_root, odd levels included."""
    heads = {f"{i:064x}": f"{i * 7:064x}" for i in range(size)}
    root = merkle_root(heads)
    for item in heads:
        proof = inclusion_proof(heads, item)
        assert root_from_proof(item, proof["head"], proof["index"], size, proof["path"]) == root
