"""Exports hand a case over: originals byte for byte, their records, chains, keys and checkpoint."""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import re
from fractions import Fraction
from pathlib import Path

import bagit
import pytest

from tests.helpers import init_context, make_settings, photo
from verification import pipeline
from verification.core.claims import Claims
from verification.exports import (
    ExportError,
    RedactionUnsupported,
    export_case,
    redact_bytes,
)
from verification.exports.verify import verify_export
from verification.pipeline import Context, vault_key
from verification.pipeline.submission import submit_file

KYIV = (50.4501, 30.5234, 179.0)
SCHEMA = Path(__file__).resolve().parents[2] / "docs" / "export-schema.json"


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    """An initialised home with two photos in case-1 and one in case-2."""
    context = init_context(make_settings(tmp_path / "home"))
    submit(context, tmp_path, "a.jpg", photo(1, taken="2024:03:14 11:20:05", gps=KYIV), "case-1")
    submit(context, tmp_path, "b.jpg", photo(2), "case-1")
    submit(context, tmp_path, "c.jpg", photo(3), "case-2")
    pipeline.ingest(context, workers=1)
    return context


def submit(
    ctx: Context, tmp_path: Path, name: str, data: bytes, case: str, **claims: object
) -> str:
    path = tmp_path / "uploads" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return submit_file(ctx.store, path, Claims(case, **claims)).sha256  # type: ignore[arg-type]


def uploads(tmp_path: Path) -> dict[str, bytes]:
    """Submitted bytes by SHA-256."""
    files = (tmp_path / "uploads").iterdir()
    return {hashlib.sha256(p.read_bytes()).hexdigest(): p.read_bytes() for p in files}


def index(bag: Path) -> dict[str, object]:
    return json.loads((bag / "evidence/manifest.json").read_text())


# ---------------------------------------------------------------------------------------------
# BagIt


def test_bag_holds_the_originals_byte_for_byte_and_validates(ctx: Context, tmp_path: Path) -> None:
    """The payload is each original exactly as received; bagit and our verifier accept the bag."""
    bag = export_case(ctx, "case-1", "bagit", tmp_path / "out", "Ana")
    bagit.Bag(str(bag)).validate()
    assert verify_export(bag).ok
    sent = uploads(tmp_path)
    originals = sorted((bag / "data/originals").iterdir())
    assert len(originals) == 2
    for path in originals:
        sha = path.name.split(".")[0]
        assert path.read_bytes() == sent[sha]
        assert path.suffix == ".jpg"


def test_bag_lists_every_tag_file_in_both_tag_manifests(ctx: Context, tmp_path: Path) -> None:
    """Records, chains, keys and the checkpoint are tag files covered by sha256 and sha512."""
    bag = export_case(ctx, "case-1", "bagit", tmp_path / "out", "Ana")
    for alg in ("sha256", "sha512"):
        listed = {
            line.split(maxsplit=1)[1]
            for line in (bag / f"tagmanifest-{alg}.txt").read_text().splitlines()
        }
        on_disk = {
            p.relative_to(bag).as_posix()
            for p in bag.rglob("*")
            if p.is_file()
            and not p.name.startswith("tagmanifest-")
            and "data/" not in p.relative_to(bag).as_posix()[:5]
        }
        assert on_disk == listed
        assert "evidence/manifest.json" in listed
        assert "evidence/checkpoint/checkpoint.json" in listed
        assert any(name.startswith("evidence/keys/") for name in listed)


def test_bag_info_names_case_analyst_and_export_time(ctx: Context, tmp_path: Path) -> None:
    """bag-info.txt says which case, who exported it, when, and under which id."""
    bag = export_case(ctx, "case-1", "bagit", tmp_path / "out", "Ana Analyst", organization="Org")
    info = bagit.Bag(str(bag)).info
    meta = index(bag)["export"]
    assert info["Case-Id"] == "case-1"
    assert info["Exported-By"] == "Ana Analyst"
    assert info["Export-Time"] == meta["created_at"]  # type: ignore[index]
    assert info["Export-Id"] == meta["id"]  # type: ignore[index]
    assert info["Source-Organization"] == "Org"
    assert info["Payload-Oxum"].endswith(".2")


