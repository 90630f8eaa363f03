"""RFC 3161 time-stamps against a local TSA made with `openssl ts -reply` behind http.server."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.helpers import init_context, make_settings, photo
from verification import pipeline
from verification.core.claims import Claims
from verification.exports import export_case
from verification.exports.verify import verify_export
from verification.ledger.timestamps import (
    TimestampError,
    request_token,
    stamp_pending,
    verify_token,
)
from verification.pipeline.submission import submit_file

pytestmark = pytest.mark.integration

DATA = b'{"created_at":"2026-11-24T00:00:00.000000Z","items":3,"root":"ab"}'

# No `certs=` in [tsa_config]: the reply then embeds only the TSA certificate, and the verifier
# gets the chain from the caller (the CA root), which is what a recipient does.
CONFIG = """
[req]
distinguished_name = dn
prompt = no
[dn]
CN = placeholder
[ca_ext]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[tsa_ext]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature, nonRepudiation
extendedKeyUsage = critical, timeStamping
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[tsa]
default_tsa = tsa_config
[tsa_config]
serial = {dir}/serial
signer_cert = {dir}/tsa.crt
signer_key = {dir}/tsa.key
signer_digest = sha256
default_policy = 1.2.3.4.1
other_policies = 1.2.3.4.2
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = no
tsa_name = no
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""


@dataclass(frozen=True)
class LocalTSA:
    """A running TSA: its URL, the CA root (PEM) and a root that did not issue it."""

    url: str
    root: bytes
    other_root: bytes


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def make_ca(directory: Path, name: str) -> None:
    openssl(
        "req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "2", "-subj", f"/CN={name}",
        "-config", "tsa.cnf", "-extensions", "ca_ext", cwd=directory,
    )  # fmt: skip


def make_tsa_files(directory: Path) -> None:
    (directory / "tsa.cnf").write_text(CONFIG.format(dir=directory))
    (directory / "serial").write_text("01\n")
    make_ca(directory, "ca")
    make_ca(directory, "other")
    openssl(
        "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "tsa.key", "-out", "tsa.csr", "-subj", "/CN=Test TSA", "-config", "tsa.cnf",
        cwd=directory,
    )  # fmt: skip
    openssl(
        "x509", "-req", "-in", "tsa.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "tsa.crt", "-days", "2", "-extfile", "tsa.cnf",
        "-extensions", "tsa_ext", cwd=directory,
    )  # fmt: skip


def handler_for(directory: Path) -> type[BaseHTTPRequestHandler]:
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            query = self.rfile.read(int(self.headers["Content-Length"]))
            with lock:  # openssl ts -reply increments one serial file
                (directory / "q.tsq").write_bytes(query)
                openssl(
                    "ts", "-reply", "-queryfile", "q.tsq", "-config", "tsa.cnf",
                    "-out", "r.tsr", cwd=directory,
                )  # fmt: skip
                reply = (directory / "r.tsr").read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "application/timestamp-reply")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@pytest.fixture(scope="module")
def tsa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalTSA]:
    """A throw-away CA, a TSA certificate with critical timeStamping EKU, served on 127.0.0.1."""
    directory = tmp_path_factory.mktemp("tsa")
    make_tsa_files(directory)
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(directory))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield LocalTSA(
            f"http://127.0.0.1:{server.server_address[1]}/tsr",
            (directory / "ca.crt").read_bytes(),
            (directory / "other.crt").read_bytes(),
        )
    finally:
        server.shutdown()
        server.server_close()


def closed_url() -> str:
    return f"http://127.0.0.1:{free_port()}/tsr"


def test_genuine_token_verifies(tsa: LocalTSA) -> None:
    """A token from the TSA verifies against its root and says when it was made."""
    result = request_token(DATA, [tsa.url], timeout=10)
    assert result.status == "granted" and result.token and result.tsa_url == tsa.url
    info = verify_token(result.token, DATA, tsa.root)
    assert info.hash_algorithm == "sha256"
    assert info.policy == "1.2.3.4.1"


