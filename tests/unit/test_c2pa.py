"""C2PA manifests: summary of a signed file, absence, tampering, hostile bytes, no network."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import c2pa
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from PIL import Image

from tests.unit import test_c2pa_locate as built
from verification.checks import run_checks
from verification.core.config import Settings
from verification.media import analyse
from verification.media import c2pa as reader
from verification.media.c2pa import read_c2pa, summarise
from verification.media.c2pa_locate import C2PA_UUID, locate

SETTINGS = Settings(video_timeout=60)
SIGNER_ORG = "Example Newsroom"
GENERATOR = {"name": "evidence-tests", "version": "1.0"}
SUBMITTED = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
# A fixed validity window (no now()): wide enough for the signing SDK's date check.
NOT_BEFORE = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
NOT_AFTER = dt.datetime(2049, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Credentials:
    """A throwaway ES256 leaf certificate chain (leaf, then CA) and the leaf's key, as PEM."""

    chain: bytes
    key: bytes


def _name(common_name: str, org: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
        ]
    )


def _key_usage(*, sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=not sign,
        crl_sign=not sign,
        encipher_only=False,
        decipher_only=False,
    )


def _certificate(
    subject: x509.Name,
    issuer: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOT_BEFORE)
        .not_valid_after(NOT_AFTER)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(_key_usage(sign=not ca), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    )
    if not ca:
        # C2PA refuses self-signed signing certificates and wants a signing EKU on the leaf;
        # emailProtection is one of the EKUs its default trust configuration accepts.
        eku = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION])
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key())
        builder = builder.add_extension(eku, critical=False).add_extension(aki, critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture(scope="module")
def credentials() -> Credentials:
    """A CA and a leaf signed by it: the smallest chain c2pa-python signs with."""
    ca_key, leaf_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca_name = _name("Evidence Tests Root CA", "Evidence Tests CA")
    ca = _certificate(ca_name, ca_name, ca_key, ca_key, ca=True)
    leaf = _certificate(_name("Newsroom Signer", SIGNER_ORG), ca_name, leaf_key, ca_key, ca=False)
    pem = serialization.Encoding.PEM
    key = leaf_key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return Credentials(leaf.public_bytes(pem) + ca.public_bytes(pem), key)


def _plain_jpeg() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (180, 40, 40)).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def _sign(
    credentials: Credentials, source: bytes, mime: str, remote_url: str | None = None
) -> bytes:
    """``source`` with a manifest: opened from a parent ingredient, then edited."""
    signer = c2pa.Signer.from_info(
        c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, credentials.chain, credentials.key, None)
    )
    manifest = {
        "claim_generator_info": [GENERATOR],
        "assertions": [{"label": "c2pa.actions", "data": {"actions": [{"action": "c2pa.edited"}]}}],
    }
    settings = {"builder": {"thumbnail": {"enabled": False}, "intent": "edit"}}
    with c2pa.Context.from_dict(settings) as context:
        builder = c2pa.Builder(manifest, context)
    parent = {"title": "original", "relationship": "parentOf"}
    builder.add_ingredient(parent, mime, io.BytesIO(source))
    if remote_url:
        builder.set_no_embed()
        builder.set_remote_url(remote_url)
    signed = io.BytesIO()
    builder.sign(signer, mime, io.BytesIO(source), signed)
    return signed.getvalue()


@pytest.fixture(scope="module")
def signed_jpeg(credentials: Credentials) -> bytes:
    return _sign(credentials, _plain_jpeg(), "image/jpeg")