def test_package_contains_its_own_export_event(ctx: Context, tmp_path: Path) -> None:
    """Each chain in the bag ends with this export's event, which names the payload's Oxum."""
    bag = export_case(ctx, "case-1", "bagit", tmp_path / "out", "Ana")
    export_id = index(bag)["export"]["id"]  # type: ignore[index]
    oxum = bagit.Bag(str(bag)).info["Payload-Oxum"]
    for chain_file in (bag / "evidence/custody").iterdir():
        last = json.loads(chain_file.read_text())["events"][-1]
        assert last["type"] == "export"
        assert last["detail"]["export"] == export_id
        assert last["detail"]["payload_oxum"] == oxum
        assert last["detail"]["case"] == "case-1"
        assert {"type": "person", "name": "Ana"} in last["agents"]


def test_chain_files_are_canonical_json(ctx: Context, tmp_path: Path) -> None:
    """Chains are written as RFC 8785 canonical JSON, the form their hashes are computed over."""
    import rfc8785

    bag = export_case(ctx, "case-1", "bagit", tmp_path / "out", "Ana")
    for chain_file in (bag / "evidence/custody").iterdir():
        raw = chain_file.read_bytes()
        assert rfc8785.dumps(json.loads(raw)) == raw


def test_every_exported_item_gets_one_export_event(ctx: Context, tmp_path: Path) -> None:
    """Only the case's items get an export event, one each."""
    bag = export_case(ctx, "case-1", "bagit", tmp_path / "out", "Ana")
    exported = {item["sha256"] for item in index(bag)["items"]}  # type: ignore[attr-defined]
    for sha in ctx.ledger.items():
        exports = [e for e in ctx.ledger.events(sha) if e.type == "export"]
        assert len(exports) == (1 if sha in exported else 0)
    assert ctx.ledger.verify().ok


def test_item_resubmitted_to_the_case_is_exported_and_flagged(ctx: Context, tmp_path: Path) -> None:
    """An item first seen in another case but submitted to this one too is included, noted."""
    (tmp_path / "again").mkdir()
    copy = tmp_path / "again" / "c-again.jpg"
    copy.write_bytes(photo(3))
    submit_file(ctx.store, copy, Claims("case-1"))
    pipeline.ingest(ctx, workers=1)
    bag = export_case(ctx, "case-1", "bagit", tmp_path / "out", "Ana")
    items = index(bag)["items"]
    assert len(items) == 3  # type: ignore[arg-type]
    assert [i["other_cases"] for i in items if i["other_cases"]] == [["case-2"]]  # type: ignore[attr-defined]


def test_corrupted_vault_copy_stops_the_export(ctx: Context, tmp_path: Path) -> None:
    """A vault copy that fails its SHA-256 is never exported, and no package is left behind."""
    sha = next(iter(uploads(tmp_path)))
    vault_file = ctx.settings.resolved_store_path / "objects" / vault_key(sha)
    vault_file.chmod(0o644)
    data = bytearray(vault_file.read_bytes())
    data[100] ^= 0xFF
    vault_file.write_bytes(bytes(data))
    out = tmp_path / "out"
    with pytest.raises(ExportError, match="fixity failure"):
        export_case(ctx, "case-1" if sha in _case(ctx, "case-1") else "case-2", "bagit", out, "Ana")
    assert list(out.iterdir()) == []


def _case(ctx: Context, case: str) -> list[str]:
    from verification.exports import case_items

    return case_items(ctx.engine, case)


def test_unknown_case_is_an_error(ctx: Context, tmp_path: Path) -> None:
    """Exporting a case without items fails clearly and records nothing."""
    with pytest.raises(ExportError, match="has no items"):
        export_case(ctx, "no-such-case", "bagit", tmp_path / "out", "Ana")


def test_export_needs_a_named_analyst(ctx: Context, tmp_path: Path) -> None:
    """The exporting person is part of the custody record: a blank name is refused."""
    with pytest.raises(ExportError, match="analyst"):
        export_case(ctx, "case-1", "bagit", tmp_path / "out", "  ")


# ---------------------------------------------------------------------------------------------
# Redaction


