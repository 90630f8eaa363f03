"""The "Submit evidence" page end to end: Airflow's api-server, Debian Chromium, moto's S3 over HTTP.

An investigator logs in, opens "Submit evidence" from the Airflow sidebar, drops two photos and a
video larger than one multipart part, and submits. The connection to the store drops during the
video's second part (Chromium blocks the request) and the upload resumes without sending part 1
again. The test checks the SHA-256 the page computed against Python's, the checksums the store
keeps (the photos' SHA-256, the video's composite over its part digests), the receipt on the page
and as the JSON download, the first custody event after ingestion carrying the browser's hash, a
part sent with other bytes than its signed checksum being refused, and a cancelled upload leaving
nothing under incoming/. Saves docs/screenshots/submit.png.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.test_review_browser import (
    CHROMEDRIVER,
    CHROMIUM,
    SCREENSHOTS,
    WAIT,
    _login,
    _missing_browser,
    _stop,
    _wait,
    _wait_until_up,
)
from tests.conftest import free_port
from tests.helpers import photo
from tests.plugins.evidence_fixtures import AIRFLOW, airflow_env, migrate_airflow
from verification.pipeline import uploads
from verification.storage import open_store
from verification.storage.s3 import S3Store

pytestmark = [pytest.mark.browser, pytest.mark.integration]

CASE = "case-odesa"
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two photos and an MPEG-4 video larger than one part, as an investigator's files."""
    root = tmp_path_factory.mktemp("files")
    made = {
        "harbour.jpg": photo(11, taken="2024:03:14 11:20:05", offset="+02:00"),
        "street.jpg": photo(12),
    }
    for name, data in made.items():
        (root / name).write_bytes(data)
    for name, frames in (("clip.mp4", 25), ("second.mp4", 27), ("third.mp4", 29)):
        subprocess.run(
            ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
             "testsrc2=s=640x480:r=25,noise=alls=80:allf=t", "-frames:v", str(frames),
             "-c:v", "mpeg4", "-q:v", "2", str(root / name)],
            check=True,
        )  # fmt: skip
        assert (root / name).stat().st_size > uploads.PART_SIZE
    return {path.name: path for path in root.iterdir()}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, s3_server: str) -> Iterator[dict[str, Any]]:
    """An evidence home on a moto bucket (CORS open to the api-server) and the api-server."""
    problem = _missing_browser()
    if problem:
        pytest.skip(problem)
    from tests.helpers import init_context, make_settings

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    evidence = {
        "EVIDENCE_HOME": str(tmp_path_factory.mktemp("evidence")),
        "EVIDENCE_STORE": "s3",
        "EVIDENCE_S3_BUCKET": f"upload-{uuid.uuid4().hex[:12]}",
        "EVIDENCE_S3_ENDPOINT_URL": s3_server,
        "EVIDENCE_S3_REGION": "us-east-1",
    }
    settings = make_settings(
        Path(evidence["EVIDENCE_HOME"]),
        store="s3",
        s3_bucket=evidence["EVIDENCE_S3_BUCKET"],
        s3_endpoint_url=s3_server,
        s3_region="us-east-1",
    )
    store = open_store(settings)
    assert isinstance(store, S3Store)
    store.ensure_bucket(versioning=True)
    ctx = init_context(settings, store=store)
    uploads.allow_uploads_from(ctx.store, [base])
    home = tmp_path_factory.mktemp("airflow")
    env = {**os.environ, **airflow_env(home), **evidence}
    migrate_airflow(env)
    log = (home / "api-server.log").open("wb")
    process = subprocess.Popen(
        [str(AIRFLOW), "api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        _wait_until_up(base, process, home / "api-server.log")
        yield {"base": base, "ctx": ctx}
    finally:
        _stop(process)
        log.close()
        ctx.engine.dispose()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory, stack: dict[str, Any]) -> Iterator[Any]:
    """Headless Debian Chromium with a fresh profile; chromedriver given, nothing downloaded."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    profile = tmp_path_factory.mktemp("chromium-profile")
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--window-size=1440,1100",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)  # fmt: skip
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.set_page_load_timeout(WAIT)
    try:
        yield driver
    finally:
        driver.quit()


def _open_submit_nav(driver: Any) -> None:
    """Click the sidebar's "Submit evidence" entry and enter the iframe it embeds."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    xpath = "//a[.//*[normalize-space()='Submit evidence'] or normalize-space()='Submit evidence']"
    _wait(driver, ec.element_to_be_clickable((By.XPATH, xpath))).click()
    _wait(driver, ec.frame_to_be_available_and_switch_to_it((By.CSS_SELECTOR, "iframe")))
    _wait(driver, ec.presence_of_element_located((By.ID, "submit-form")))


def _open_page(driver: Any, base: str) -> None:
    """The page full-window, logging in first when this browser has no session yet."""
    driver.get(f"{base}/evidence/submit")
    if "submit-form" not in driver.page_source:
        _login(driver, base, "analyst")
        driver.get(f"{base}/evidence/submit")
    _wait(driver, lambda d: d.find_elements("id", "submit-form"))


def _row(driver: Any, name: str) -> Any:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, f"#files tr[data-name='{name}']")