def _write(tmp_path: Path, data: bytes, name: str = "item.jpg") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_signed_jpeg_summary_names_signer_generator_and_actions(
    tmp_path: Path, signed_jpeg: bytes
) -> None:
    """A signed JPEG gives the signer, claim generator, actions and ingredient count."""
    summary = read_c2pa(_write(tmp_path, signed_jpeg), "image/jpeg")
    assert summary is not None
    assert summary["present"] is True
    assert summary["active_manifest"].startswith("urn:c2pa:")
    assert summary["claim_generator"] == "evidence-tests/1.0"
    assert summary["signer"] == SIGNER_ORG
    assert summary["actions"] == ["c2pa.opened", "c2pa.edited"]
    assert summary["ingredients"] == 1
    # Intact, but the throwaway CA is on no trust list: "valid", not "trusted".
    assert summary["validation_state"] == "valid"
    assert summary["validation_errors"] == ["signingCredential.untrusted"]
    assert summary["signed_at"] is None  # no timestamp authority offline


def test_plain_jpeg_has_no_manifest(tmp_path: Path) -> None:
    """A JPEG without C2PA data gives None."""
    assert read_c2pa(_write(tmp_path, _plain_jpeg()), "image/jpeg") is None


def test_tampered_image_data_reports_hash_mismatch(tmp_path: Path, signed_jpeg: bytes) -> None:
    """A byte of image data changed after signing: state invalid, data hash mismatch, no raise."""
    tampered = bytearray(signed_jpeg)
    tampered[signed_jpeg.rfind(b"\xff\xda") + 40] ^= 0xFF
    path = _write(tmp_path, bytes(tampered))
    summary = read_c2pa(path, "image/jpeg")
    assert summary is not None
    assert summary["validation_state"] == "invalid"
    assert "assertion.dataHash.mismatch" in summary["validation_errors"]
    assert path.read_bytes() == bytes(tampered)


def test_corrupt_manifest_is_present_with_error(tmp_path: Path, signed_jpeg: bytes) -> None:
    """A manifest store whose boxes are overwritten is present, with where and the SDK's text."""
    corrupt = bytearray(signed_jpeg)
    start = signed_jpeg.find(b"jumb") + 16
    corrupt[start : start + 16] = b"\xff" * 16
    summary = read_c2pa(_write(tmp_path, bytes(corrupt)), "image/jpeg")
    assert summary is not None
    assert (summary["present"], summary["error"]) == (True, "C2paError.Verify")
    assert summary["found_in"] == "JPEG APP11 JUMBF"
    assert summary["error_text"].startswith("Verify: ")


def _claim_without_algorithm(signed: bytes) -> bytes:
    """The claim's "alg" key renamed: c2pa-rs's own no_alg.jpg fixture has the same defect."""
    at = signed.index(b"calgfsha256", signed.index(b"c2pa.claim"))
    return signed[:at] + b"cxlg" + signed[at + 4 :]


def _claim_as_json_box(signed: bytes) -> bytes:
    """The claim's content box typed "json": how prerelease (pre-1.0) manifests stored it."""
    at = signed.index(b"cbor", signed.index(b"c2pa.claim"))
    return signed[:at] + b"json" + signed[at + 4 :]


@pytest.mark.parametrize(
    ("damage", "text"),
    [
        (_claim_without_algorithm, "Other: unknown algorithm"),
        (_claim_as_json_box, "Other: prerelease content detected"),
    ],
    ids=["no-alg", "prerelease"],
)
def test_manifest_the_sdk_cannot_read_is_present_from_the_container(
    tmp_path: Path, signed_jpeg: bytes, damage: Any, text: str
) -> None:
    """SDK error kind Other on a file with a C2PA store: present, with the SDK's text."""
    summary = read_c2pa(_write(tmp_path, damage(signed_jpeg)), "image/jpeg")
    assert summary == {
        "present": True,
        "error": "C2paError.Other",
        "error_text": text,
        "found_in": "JPEG APP11 JUMBF",
        "remote_url": None,
    }


