"""Signed exports: an edited record with regenerated BagIt manifests, an edited JSON export and a
package checked against the sender's key fingerprint are each caught and named."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import bagit
import pytest

from tests.helpers import init_context, make_settings, photo
from verification import pipeline
from verification.cli.main import main
from verification.core.claims import Claims
from verification.exports import export_case
from verification.exports.verify import verify_export
from verification.exports.verify_json import verify_json_export
from verification.pipeline.submission import submit_file

Edit = Callable[[dict[str, Any]], None]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, str]]:
    """A BagIt package and a JSON export of one case of two photos, and the installation key id."""
    tmp = tmp_path_factory.mktemp("signed")
    ctx = init_context(make_settings(tmp / "home"))
    for seed in (1, 2):
        path = tmp / f"p{seed}.jpg"
        path.write_bytes(photo(seed, gps=(50.45, 30.52, 179.0)))
        submit_file(ctx.store, path, Claims("case-1", "w1"))
    pipeline.ingest(ctx, workers=1)
    bag = export_case(ctx, "case-1", "bagit", tmp / "out", "Ana")
    document = export_case(ctx, "case-1", "json", tmp / "out", "Ana")
    assert ctx.ledger.signer is not None
    yield bag, document, ctx.ledger.signer.key_id
    ctx.engine.dispose()


@pytest.fixture
def bag(exported: tuple[Path, Path, str], tmp_path: Path) -> Path:
    return Path(shutil.copytree(exported[0], tmp_path / "bag"))


@pytest.fixture
def document(exported: tuple[Path, Path, str], tmp_path: Path) -> Path:
    return Path(shutil.copy(exported[1], tmp_path / "export.json"))


def _status(record: dict[str, Any]) -> None:
    record["item"]["status"] = record["record"]["status"] = "inconsistent"


def _critical(record: dict[str, Any]) -> None:
    record["record"]["findings"].append(
        {"code": "gps-far-from-claim", "severity": "critical", "message": "x", "evidence": {}}
    )


def _gps(record: dict[str, Any]) -> None:
    record["record"]["metadata"]["gps"]["lat"] = 48.85


def _decision(record: dict[str, Any]) -> None:
    record["decisions"].append({"decision": "rejected", "analyst": "Ana", "seq": 99})


EDITS = {"status": _status, "critical-finding": _critical, "gps": _gps, "decision": _decision}


def test_untouched_exports_verify_under_the_expected_key(
    exported: tuple[Path, Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Both exports verify, also when the recipient names the sender's key fingerprint."""
    bag, document, key = exported
    assert verify_export(bag, expect_keys=[key]).ok
    assert verify_json_export(document, expect_keys=[key]).ok
    assert main(["verify-export", str(bag), "--expect-key", key]) == 0
    assert main(["verify-export", str(document), "--expect-key", key]) == 0
    assert "package verified" in capsys.readouterr().out


@pytest.mark.parametrize("edit", EDITS.values(), ids=EDITS.keys())
def test_edited_record_with_regenerated_manifests_is_named(
    bag: Path, edit: Edit, capsys: pytest.CaptureFixture[str]
) -> None:
    """A record edited and the bag's manifests regenerated with bagit-python fails, naming the
    record file (its hash is signed in the item's chain)."""
    record_file = sorted((bag / "evidence/records").iterdir())[0]
    record = json.loads(record_file.read_text())
    edit(record)
    record_file.write_text(json.dumps(record, indent=2, sort_keys=True))
    bagit.Bag(str(bag)).save(manifests=True)
    assert bagit.Bag(str(bag)).is_valid()
    report = verify_export(bag)
    rel = f"evidence/records/{record_file.name}"
    assert report.first_failure == (
        f"records: {rel} differs from the record signed in its custody chain (edited after export)"
    )
    assert main(["verify-export", str(bag)]) == 1
    assert rel in capsys.readouterr().err


def test_edited_bag_info_with_regenerated_manifests_fails_the_signature(bag: Path) -> None:
    """A tag file no other check reads (bag-info.txt) is still under the signed tag manifests."""
    info = bag / "bag-info.txt"
    info.write_text(info.read_text().replace("Contact-Name: Ana", "Contact-Name: Eve"))
    bagit.Bag(str(bag)).save()
    assert verify_export(bag).first_failure == (
        "signature: tagmanifest-sha256.txt is not the signed tag manifest (regenerated after export)"
    )