def _wait_state(driver: Any, name: str, *states: str) -> Any:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By

    try:
        _wait(driver, lambda d: _row(d, name).get_attribute("data-state") in states)
    except TimeoutException:
        table = driver.find_element(By.ID, "files").text
        error = driver.find_element(By.ID, "form-error").text
        pytest.fail(f"{name} never became {states}; files: {table!r}; form error: {error!r}")
    return _row(driver, name)


def _fill(driver: Any, paths: list[Path]) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.ID, "file-input").send_keys("\n".join(str(p) for p in paths))
    for path in paths:
        _wait_state(driver, path.name, "ready")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def _head(ctx: Any, key: str) -> dict[str, Any]:
    store = ctx.store
    response: dict[str, Any] = store.client.head_object(
        Bucket=store.bucket, Key=key, ChecksumMode="ENABLED"
    )
    return response


def test_investigator_submits_photos_and_a_video_with_a_dropped_connection(
    browser: Any,
    stack: dict[str, Any],
    files: dict[str, Path],
    tmp_path: Path,
) -> None:
    """Hash at collection, direct multipart upload resumed after a drop, checksums, receipt, and
    the ingestion event carrying the browser's hash."""
    from selenium.webdriver.common.by import By

    base, ctx = stack["base"], stack["ctx"]
    _login(browser, base, "analyst")
    _open_submit_nav(browser)
    chosen = [files["harbour.jpg"], files["street.jpg"], files["clip.mp4"]]
    _fill(browser, chosen)
    for path in chosen:  # the page's own SHA-256 (JS, fed slice by slice) is Python's
        assert _row(browser, path.name).find_element(By.CSS_SELECTOR, ".sha").text == _sha(path)

    browser.find_element(By.ID, "case").send_keys(CASE)
    browser.find_element(By.ID, "submitter").send_keys("witness-7")
    browser.find_element(By.ID, "location").send_keys("46.4825,30.7233")
    browser.execute_script("document.getElementById('claimed-time').value='2024-03-14T11:20:05'")
    browser.execute_script("document.getElementById('claimed-offset').value='+02:00'")
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd("Network.setBlockedURLs", {"urls": ["*partNumber=2*"]})
    try:
        browser.find_element(By.ID, "send").click()
        _wait_state(browser, "clip.mp4", "interrupted")
        assert "connection to the store lost" in _row(browser, "clip.mp4").text
        open_uploads = ctx.store.client.list_multipart_uploads(Bucket=ctx.store.bucket)["Uploads"]
        parts = ctx.store.client.list_parts(
            Bucket=ctx.store.bucket,
            Key=open_uploads[0]["Key"],
            UploadId=open_uploads[0]["UploadId"],
        )
        assert [p["PartNumber"] for p in parts["Parts"]] == [1]
        assert not ctx.store.exists(f"incoming/{CASE}/clip.mp4")
    finally:
        browser.execute_cdp_cmd("Network.setBlockedURLs", {"urls": []})
        browser.execute_cdp_cmd("Network.disable", {})
    for path in chosen:
        _wait_state(browser, path.name, "done")
    video = browser.execute_script(
        "const e = window.evidenceUploads.find(x => x.file.name === 'clip.mp4');"
        "return {sent: e.sentParts, interruptions: e.interruptions, checksums: e.checksums};"
    )
    assert video["sent"] == [1, 2]  # part 1 went once: the resumed upload skipped it
    assert video["interruptions"] >= 1

    # The store keeps the photos' SHA-256 and the video's composite over the part digests.
    for name in ("harbour.jpg", "street.jpg"):
        head = _head(ctx, f"incoming/{CASE}/{name}")
        assert head["ChecksumSHA256"] == _b64(files[name].read_bytes())
        assert head["Metadata"]["sha256"] == _sha(files[name])
    data = files["clip.mp4"].read_bytes()
    size = uploads.PART_SIZE
    digests = [hashlib.sha256(data[i : i + size]).digest() for i in range(0, len(data), size)]
    assert video["checksums"] == [base64.b64encode(d).decode() for d in digests]
    composite = base64.b64encode(hashlib.sha256(b"".join(digests)).digest()).decode()
    assert _head(ctx, f"incoming/{CASE}/clip.mp4")["ChecksumSHA256"].startswith(composite)

    # The receipt: on the page, then as the JSON download, then with the custody events.
    receipt_section = _wait(browser, lambda d: d.find_element(By.ID, "receipt"))
    _wait(browser, lambda d: receipt_section.is_displayed())
    reference = browser.find_element(By.ID, "receipt-reference").text
    assert uploads.check_reference(reference) == reference
    shown = [r.text for r in browser.find_elements(By.CSS_SELECTOR, "#receipt-files tbody tr")]
    for path in chosen:
        assert any(path.name in row and _sha(path) in row for row in shown), shown
    assert browser.find_element(By.ID, "print-receipt").is_displayed()
    browser.switch_to.default_content()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOTS / "submit.png"))
    browser.switch_to.frame(browser.find_element(By.CSS_SELECTOR, "iframe"))
    saved = _download_link(browser, "receipt-json", tmp_path / "downloads")
    receipt = json.loads(saved.read_text())
    assert saved.name == f"receipt-{reference}.json"
    assert receipt["receipt"] == reference and receipt["case"] == CASE
    assert {(f["name"], f["size"], f["sha256"]) for f in receipt["files"]} == {
        (p.name, p.stat().st_size, _sha(p)) for p in chosen
    }
    assert all(f["received_at"] for f in receipt["files"])

    from verification import pipeline

    outcomes = pipeline.ingest(ctx, workers=1)
    assert not [o for o in outcomes if o.failed]
    assert all("collection-hash-mismatch" not in o.findings for o in outcomes)
    browser.get(f"{base}/evidence/submit/receipt/{reference}")
    for path in chosen:
        first = ctx.ledger.events(_sha(path))[0]
        assert first.type == "ingestion"
        assert first.detail["collection_sha256"] == f"sha256:{_sha(path)}"
        assert first.detail["receipt"]["reference"] == reference
        assert first.hash in browser.find_element(By.ID, "receipt-files").text