@pytest.mark.parametrize(
    ("data", "name", "mime", "found_in"),
    [
        (built.jpeg(built.app11(built.jumbf())), "x.jpg", "image/jpeg", "JPEG APP11 JUMBF"),
        (built.png(b"caBX", b"\x00garbage" * 10), "x.png", "image/png", "PNG caBX chunk"),
        (
            built.mp4(built.box(b"uuid", C2PA_UUID + bytes(4) + b"manifest\x00" + b"junk" * 9)),
            "x.mp4",
            "video/mp4",
            "ISO BMFF uuid box",
        ),
    ],
    ids=["jpeg-app11", "png-caBX", "mp4-uuid"],
)
def test_garbage_store_is_an_invalid_manifest_finding(
    tmp_path: Path, data: bytes, name: str, mime: str, found_in: str
) -> None:
    """Hand-made C2PA boxes holding garbage: present, and a warning naming where and why."""
    summary = read_c2pa(_write(tmp_path, data, name), mime)
    assert summary is not None
    assert (summary["present"], summary["found_in"]) == (True, found_in)
    finding = _c2pa_finding(summary, "c2pa-manifest-invalid")
    assert finding.severity == "warning"
    assert finding.evidence["error_text"] == summary["error_text"]
    assert found_in in finding.message and "could not be read" in finding.message


def _nested_mp4(depth: int = 2000) -> bytes:
    inner = b""
    for level in range(depth):
        inner = built.box(b"moov" if level % 2 else b"trak", inner)
    return built.box(b"ftyp", b"isom\x00\x00\x02\x00isomiso2mp41") + inner


@pytest.mark.parametrize(
    ("data", "name", "mime"),
    [
        (b"II*\x00\x08\x00\x00\x00\x00\x00\x08\x00\x00\x00", "loop.tif", "image/tiff"),
        (_nested_mp4(), "nested.mp4", "video/mp4"),
    ],
    ids=["tiff-cyclic-ifd", "mp4-deeply-nested"],
)
def test_file_without_c2pa_that_trips_the_sdk_gets_no_finding(
    tmp_path: Path, data: bytes, name: str, mime: str
) -> None:
    """The SDK raises Other on these, but their containers hold no C2PA data: nothing said."""
    summary = read_c2pa(_write(tmp_path, data, name), mime)
    assert summary is not None
    assert (summary["present"], summary["error"]) == (False, "C2paError.Other")
    checks = run_checks(None, None, None, None, SUBMITTED, SETTINGS, c2pa=summary)
    assert not [f for f in checks.findings if f.code.startswith("c2pa")]


@pytest.mark.parametrize(
    "data",
    [b"", b"\x00" * 10, bytes(range(256)) * 40, b"\xff\xd8" + b"\x13\x37" * 2000],
    ids=["empty", "zeros", "noise", "jpeg-magic-then-noise"],
)
def test_garbage_bytes_give_an_error_summary(tmp_path: Path, data: bytes) -> None:
    """Bytes that are no asset give an error summary without a manifest, never an exception."""
    summary = read_c2pa(_write(tmp_path, data), "image/jpeg")
    assert summary is not None
    assert (summary["present"], summary["error"]) == (False, "C2paError.NotSupported")