def sensitive_exif() -> bytes:
    """EXIF with GPS, a body serial number, the owner's name and the artist."""
    from PIL import Image

    exif = Image.Exif()
    exif[0x010F] = "Fairphone"
    exif[0x013B] = "Owner Person"
    exif[0x0112] = 6
    sub = exif.get_ifd(0x8769)
    sub[0xA430] = "Camera Owner"
    sub[0xA431] = "SN-123456"
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "N", (Fraction(50), Fraction(27), Fraction(9, 25))
    gps[3], gps[4] = "E", (Fraction(30), Fraction(31), Fraction(606, 25))
    return exif.tobytes()


XMP = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF/></x:xmpmeta>'


def jpeg_with_everything() -> bytes:
    """A JPEG with EXIF (GPS, serial, owner), XMP, a comment and a trailer after EOI."""
    from verification.media.samples import jpeg, scene

    data = jpeg(scene(5, size=(320, 240)), sensitive_exif())
    xmp = b"http://ns.adobe.com/xap/1.0/\x00" + XMP
    app1 = b"\xff\xe1" + (len(xmp) + 2).to_bytes(2, "big") + xmp
    comment = b"taken by Owner Person"
    com = b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment
    return data[:2] + app1 + com + data[2:] + b"TRAILER with owner name"


def assert_clean(data: bytes) -> None:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        exif = image.getexif()
        assert not exif.get_ifd(0x8825)
        tags = set(exif) | set(exif.get_ifd(0x8769))
        assert not tags & {0x013B, 0xA430, 0xA431}
    for needle in (b"Owner", b"SN-123456", b"xmpmeta"):
        assert needle not in data


def pixels(data: bytes) -> bytes:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB").tobytes()


def test_jpeg_redaction_drops_metadata_and_keeps_image_data_unchanged() -> None:
    """EXIF, XMP, comments and trailers go; the compressed image data is kept byte for byte."""
    original = jpeg_with_everything()
    result = redact_bytes(original, "jpeg")
    assert_clean(result.data)
    assert result.method == "jpeg-segments-dropped"
    sos = original.index(b"\xff\xda")
    assert original[sos : original.rindex(b"\xff\xd9") + 2] in result.data
    assert pixels(result.data) == pixels(original)


def test_jpeg_redaction_keeps_orientation_only() -> None:
    """The picture still displays upright: Orientation is the one EXIF tag kept."""
    from PIL import Image

    result = redact_bytes(jpeg_with_everything(), "jpeg")
    with Image.open(io.BytesIO(result.data)) as image:
        assert dict(image.getexif()) == {0x0112: 6}


def test_png_redaction_drops_text_and_exif_chunks() -> None:
    """PNG eXIf and text chunks are dropped byte-wise, pixels unchanged."""
    from PIL import PngImagePlugin

    from verification.media.samples import scene

    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "Owner Person")
    info.add_itxt("XML:com.adobe.xmp", XMP.decode())
    out = io.BytesIO()
    scene(6, size=(64, 48)).save(out, format="PNG", pnginfo=info, exif=sensitive_exif())
    result = redact_bytes(out.getvalue(), "png")
    assert_clean(result.data)
    assert pixels(result.data) == pixels(out.getvalue())


def test_webp_redaction_drops_exif_and_xmp_chunks() -> None:
    """WebP EXIF and XMP chunks are dropped and the container stays valid."""
    from verification.media.samples import scene

    out = io.BytesIO()
    scene(7, size=(64, 48)).save(out, format="WEBP", lossless=True, exif=sensitive_exif(), xmp=XMP)
    assert b"SN-123456" in out.getvalue()
    result = redact_bytes(out.getvalue(), "webp")
    assert_clean(result.data)
    assert pixels(result.data) == pixels(out.getvalue())


def test_tiff_redaction_resaves_pixels_without_tags() -> None:
    """TIFF is re-saved losslessly without its GPS, serial and owner tags."""
    from verification.media.samples import scene

    out = io.BytesIO()
    scene(8, size=(64, 48)).save(out, format="TIFF", exif=sensitive_exif())
    assert b"SN-123456" in out.getvalue()
    result = redact_bytes(out.getvalue(), "tiff")
    assert_clean(result.data)
    assert pixels(result.data) == pixels(out.getvalue())