def test_part_with_other_bytes_than_its_checksum_is_refused(
    browser: Any,
    stack: dict[str, Any],
) -> None:
    """From the page: a part sent with bytes that do not match the SHA-256 it was signed for is
    refused at completion (409, one line) and nothing appears under incoming/."""
    base, ctx = stack["base"], stack["ctx"]
    _open_page(browser, base)
    answer = browser.execute_async_script(_CORRUPT_PART, CASE, uploads.PART_SIZE + MIB)
    assert answer == {
        "status": 409,
        "error": "tampered.mp4: the store's checksum differs from the browser's part hashes",
    }
    assert not ctx.store.exists(f"incoming/{CASE}/tampered.mp4")


def test_cancelled_upload_leaves_nothing_under_incoming(
    browser: Any,
    stack: dict[str, Any],
    files: dict[str, Path],
) -> None:
    """Cancel during the second part: the parts are discarded, no object, no open upload."""
    from selenium.webdriver.common.by import By

    base, ctx = stack["base"], stack["ctx"]
    _open_page(browser, base)
    _fill(browser, [files["second.mp4"]])
    browser.find_element(By.ID, "case").send_keys(CASE)
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd("Network.setBlockedURLs", {"urls": ["*partNumber=2*"]})
    try:
        browser.find_element(By.ID, "send").click()
        row = _wait_state(browser, "second.mp4", "interrupted")
        row.find_element(By.CSS_SELECTOR, "button.cancel").click()
        row = _wait_state(browser, "second.mp4", "cancelled")
    finally:
        browser.execute_cdp_cmd("Network.setBlockedURLs", {"urls": []})
        browser.execute_cdp_cmd("Network.disable", {})
    assert "nothing of this file was submitted" in row.text
    assert not ctx.store.exists(f"incoming/{CASE}/second.mp4")
    assert not ctx.store.client.list_multipart_uploads(Bucket=ctx.store.bucket).get("Uploads")
    assert not browser.find_element(By.ID, "receipt").is_displayed()