def test_files_above_the_size_limit_are_not_read(
    tmp_path: Path, signed_jpeg: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file larger than MAX_BYTES is not handed to the SDK; its container still shows C2PA."""
    monkeypatch.setattr(reader, "MAX_BYTES", 100)
    summary = read_c2pa(_write(tmp_path, signed_jpeg), "image/jpeg")
    assert summary is not None
    assert (summary["present"], summary["error"]) == (True, "FileTooLarge")
    assert summary["found_in"] == "JPEG APP11 JUMBF"


@pytest.mark.parametrize("mime", ["application/pdf", "video/webm", "text/plain"])
def test_other_types_are_not_read(tmp_path: Path, signed_jpeg: bytes, mime: str) -> None:
    """Only photo and video types the SDK reads are looked at."""
    assert read_c2pa(_write(tmp_path, signed_jpeg), mime) is None


def test_python_sockets_are_not_used(
    tmp_path: Path, signed_jpeg: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reading a manifest works with every Python socket connect refused."""
    attempts: list[Any] = []

    def refuse(*args: Any, **kwargs: Any) -> None:
        attempts.append(args)
        msg = "network access in a test"
        raise OSError(msg)

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    summary = read_c2pa(_write(tmp_path, signed_jpeg), "image/jpeg")
    assert summary is not None
    assert summary["validation_state"] == "valid"
    assert attempts == []


@pytest.fixture
def listener() -> Iterator[tuple[str, list[int]]]:
    """A TCP listener on 127.0.0.1 that counts connections; yields its URL and the count."""
    server = socket.create_server(("127.0.0.1", 0))
    hits: list[int] = []

    def accept() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            hits.append(1)
            conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/manifest.c2pa", hits
    with contextlib.suppress(OSError):
        server.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
    server.close()
    thread.join(timeout=5)


def test_remote_manifest_is_not_fetched(
    tmp_path: Path, credentials: Credentials, listener: tuple[str, list[int]]
) -> None:
    """A file pointing to an online manifest is reported, and its URL is never contacted.

    The native SDK has its own HTTP client, so blocking Python sockets proves nothing for it;
    a loopback listener does, and the SDK with default settings is shown to connect to it.
    """
    url, hits = listener
    remote = _sign(credentials, _plain_jpeg(), "image/jpeg", remote_url=url)
    summary = read_c2pa(_write(tmp_path, remote), "image/jpeg")
    assert summary is not None
    assert (summary["present"], summary["remote_url"], summary["found_in"]) == (True, url, None)
    assert summary["error"] == "C2paError.Remote"
    finding = _c2pa_finding(summary, "c2pa-manifest-remote")
    assert finding.severity == "info"
    assert "not fetched (offline)" in finding.message and url in finding.message
    assert finding.evidence["remote_url"] == url
    assert hits == []
    with pytest.raises(c2pa.C2paError):  # control: default settings do fetch
        c2pa.Reader("image/jpeg", io.BytesIO(remote))
    assert hits


def test_summarise_reads_v1_generator_time_and_failures() -> None:
    """A v1 store: claim_generator string, timestamp, ingredients, failures from results."""
    store = {
        "active_manifest": "urn:c2pa:1",
        "manifests": {
            "urn:c2pa:1": {
                "claim_generator": "Camera/2.0 c2pa-rs/0.30",
                "signature_info": {"common_name": "Camera Signer", "time": "2024-05-01T10:00:00Z"},
                "ingredients": [{}, {}],
                "assertions": [
                    {"label": "c2pa.actions", "data": {"actions": [{"action": "c2pa.created"}]}},
                    {"label": "stds.schema-org.CreativeWork", "data": {}},
                ],
            }
        },
        "validation_state": "Trusted",
        "validation_results": {"activeManifest": {"failure": [{"code": "x.y"}, {"code": "x.y"}]}},
    }
    summary = summarise(store)
    assert summary["claim_generator"] == "Camera/2.0 c2pa-rs/0.30"
    assert summary["signer"] == "Camera Signer"
    assert summary["signed_at"] == "2024-05-01T10:00:00Z"
    assert summary["ingredients"] == 2
    assert summary["actions"] == ["c2pa.created"]
    assert summary["validation_state"] == "trusted"
    assert summary["validation_errors"] == ["x.y"]


def test_summarise_survives_a_store_of_the_wrong_shape() -> None:
    """Unexpected types in the store give empty fields, not an exception."""
    store: dict[str, Any] = {"active_manifest": "m", "manifests": {"m": {"assertions": 3}}}
    store["validation_status"] = "bad"
    summary = summarise(store)
    assert summary["actions"] == [] and summary["validation_errors"] == []
    assert summary["signer"] is None and summary["ingredients"] == 0


def test_error_name_keeps_only_the_kind() -> None:
    """The native message after the kind may quote the file, so it is dropped."""
    assert reader.error_name(c2pa.C2paError.Verify("Verify: content here")) == "C2paError.Verify"
    assert reader.error_name(c2pa.C2paError("no kind here")) == "C2paError"
    assert reader.error_name(ValueError("x")) == "ValueError"


def test_analyse_puts_the_summary_in_metadata_and_checks_report_it(
    tmp_path: Path, signed_jpeg: bytes
) -> None:
    """End to end: analyse() fills metadata["c2pa"] and run_checks reports the manifest."""
    result = analyse(_write(tmp_path, signed_jpeg), "jpeg", SETTINGS)
    assert result.metadata["c2pa"]["signer"] == SIGNER_ORG
    assert result.extractors["c2pa-python"] == reader.library_version()
    checks = run_checks(
        result.media,
        result.metadata,
        result.perceptual,
        None,
        SUBMITTED,
        SETTINGS,
        c2pa=result.metadata["c2pa"],
    )
    finding = next(f for f in checks.findings if f.code == "c2pa-manifest")
    assert finding.evidence["signer"] == SIGNER_ORG
    assert finding.evidence["validation_state"] == "valid"


def test_tampered_file_becomes_an_invalid_manifest_finding(
    tmp_path: Path, signed_jpeg: bytes
) -> None:
    """End to end: a file changed after signing gives c2pa-manifest-invalid."""
    tampered = bytearray(signed_jpeg)
    tampered[signed_jpeg.rfind(b"\xff\xda") + 40] ^= 0xFF
    result = analyse(_write(tmp_path, bytes(tampered)), "jpeg", SETTINGS)
    checks = run_checks(
        None, result.metadata, None, None, SUBMITTED, SETTINGS, c2pa=result.metadata["c2pa"]
    )
    finding = next(f for f in checks.findings if f.code == "c2pa-manifest-invalid")
    assert "assertion.dataHash.mismatch" in finding.evidence["validation_errors"]


def _c2pa_finding(summary: dict[str, Any], code: str) -> Any:
    checks = run_checks(None, None, None, None, SUBMITTED, SETTINGS, c2pa=summary)
    (finding,) = [f for f in checks.findings if f.code.startswith("c2pa")]
    assert finding.code == code
    return finding


def test_unreadable_manifest_end_to_end_needs_review(tmp_path: Path, signed_jpeg: bytes) -> None:
    """analyse() + checks: a manifest the SDK cannot read is a warning, never 'consistent'."""
    from verification.core.findings import derive_status

    path = _write(tmp_path, _claim_without_algorithm(signed_jpeg))
    result = analyse(path, "jpeg", SETTINGS)
    finding = _c2pa_finding(result.metadata["c2pa"], "c2pa-manifest-invalid")
    assert finding.evidence["error_text"] == "Other: unknown algorithm"
    assert derive_status([*result.findings, finding])[0] == "needs-review"


def test_intact_manifest_of_an_untrusted_signer_says_so_in_the_message(
    tmp_path: Path, signed_jpeg: bytes
) -> None:
    """'valid' is intact but not vouched for: the message says it, not only the evidence."""
    summary = read_c2pa(_write(tmp_path, signed_jpeg), "image/jpeg")
    assert summary is not None
    finding = _c2pa_finding(summary, "c2pa-manifest")
    assert "not on a configured trust list" in finding.message
    assert SIGNER_ORG in finding.message


def test_legacy_remote_error_summary_is_a_remote_manifest() -> None:
    """A summary from before remote_url existed ({present, error: Remote}) is not 'invalid'."""
    finding = _c2pa_finding({"present": True, "error": "C2paError.Remote"}, "c2pa-manifest-remote")
    assert finding.evidence["validation_state"] == "not-fetched"


def test_corrupt_manifest_becomes_an_invalid_manifest_finding() -> None:
    """A manifest present but unreadable is a warning carrying the error kind."""
    c2pa_summary = {"present": True, "error": "C2paError.Verify"}
    checks = run_checks(None, None, None, None, SUBMITTED, SETTINGS, c2pa=c2pa_summary)
    finding = next(f for f in checks.findings if f.code == "c2pa-manifest-invalid")
    assert finding.evidence["validation_state"] == "unreadable"
    assert finding.evidence["error"] == "C2paError.Verify"


def test_plain_photo_metadata_has_c2pa_none(tmp_path: Path) -> None:
    """analyse() of a photo without a manifest sets metadata["c2pa"] to None."""
    result = analyse(_write(tmp_path, _plain_jpeg()), "jpeg", SETTINGS)
    assert result.metadata["c2pa"] is None


def test_signed_video_summary_is_in_metadata(tmp_path: Path, credentials: Credentials) -> None:
    """analyse() of a signed MP4 puts its manifest summary in metadata["c2pa"]."""
    import cv2
    import numpy as np

    clip = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (64, 48))
    for i in range(5):
        writer.write(np.full((48, 64, 3), i * 40, dtype=np.uint8))
    writer.release()
    signed = _write(tmp_path, _sign(credentials, clip.read_bytes(), "video/mp4"), "signed.mp4")
    result = analyse(signed, "mp4", SETTINGS)
    assert result.metadata["c2pa"]["signer"] == SIGNER_ORG
    assert result.metadata["c2pa"]["validation_state"] == "valid"
    assert "c2pa-python" in result.extractors