def test_formats_without_redaction_are_refused() -> None:
    """Videos and other formats raise RedactionUnsupported instead of a half-redacted copy."""
    with pytest.raises(RedactionUnsupported):
        redact_bytes(b"\x00\x00\x00\x18ftypmp42", "mp4")


def test_redacted_copies_sit_next_to_the_sealed_originals(ctx: Context, tmp_path: Path) -> None:
    """A redacted package keeps the originals and adds clean copies, each with a redaction event."""
    sha = submit(ctx, tmp_path, "d.jpg", jpeg_with_everything(), "case-3")
    pipeline.ingest(ctx, workers=1)
    bag = export_case(ctx, "case-3", "bagit", tmp_path / "out", "Ana", redact=True)
    assert verify_export(bag).ok
    assert (bag / f"data/originals/{sha}.jpg").read_bytes() == jpeg_with_everything()
    copy = (bag / f"data/redacted/{sha}-redacted.jpg").read_bytes()
    assert_clean(copy)
    event = next(e for e in ctx.ledger.events(sha) if e.type == "redaction")
    assert event.outcome == "success"
    assert event.detail["original_sha256"] == sha
    assert event.detail["derivative_sha256"] == hashlib.sha256(copy).hexdigest()
    assert index(bag)["items"][0]["redacted"] == [f"data/redacted/{sha}-redacted.jpg"]  # type: ignore[index]


def test_redacting_twice_records_one_redaction_event(ctx: Context, tmp_path: Path) -> None:
    """The same copy made again is the same derivative: its event is not repeated."""
    sha = submit(ctx, tmp_path, "d.jpg", jpeg_with_everything(), "case-3")
    pipeline.ingest(ctx, workers=1)
    export_case(ctx, "case-3", "bagit", tmp_path / "out", "Ana", redact=True)
    export_case(ctx, "case-3", "bagit", tmp_path / "out", "Ana", redact=True)
    assert [e.type for e in ctx.ledger.events(sha)].count("redaction") == 1


# ---------------------------------------------------------------------------------------------
# HTML and JSON


def hostile_case(ctx: Context, tmp_path: Path) -> str:
    """A photo whose EXIF and claims carry markup, as an attacker would send."""
    from verification.media.samples import exif_bytes, jpeg, scene

    data = jpeg(
        scene(9, size=(320, 240)),
        exif_bytes(make='<script>alert("x")</script>', model="<img src=x onerror=alert(1)>"),
    )
    sha = submit(
        ctx, tmp_path, "h.jpg", data, "case-h", submitter="<b>who</b>", note="</td><script>"
    )
    pipeline.ingest(ctx, workers=1)
    return sha


def test_html_report_is_self_contained_and_escapes_everything(ctx: Context, tmp_path: Path) -> None:
    """No script, no external asset; markup from EXIF and claims is shown as text."""
    hostile_case(ctx, tmp_path)
    path = export_case(ctx, "case-h", "html", tmp_path / "out", "Ana")
    page = path.read_text()
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "<img src=x" not in page
    assert "Content-Security-Policy" in page
    assert re.findall(r"""(?:src|href)=["'](?!data:)""", page) == []
    assert "data:image/jpeg;base64," in page
    assert "@media print" in page


def test_html_export_records_its_sha256_in_custody(ctx: Context, tmp_path: Path) -> None:
    """A report's export event, recorded after writing, names the file's SHA-256."""
    path = export_case(ctx, "case-1", "html", tmp_path / "out", "Ana")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    for sha in _case(ctx, "case-1"):
        last = ctx.ledger.events(sha)[-1]
        assert last.type == "export"
        assert last.detail["sha256"] == digest
        assert last.detail["format"] == "html"


def test_json_export_validates_against_the_schema(ctx: Context, tmp_path: Path) -> None:
    """The JSON export follows docs/export-schema.json."""
    import jsonschema

    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    hostile_case(ctx, tmp_path)
    for case in ("case-1", "case-h"):
        document = json.loads(export_case(ctx, case, "json", tmp_path / "out", "Ana").read_text())
        jsonschema.Draft202012Validator(schema).validate(document)
        assert document["items"][0]["custody"][0]["type"] == "ingestion"