def _download_link(driver: Any, link: str, directory: Path) -> Path:
    from selenium.webdriver.common.by import By

    directory.mkdir(parents=True, exist_ok=True)
    driver.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(directory)}
    )
    driver.find_element(By.ID, link).click()
    _wait(driver, lambda _: [p for p in directory.iterdir() if p.suffix == ".json"])
    (saved,) = directory.iterdir()
    return saved


# Runs in the page (its cookie, its CSRF token, the store's CORS): plans a two-part upload, sends
# part 2 with one byte flipped, and completes. Calls back with the completion's status and error.
_CORRUPT_PART = """
const [kase, size, done] = arguments;
const root = document.getElementById('uploader');
const call = (path, body) => fetch(`${root.dataset.base}/submit/api/${path}`, {method: 'POST',
  headers: {'content-type': 'application/json', 'x-csrf-token': root.dataset.csrf},
  body: JSON.stringify(body)});
(async () => {
  const bytes = new Uint8Array(size).map((_, i) => (i * 7) & 255);
  const sha = new EvidenceSha256().update(bytes).hex();
  const start = await (await call('start', {case: kase})).json();
  const plan = await (await call('file', {case: kase, reference: start.reference,
    file: {name: 'tampered.mp4', size, sha256: sha}})).json();
  const checksums = [];
  for (let n = 1; n <= plan.parts; n++) {
    const part = bytes.slice((n - 1) * plan.part_size, n * plan.part_size);
    checksums.push(new EvidenceSha256().update(part).base64());
    const signed = await (await call('part', {token: plan.token, number: n,
      checksum: checksums[n - 1]})).json();
    if (n === 2) part[0] ^= 1;
    await fetch(signed.url, {method: 'PUT', headers: signed.headers, body: part});
  }
  const answer = await call('complete', {token: plan.token, checksums});
  done({status: answer.status, error: (await answer.json()).error});
})().catch((e) => done({status: 0, error: String(e)}));
"""


def test_page_sha256_matches_the_fips_180_4_vectors(browser: Any, stack: dict[str, Any]) -> None:
    """The page's incremental SHA-256, fed in uneven slices, gives the published digests."""
    _open_page(browser, stack["base"])
    vectors = {
        "": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "abc": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq": (
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        ),
        "a" * 1_000_000: "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
    }
    for text, expected in vectors.items():
        found = browser.execute_script(
            "const bytes = new TextEncoder().encode(arguments[0]);"
            "const h = new EvidenceSha256();"
            "for (let i = 0, n = 1; i < bytes.length; i += n, n = n * 3 % 1000 + 1)"
            "  h.update(bytes.subarray(i, i + n));"
            "return h.hex();",
            text,
        )
        assert found == expected, len(text)