def test_package_without_its_signature_fails(bag: Path) -> None:
    """Removing the signature file is not a way around it."""
    (bag / "tagmanifest-signature.json").unlink()
    assert verify_export(bag).first_failure == (
        "signature: tagmanifest-signature.json is missing: the tag manifests are not signed"
    )


def test_package_under_another_key_fails_the_fingerprint_check(
    exported: tuple[Path, Path, str],
) -> None:
    """A recipient expecting another fingerprint does not accept the package (a forger who
    re-signs a whole package with a key of their own is refused the same way)."""
    bag, document, _key = exported
    other = "0" * 64
    assert verify_export(bag, expect_keys=[other]).first_failure == (
        "content: no public key in the package is an expected key"
    )
    assert not verify_json_export(document, expect_keys=[other]).ok


@pytest.mark.parametrize("edit", EDITS.values(), ids=EDITS.keys())
def test_edited_json_export_names_the_item(document: Path, edit: Edit) -> None:
    """A JSON export's item entries are signed: an edited one is named by its item."""
    data = json.loads(document.read_text())
    edit(data["items"][1])
    document.write_text(json.dumps(data))
    sha = data["items"][1]["sha256"]
    assert verify_json_export(document).first_failure == (
        f"records: item {sha[:12]}'s entry: signature does not verify (edited after export)"
    )


def test_edited_json_export_header_fails_the_document_signature(document: Path) -> None:
    """The document as a whole is signed too (who exported, when)."""
    data = json.loads(document.read_text())
    data["export"]["analyst"] = "Eve"
    document.write_text(json.dumps(data))
    assert verify_json_export(document).first_failure == (
        "signature: the export document: signature does not verify (edited after export)"
    )


def test_record_without_a_signed_hash_or_with_other_decisions_is_refused() -> None:
    """A record not covered by its export event, or whose decisions differ from the chain's
    review events, is refused (each with its own reason)."""
    from types import SimpleNamespace

    from verification.exports.signed import canonical_sha256, record_problem

    review = SimpleNamespace(type="review", time="t", seq=1, uuid="u", detail={"decision": "ok"})
    record = {"decisions": [{"time": "t", "seq": 1, "uuid": "u", "decision": "rejected"}]}
    unsigned = SimpleNamespace(type="export", detail={"export": "x"})
    assert record_problem("r.json", record, [review, unsigned], "x") == (
        "r.json is not covered by a signed record hash in its custody chain"
    )
    signed = SimpleNamespace(
        type="export", detail={"export": "x", "record_sha256": canonical_sha256(record)}
    )
    assert record_problem("r.json", record, [review, signed], "x") == (
        "r.json: its decisions are not the signed review events of the chain"
    )


def test_json_export_re_signed_by_an_insider_still_needs_the_chains_decisions(
    exported: tuple[Path, Path, str], document: Path
) -> None:
    """Even re-signed with the installation key, an entry's decisions must be the chain's."""
    from verification.exports.signed import sign
    from verification.ledger.signing import load_key

    signer = load_key(exported[0].parents[1] / "home" / "keys" / "installation.pem")
    data = json.loads(document.read_text())
    entry = dict(data["items"][0])
    entry["decisions"] = [{"decision": "rejected"}]
    data["items"][0] = sign(signer, entry)
    document.write_text(json.dumps(sign(signer, data)))
    sha = entry["sha256"]
    assert verify_json_export(document).first_failure == (
        f"records: item {sha[:12]}: decisions are not the signed review events of its chain"
    )


def test_malformed_json_export_and_mismatched_key_id_fail(document: Path, tmp_path: Path) -> None:
    """Not an export, or a public key listed under another key id, is a one-line failure."""
    bad = tmp_path / "bad.json"
    bad.write_text("[]")
    assert verify_json_export(bad).first_failure == "content: bad.json is not a JSON export"
    data = json.loads(document.read_text())
    data["public_keys"][0]["key_id"] = "0" * 64
    document.write_text(json.dumps(data))
    assert verify_json_export(document).first_failure == (
        "content: a public key does not match its key id"
    )
