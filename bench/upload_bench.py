"""The upload page's costs: SHA-256 in the browser, and what the api-server does per part.

1. The page's incremental SHA-256 (plugins/evidence_review/static/sha256.js) in headless
   Chromium over a 256 MiB buffer fed in 4 MiB slices, against OpenSSL's SHA-256 (hashlib) on the
   same bytes: how long an investigator waits before a large video starts to upload.
2. Against moto's S3 server over HTTP: signing one part request (the api-server's only work per
   8 MiB part), and a 64 MiB file sent as signed parts with ``requests`` (the browser's path)
   against the same file through ``S3Store.put`` (boto3, the CLI's path).

Run: ``python -m bench upload``. Needs /usr/bin/chromium and chromedriver for part 1.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import statistics
import time
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "plugins/evidence_review/static/sha256.js"
MIB = 1024 * 1024


def browser_hashing(size: int = 256 * MIB) -> None:
    """MB/s of the page's SHA-256 in Chromium vs hashlib, on the same pseudo-random bytes."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
    try:
        driver.get("about:blank")
        driver.execute_script(SCRIPT.read_text())
        result = driver.execute_script(
            "const size = arguments[0], slice = 4 * 1024 * 1024;"
            "const data = new Uint8Array(size);"
            "for (let i = 0; i < size; i++) data[i] = (Math.imul(i, 0x9E3779B1) >>> 13) & 255;"
            "const start = performance.now(); const h = new EvidenceSha256();"
            "for (let i = 0; i < size; i += slice) h.update(data.subarray(i, i + slice));"
            "const hex = h.hex(); return [hex, performance.now() - start];",
            size,
        )
    finally:
        driver.quit()
    hex_digest, millis = result
    data = _pattern(size)
    start = time.perf_counter()
    expected = hashlib.sha256(data).hexdigest()
    openssl = time.perf_counter() - start
    assert hex_digest == expected, "the page's SHA-256 differs from hashlib's"
    browser = size / MIB / (millis / 1000)
    native = size / MIB / openssl
    print(
        f"SHA-256 of {size // MIB} MiB: page (Chromium) {browser:.0f} MiB/s, hashlib {native:.0f} MiB/s"
    )
    print(
        f"  ratio hashlib / page = {native / browser:.1f}; 1 GiB video hashed in {1024 / browser:.1f} s"
    )


def _pattern(size: int) -> bytes:
    """The bytes the page generates: ((i * 0x9E3779B1) mod 2**32 >> 13) & 255."""
    import numpy as np

    index = np.arange(size, dtype=np.uint32)
    return ((index * np.uint32(0x9E3779B1)) >> np.uint32(13)).astype(np.uint8).tobytes()


def server_side(size: int = 64 * MIB) -> None:
    """Signing cost per part, and signed parts vs boto3's own multipart upload to moto."""
    import io

    import requests
    from moto.server import ThreadedMotoServer

    from verification.core.claims import Claims
    from verification.pipeline import uploads
    from verification.storage.s3 import S3Store

    for name, value in {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}.items():
        os.environ.setdefault(name, value)
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        store = S3Store("bench-upload", endpoint_url=f"http://127.0.0.1:{port}", region="us-east-1")
        store.ensure_bucket(versioning=True)
        data = os.urandom(size)
        secret, claims = b"bench" * 8, Claims("bench")
        file = {"name": "v.mp4", "size": size, "sha256": hashlib.sha256(data).hexdigest()}
        start = time.perf_counter()
        plan = uploads.plan_upload(store, secret, claims, uploads.new_reference(), file)
        part = plan.part_size
        checksums = [
            base64.b64encode(hashlib.sha256(data[i : i + part]).digest()).decode()
            for i in range(0, size, part)
        ]
        signing, session = [], requests.Session()
        for number, checksum in enumerate(checksums, 1):
            t = time.perf_counter()
            signed = uploads.sign_part_request(store, secret, plan.token, number, checksum)
            signing.append(time.perf_counter() - t)
            body = data[(number - 1) * part : number * part]
            session.put(
                signed.url, data=body, headers=dict(signed.headers), timeout=60
            ).raise_for_status()
        uploads.complete(store, secret, plan.token, checksums)
        signed_parts = time.perf_counter() - start
        start = time.perf_counter()
        store.put("incoming/bench/boto3.mp4", io.BytesIO(data), sha256=file["sha256"])
        boto = time.perf_counter() - start
    finally:
        server.stop()
    print(
        f"signing one part request: median {statistics.median(signing) * 1000:.1f} ms over {len(signing)} parts"
    )
    print(
        f"{size // MIB} MiB to moto: signed parts {signed_parts:.2f} s "
        f"({size / MIB / signed_parts:.0f} MiB/s), S3Store.put {boto:.2f} s ({size / MIB / boto:.0f} MiB/s)"
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main(argv: list[str] | None = None) -> int:
    """Both parts; part 1 is skipped (and says so) without Chromium."""
    if Path("/usr/bin/chromium").exists():
        browser_hashing()
    else:
        print("SHA-256 in the browser: skipped, /usr/bin/chromium is absent")
    server_side()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