def test_bad_claims_show_the_cli_error_on_the_page(
    browser: Any, stack: dict[str, Any], files: dict[str, Path]
) -> None:
    """A claimed place that is not LAT,LON: the page shows the CLI's one-line error, sends
    nothing, and every file stays ready."""
    from selenium.webdriver.common.by import By

    _open_page(browser, stack["base"])
    _fill(browser, [files["street.jpg"]])
    browser.find_element(By.ID, "case").send_keys("case-errors")
    browser.find_element(By.ID, "location").send_keys("46.48")
    browser.find_element(By.ID, "send").click()
    error = browser.find_element(By.ID, "form-error")
    _wait(browser, lambda d: error.text)
    assert error.text == "claimed location must be LAT,LON in decimal degrees"
    assert _row(browser, "street.jpg").get_attribute("data-state") == "ready"
    assert not stack["ctx"].store.exists("incoming/case-errors/street.jpg")


def test_click_on_the_map_sets_the_claimed_place(browser: Any, stack: dict[str, Any]) -> None:
    """The map is drawn in the page (populated places, no tiles); a click sets LAT,LON."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    _open_page(browser, stack["base"])
    svg = browser.find_element(By.ID, "pick-map")
    assert browser.find_element(By.CSS_SELECTOR, "#pick-map path.land").get_attribute("d")
    width = svg.size["width"]  # 360 degrees of longitude
    ActionChains(browser).move_to_element_with_offset(
        svg, int(width * 30.7 / 360), 0
    ).click().perform()
    lat, lon = (
        float(v) for v in browser.find_element(By.ID, "location").get_attribute("value").split(",")
    )
    assert abs(lat) < 1.5 and abs(lon - 30.7) < 1.5


def test_upload_resumes_after_the_page_is_reloaded(
    browser: Any, stack: dict[str, Any], files: dict[str, Path]
) -> None:
    """The page is reloaded during the video's second part: it offers the unfinished submission
    with its claims, and sending the same file again sends only part 2, under the same reference."""
    from selenium.webdriver.common.by import By

    base, ctx = stack["base"], stack["ctx"]
    _open_page(browser, base)
    browser.execute_script("localStorage.clear()")
    browser.refresh()
    _fill(browser, [files["third.mp4"]])
    browser.find_element(By.ID, "case").send_keys(CASE)
    browser.find_element(By.ID, "note").send_keys("sent from a phone on a weak line")
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd("Network.setBlockedURLs", {"urls": ["*partNumber=2*"]})
    try:
        browser.find_element(By.ID, "send").click()
        _wait_state(browser, "third.mp4", "interrupted")
        browser.refresh()
    finally:
        browser.execute_cdp_cmd("Network.setBlockedURLs", {"urls": []})
        browser.execute_cdp_cmd("Network.disable", {})
    banner = _wait(browser, lambda d: d.find_element(By.ID, "resume-banner"))
    _wait(browser, lambda d: banner.is_displayed())
    reference = browser.find_element(By.ID, "resume-reference").text
    assert "third.mp4" in banner.text
    assert browser.find_element(By.ID, "case").get_attribute("value") == CASE
    assert browser.find_element(By.ID, "note").get_attribute("value") == (
        "sent from a phone on a weak line"
    )

    _fill(browser, [files["third.mp4"]])
    browser.find_element(By.ID, "send").click()
    _wait_state(browser, "third.mp4", "done")
    video = browser.execute_script(
        "const e = window.evidenceUploads.find(x => x.file.name === 'third.mp4');"
        "return {sent: e.sentParts, resumed: !!e.resumed};"
    )
    assert video == {"sent": [2], "resumed": True}
    _wait(browser, lambda d: d.find_element(By.ID, "receipt").is_displayed())
    assert browser.find_element(By.ID, "receipt-reference").text == reference
    head = _head(ctx, f"incoming/{CASE}/third.mp4")
    assert head["Metadata"]["receipt"] == reference
    assert not ctx.store.client.list_multipart_uploads(Bucket=ctx.store.bucket).get("Uploads")
    assert browser.execute_script("return localStorage.length") == 0