def test_tampered_data_fails_on_the_imprint(tsa: LocalTSA) -> None:
    """The token does not cover changed data."""
    token = request_token(DATA, [tsa.url]).token
    assert token
    with pytest.raises(TimestampError, match="message imprint mismatch"):
        verify_token(token, DATA + b" ", tsa.root)


def test_wrong_root_fails_on_the_signature_chain(tsa: LocalTSA) -> None:
    """A root that did not issue the TSA certificate is refused."""
    token = request_token(DATA, [tsa.url]).token
    assert token
    with pytest.raises(TimestampError, match="does not chain to the given roots"):
        verify_token(token, DATA, tsa.other_root)


def test_wrong_nonce_fails(tsa: LocalTSA) -> None:
    """A token answering another request (other nonce) is refused."""
    from rfc3161_client import decode_timestamp_response

    token = request_token(DATA, [tsa.url]).token
    assert token
    nonce = decode_timestamp_response(token).tst_info.nonce
    with pytest.raises(TimestampError, match="nonce mismatch"):
        verify_token(token, DATA, tsa.root, nonce=nonce + 1)
    assert verify_token(token, DATA, tsa.root, nonce=nonce)


def test_unreachable_tsa_leaves_pending_with_the_reason() -> None:
    """A closed port gives pending, naming the URL and why."""
    url = closed_url()
    result = request_token(DATA, [url], timeout=3)
    assert result.status == "pending" and result.token is None
    assert result.error and url in result.error and "unreachable" in result.error


def test_second_tsa_is_tried_when_the_first_is_down(tsa: LocalTSA) -> None:
    """URLs are tried in order until one grants."""
    result = request_token(DATA, [closed_url(), tsa.url], timeout=3)
    assert result.status == "granted" and result.tsa_url == tsa.url


def test_no_tsa_configured_contacts_nothing(tmp_path: Path) -> None:
    """Offline by default: no URL, nothing stamped, the checkpoint stays pending."""
    ctx = init_context(make_settings(tmp_path))
    cp = ctx.ledger.write_checkpoint()
    assert stamp_pending(ctx) == []
    assert ctx.ledger.latest_checkpoint().tsa_status == "pending"  # type: ignore[union-attr]
    assert cp.tsa_token is None


def test_stamp_pending_retries_until_the_tsa_answers(tmp_path: Path, tsa: LocalTSA) -> None:
    """Unreachable: stays pending; next run with the TSA up: granted, and never asked again."""
    down = init_context(make_settings(tmp_path, tsa_urls=[closed_url()]))
    down.ledger.write_checkpoint()
    assert [r["status"] for r in stamp_pending(down)] == ["pending"]
    up = init_context(make_settings(tmp_path, tsa_urls=[tsa.url]))
    assert [r["status"] for r in stamp_pending(up)] == ["granted"]
    assert stamp_pending(up) == []
    cp = up.ledger.latest_checkpoint()
    assert cp is not None and cp.tsa_status == "granted" and cp.tsa_token


def test_exported_package_carries_a_verifiable_token(tmp_path: Path, tsa: LocalTSA) -> None:
    """A stamped checkpoint goes into the package; the recipient verifies it with the TSA root."""
    ctx = init_context(make_settings(tmp_path / "home", tsa_urls=[tsa.url]))
    upload = tmp_path / "p.jpg"
    upload.write_bytes(photo(4))
    submit_file(ctx.store, upload, Claims("case-t"))
    pipeline.ingest(ctx, workers=1)
    ctx.ledger.write_checkpoint()
    stamp_pending(ctx)
    bag = export_case(ctx, "case-t", "bagit", tmp_path / "out", "Ana")
    assert (bag / "evidence/checkpoint/timestamp.tsr").is_file()
    checked = verify_export(bag, tsa_roots=tsa.root)
    assert checked.ok, checked.failures
    assert checked.timestamp.startswith("verified: checkpoint existed at")
    unchecked = verify_export(bag)
    assert unchecked.ok and "signature not checked" in unchecked.timestamp
    wrong = verify_export(bag, tsa_roots=tsa.other_root)
    assert wrong.first_failure and wrong.first_failure.startswith(
        "timestamp: signature does not chain to the given roots"
    )