def test_json_export_chains_verify_offline(ctx: Context, tmp_path: Path) -> None:
    """The chains and keys in a JSON export verify without the database."""
    from verification.ledger.custody import CustodyEvent, verify_chain
    from verification.ledger.signing import key_id

    document = json.loads(export_case(ctx, "case-1", "json", tmp_path / "out", "Ana").read_text())
    keys = {key_id(k["pem"]): k["pem"] for k in document["public_keys"]}
    for item in document["items"]:
        events = [CustodyEvent.from_dict(e) for e in item["custody"]]
        assert verify_chain(item["sha256"], events, keys) is None


def bad_gps_photo(seed: int, tag: int, value: object) -> bytes:
    """A photo whose EXIF GPS holds one bad value (latitude 123, or hemisphere 'X')."""
    from PIL import Image

    from verification.media.samples import exif_bytes, jpeg, scene

    exif = Image.Exif()
    exif.load(exif_bytes(taken="2024:03:14 11:20:05", offset="+02:00", gps=KYIV))
    exif.get_ifd(0x8825)[tag] = value
    return jpeg(scene(seed, size=(320, 240)), exif.tobytes())


def test_unusable_gps_reaches_no_export_report_or_distance(ctx: Context, tmp_path: Path) -> None:
    """Latitude 123 and ref 'X': flagged, no lat/lon, no distance or place, none in any export."""
    from verification.pipeline.records import item_report, render_item_text

    photos = {
        "lat-123.jpg": bad_gps_photo(20, 2, (Fraction(123), Fraction(0), Fraction(0))),
        "ref-x.jpg": bad_gps_photo(21, 1, "X"),
    }
    claimed = {"lat": 50.45, "lon": 30.52}
    shas = [submit(ctx, tmp_path, n, d, "case-gps", **claimed) for n, d in photos.items()]
    pipeline.ingest(ctx, workers=1)
    document = json.loads(export_case(ctx, "case-gps", "json", tmp_path / "out", "Ana").read_text())
    page = export_case(ctx, "case-gps", "html", tmp_path / "out", "Ana").read_text()
    assert "50.4501" not in page and "123.000000" not in page
    assert page.count("unusable, not used (gps-invalid; exif)") == 2
    for item in document["items"]:
        record = item["record"]
        gps = record["metadata"]["gps"]
        assert (gps["lat"], gps["lon"], gps["valid"]) == (None, None, False)
        assert gps["invalid_reason"] == "gps-invalid"
        (sub,) = record["submissions"]
        geolocation = sub["geolocation"]
        assert geolocation["observed"] is None
        assert (geolocation["distance_km"], geolocation["place"]) == (None, None)
        codes = {f["code"] for f in record["findings"]}
        assert {"gps-invalid", "no-location-in-file"} <= codes
        assert not codes & {"location-matches-claim", "location-contradicts-claim"}
    for sha in shas:
        text = render_item_text(item_report(ctx, sha))
        assert "gps       unusable, not used (gps-invalid; exif)" in text
        assert "50.4501" not in text and "distance" not in text


# ---------------------------------------------------------------------------------------------
# CLI


def run_cli(settings: object, argv: list[str]) -> int:
    from verification.cli.exports import register

    parser = argparse.ArgumentParser(prog="evidence")
    sub = parser.add_subparsers(dest="command", required=True)
    commands: dict[str, object] = {}
    register(sub, commands)  # type: ignore[arg-type]
    args = parser.parse_args(argv)
    return int(commands[args.command](settings, args))  # type: ignore[operator]


def test_cli_exports_and_verifies(
    ctx: Context, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`evidence export` writes a package that `evidence verify-export` accepts (exit 0)."""
    out = tmp_path / "out"
    assert (
        run_cli(
            ctx.settings,
            ["export", "case-1", "--format", "bagit", "--out", str(out), "--analyst", "Ana"],
        )
        == 0
    )
    bag = next(out.iterdir())
    assert run_cli(ctx.settings, ["verify-export", str(bag)]) == 0
    printed = capsys.readouterr().out
    assert "package verified: 2 item(s)" in printed


def test_extension_module_is_registered() -> None:
    """The export commands are contributed through verification.cli.extensions."""
    from verification.cli.extensions import MODULES

    assert "verification.cli.exports" in MODULES