def test_header_scan_skips_the_sdk_only_for_plain_jpegs(
    tmp_path: Path, signed_jpeg: bytes, credentials: Credentials
) -> None:
    """Plain JPEGs are answered from their header; embedded, remote or odd files go to the SDK."""
    assert reader.jpeg_without_c2pa(_write(tmp_path, _plain_jpeg(), "plain.jpg"))
    assert not reader.jpeg_without_c2pa(_write(tmp_path, signed_jpeg, "signed.jpg"))
    remote = _sign(credentials, _plain_jpeg(), "image/jpeg", remote_url="http://127.0.0.1:9/m")
    assert not reader.jpeg_without_c2pa(_write(tmp_path, remote, "remote.jpg"))
    assert not reader.jpeg_without_c2pa(_write(tmp_path, b"\xff\xd8\xff\xe0\x00", "cut.jpg"))
    assert not reader.jpeg_without_c2pa(_write(tmp_path, b"not a jpeg", "x.jpg"))


def _clip(tmp_path: Path, name: str, fourcc: str) -> bytes:
    import cv2
    import numpy as np

    path = tmp_path / name
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 10.0, (64, 48))
    for i in range(3):
        writer.write(np.full((48, 64, 3), i * 40, dtype=np.uint8))
    writer.release()
    return path.read_bytes()


@pytest.mark.parametrize(
    ("mime", "source", "found_in"),
    [
        ("image/png", "PNG", "PNG caBX chunk"),
        ("image/webp", "WEBP", "RIFF C2PA chunk"),
        ("image/tiff", "TIFF", "TIFF tag 0xCD41"),
        ("image/gif", "GIF", "GIF C2PA_GIF application extension"),
        ("video/mp4", "mp4v", "ISO BMFF uuid box"),
        ("video/x-msvideo", "MJPG", "RIFF C2PA chunk"),
    ],
)
def test_container_walk_agrees_with_the_sdk_on_files_it_signed(
    tmp_path: Path, credentials: Credentials, mime: str, source: str, found_in: str
) -> None:
    """What the SDK embeds (a store, or a remote reference) is where locate() looks for it."""
    if mime.startswith("video/"):
        plain = _clip(tmp_path, "clip.mp4" if mime == "video/mp4" else "clip.avi", source)
    else:
        out = io.BytesIO()
        Image.new("RGB", (64, 48), (10, 200, 30)).save(out, source)
        plain = out.getvalue()
    embedded = locate(io.BytesIO(_sign(credentials, plain, mime)))
    assert (embedded.store, embedded.complete) == (found_in, True)
    url = "http://127.0.0.1:9/manifest.c2pa"  # never contacted: nothing reads it here
    remote = locate(io.BytesIO(_sign(credentials, plain, mime, remote_url=url)))
    assert (remote.store, remote.remote_url) == (None, url)
    assert locate(io.BytesIO(plain)).found is False
