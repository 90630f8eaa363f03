"""The review UI end to end: Airflow's api-server, its own login, Debian Chromium via Selenium.

Starts ``airflow api-server`` (no scheduler) on a free 127.0.0.1 port against a throw-away
Airflow home and the demo data (plus one submission with a hostile EXIF Make), logs in through
SimpleAuthManager's login page, opens the "Evidence" nav entry, filters the queue, records a
decision and checks the timeline; exports a case's HTML report from the case page and reads it
offline with every http(s) request blocked. Works a recycled-photo case the way an analyst
does: the case as submitted, search, side-by-side comparison with zoom, assignment, comment and
decision, review-state filters, an export that leaves the other case out, and a form sent after
logging in again. Saves docs/screenshots/queue.png, item.png, report.png, compare.png, view.png,
queue-review.png and map.png.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port
from tests.plugins.evidence_fixtures import (
    AIRFLOW,
    REPO,
    USERS,
    XSS,
    airflow_env,
    migrate_airflow,
)

pytestmark = [pytest.mark.browser, pytest.mark.integration]

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOTS = REPO / "docs" / "screenshots"
WAIT = 30


def _missing_browser() -> str | None:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not path.exists():
            return f"{path} is absent: apt-get install -y chromium chromium-driver"
    return None


@pytest.fixture(scope="module")
def evidence_home(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """``evidence demo`` data, plus a photo whose EXIF Make is a script tag."""
    root = tmp_path_factory.mktemp("evidence")
    env = {**os.environ, "EVIDENCE_HOME": str(root)}
    # --direct: the demo's DAG path is tested in tests/dags/test_demo_dag.py.
    subprocess.run(
        [str(AIRFLOW.parent / "evidence"), "demo", "--direct"],
        env=env,
        check=True,
        capture_output=True,
    )
    home = root / "demo"
    from tests.helpers import photo
    from verification import pipeline
    from verification.core.claims import Claims
    from verification.core.config import load_settings
    from verification.pipeline.submission import submit_file

    ctx = pipeline.open_context(load_settings(home=home, workers=1))
    hostile = home / "hostile.jpg"
    hostile.write_bytes(photo(7, make=XSS, taken="2024:03:15 08:00:00"))
    sha = submit_file(ctx.store, hostile, Claims("case-kyiv", "mallory")).sha256
    pipeline.ingest(ctx, workers=1)
    ctx.engine.dispose()
    return {"home": home, "hostile": sha}


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, evidence_home: dict[str, Any]
) -> Iterator[str]:
    """``airflow api-server`` on a free port with our plugin; yields its base URL."""
    problem = _missing_browser()
    if problem:
        pytest.skip(problem)
    home = tmp_path_factory.mktemp("airflow")
    env = {
        **os.environ,
        **airflow_env(home),
        "EVIDENCE_HOME": str(evidence_home["home"]),
    }
    migrate_airflow(env)
    port = free_port()
    log = (home / "api-server.log").open("wb")
    process = subprocess.Popen(
        [str(AIRFLOW), "api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(base, process, home / "api-server.log")
        yield base
    finally:
        _stop(process)
        log.close()


def _wait_until_up(base: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"api-server exited:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{base}/api/v2/monitor/health", timeout=2):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.5)
    pytest.fail(f"api-server did not start:\n{log.read_text()[-3000:]}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the api-server and its workers (its own process group, started above)."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory, server: str) -> Iterator[Any]:
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
        "--disable-sync",
        "--no-first-run",
        "--window-size=1440,1100",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    # Chromium's network events (requests it was about to send, blocked ones included), read
    # back with get_log("performance") to prove the exported report fetches nothing.
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.set_page_load_timeout(WAIT)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _wait(driver: Any, condition: Any) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT).until(condition)


def _login(driver: Any, base: str, user: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec

    driver.get(f"{base}/")
    password = _wait(driver, ec.element_to_be_clickable((By.CSS_SELECTOR, "input[type=password]")))
    username = driver.find_element(By.CSS_SELECTOR, "input:not([type=password])")
    username.send_keys(user)
    password.send_keys(USERS[user][1], Keys.ENTER)
    _wait(driver, lambda d: "/auth/login" not in d.current_url)


def _open_evidence_nav(driver: Any) -> None:
    """Click the sidebar's "Evidence" entry and enter the iframe it embeds."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    entry = _wait(
        driver,
        ec.element_to_be_clickable(
            (By.XPATH, "//a[.//*[normalize-space()='Evidence'] or normalize-space()='Evidence']")
        ),
    )
    entry.click()
    _wait(driver, ec.frame_to_be_available_and_switch_to_it((By.CSS_SELECTOR, "iframe")))
    _wait(driver, ec.presence_of_element_located((By.ID, "queue")))


def test_analyst_reviews_an_item_in_the_airflow_ui(
    browser: Any, server: str, evidence_home: dict[str, Any]
) -> None:
    """Log in, open Evidence, filter, open an item, decide, see the decision in the timeline."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select

    _login(browser, server, "analyst")
    _open_evidence_nav(browser)

    Select(browser.find_element(By.NAME, "status")).select_by_value("inconsistent")
    browser.find_element(By.ID, "apply-filters").click()
    _wait(browser, lambda d: "status=inconsistent" in d.execute_script("return location.href"))
    rows = browser.find_elements(By.CSS_SELECTOR, "#queue tbody tr")
    assert rows and all("inconsistent" in r.text for r in rows)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.switch_to.default_content()
    browser.save_screenshot(str(SCREENSHOTS / "queue.png"))
    browser.switch_to.frame(browser.find_element(By.CSS_SELECTOR, "iframe"))

    rows[0].find_element(By.CSS_SELECTOR, "a.mono").click()
    _wait(browser, ec.presence_of_element_located((By.ID, "decision-form")))
    assert "custody chain verified" in browser.find_element(By.ID, "chain-badge").text
    Select(browser.find_element(By.ID, "decision")).select_by_value("disputed")
    browser.find_element(By.ID, "note").send_keys(
        "GPS places it in another country; ask the source."
    )
    browser.find_element(By.ID, "record-decision").click()

    history = _wait(browser, ec.presence_of_element_located((By.ID, "decision-history")))
    assert "GPS places it in another country" in history.text
    assert "analyst" in history.text
    timeline = browser.find_elements(By.CSS_SELECTOR, "#custody tbody tr")
    assert "review" in timeline[-1].text
    assert "analyst" in timeline[-1].text
    assert "custody chain verified" in browser.find_element(By.ID, "chain-badge").text

    # Full-page view of the item for the docs (outside the iframe, same session cookie).
    item_path = browser.execute_script("return location.pathname")
    browser.switch_to.default_content()
    browser.get(f"{server}{item_path}")
    _wait(browser, ec.presence_of_element_located((By.ID, "decision-history")))
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1440, min(int(height) + 40, 4000))
    browser.save_screenshot(str(SCREENSHOTS / "item.png"))
    browser.set_window_size(1440, 1100)


def test_script_in_exif_make_renders_as_text(
    browser: Any, server: str, evidence_home: dict[str, Any]
) -> None:
    """The hostile Make shows up literally in the metadata table and runs nothing."""
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    _login_if_needed(browser, server)
    browser.get(f"{server}/evidence/item/{evidence_home['hostile']}")
    table = browser.find_element(By.ID, "metadata")
    assert XSS in table.text
    assert not browser.find_elements(By.CSS_SELECTOR, "#metadata script")
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018 (the access raises when no alert is open)


def _login_if_needed(browser: Any, server: str) -> None:
    browser.get(f"{server}/evidence/")
    if "Log in" in browser.page_source:
        _login(browser, server, "analyst")


def _download(driver: Any, button: str, directory: Path) -> Path:
    """Click ``button`` (a form submit that answers with an attachment); return the saved file."""
    from selenium.webdriver.common.by import By

    directory.mkdir(parents=True, exist_ok=True)
    driver.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(directory)}
    )
    driver.find_element(By.ID, button).click()
    _wait(driver, lambda _: [p for p in directory.iterdir() if p.suffix != ".crdownload"])
    (saved,) = directory.iterdir()
    return saved


def _network_requests(driver: Any) -> list[str]:
    """URLs Chromium was asked to fetch since the last call (including blocked requests)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def test_exported_html_report_reads_offline(
    browser: Any, server: str, evidence_home: dict[str, Any], tmp_path: Path
) -> None:
    """The case page's HTML export opens from file:// with http(s) blocked and fetches nothing."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    from verification.core.config import load_settings
    from verification.exports import case_items
    from verification.pipeline import open_context

    ctx = open_context(load_settings(home=evidence_home["home"], workers=1))
    items = case_items(ctx.engine, "case-kyiv")
    ctx.engine.dispose()

    _login_if_needed(browser, server)
    browser.get(f"{server}/evidence/case/case-kyiv")
    _wait(browser, ec.element_to_be_clickable((By.ID, "export-html")))
    # market.jpg went to case-lagos too: the page asks whether that case's submission goes along.
    browser.find_element(By.ID, "other-include").click()
    report = _download(browser, "export-html", tmp_path / "downloads")
    assert report.name.startswith("case-kyiv-") and report.suffix == ".html"

    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd("Network.setBlockedURLs", {"urls": ["http://*", "https://*"]})
    try:
        _network_requests(browser)  # drain what the Airflow UI fetched before
        browser.get(report.as_uri())
        _wait(browser, ec.presence_of_element_located((By.CSS_SELECTOR, "section.item")))
        assert browser.title == "Case case-kyiv: evidence report"
        assert "case-kyiv" in browser.find_element(By.TAG_NAME, "h1").text
        shown = [
            e.get_attribute("id") for e in browser.find_elements(By.CSS_SELECTOR, "section.item")
        ]
        assert shown == [f"item-{sha}" for sha in items]
        assert browser.find_elements(By.CSS_SELECTOR, "section.item img[src^='data:image/jpeg']")
        requests = _network_requests(browser)
        assert requests and all(url.startswith(("file:", "data:")) for url in requests), requests
        resources = browser.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)"
        )
        assert not [url for url in resources if url.startswith(("http:", "https:"))], resources

        browser.set_window_size(1440, 1100)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(SCREENSHOTS / "report.png"))
    finally:
        browser.execute_cdp_cmd("Network.setBlockedURLs", {"urls": []})
        browser.execute_cdp_cmd("Network.disable", {})


def _frame_in(browser: Any) -> None:
    from selenium.webdriver.common.by import By

    browser.switch_to.default_content()
    frames = browser.find_elements(By.CSS_SELECTOR, "iframe")
    if frames:
        browser.switch_to.frame(frames[0])


def _apply(browser: Any, **fields: str) -> None:
    """Fill the queue's filter form (text inputs and selects by name) and apply it."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    for name, value in fields.items():
        element = browser.find_element(By.NAME, name)
        if element.tag_name == "select":
            Select(element).select_by_value(value)
        elif element.get_attribute("type") == "checkbox":
            if element.is_selected() != (value == "on"):
                element.click()
        else:
            element.clear()
            element.send_keys(value)
    from selenium.webdriver.support import expected_conditions as ec

    page = browser.find_element(By.TAG_NAME, "html")
    browser.find_element(By.ID, "apply-filters").click()
    _wait(browser, ec.staleness_of(page))
    _wait(browser, ec.presence_of_element_located((By.ID, "queue")))


def test_analyst_works_a_recycled_photo_case(
    browser: Any, server: str, evidence_home: dict[str, Any], tmp_path: Path
) -> None:
    """case-lagos holds the Kyiv market photo sent again and a resized copy of it: the analyst
    finds them, compares them side by side, assigns, comments, decides, filters by review
    state, and exports the case without case-kyiv's witness."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select

    _login_if_needed(browser, server)
    browser.get(f"{server}/evidence/")
    _apply(browser, case="case-lagos")
    _wait(browser, lambda d: "case=case-lagos" in d.current_url)
    table = browser.find_element(By.ID, "queue").text
    assert "market-again.jpg" in table and "recycled.jpg" in table
    assert "journalist-f" in table, "case-lagos's own submitter of the recycled market photo"
    assert "undecided" in table

    # Search: a file name, any case, case-insensitive substring.
    browser.get(f"{server}/evidence/")
    _apply(browser, q="RECYCLED")
    rows = browser.find_elements(By.CSS_SELECTOR, "#queue tbody tr")
    assert len(rows) == 1 and "recycled.jpg" in rows[0].text
    rows[0].find_element(By.CSS_SELECTOR, "a.mono").click()
    _wait(browser, ec.presence_of_element_located((By.ID, "duplicates")))
    recycled = browser.current_url.rsplit("/", 1)[-1]

    # The decision select starts empty.
    assert (
        Select(browser.find_element(By.ID, "decision")).first_selected_option.get_attribute("value")
        == ""
    )

    # Side by side with the earlier copy, zoomed 2x in both frames.
    browser.find_element(By.CSS_SELECTOR, "#duplicates a.compare").click()
    _wait(browser, ec.presence_of_element_located((By.ID, "metadata-diff")))
    frames = browser.find_elements(By.CSS_SELECTOR, ".frame img")
    assert len(frames) == 2
    fitted = [f.size["width"] for f in frames]
    assert fitted[0] == fitted[1], "both pictures at the same size"
    browser.find_element(By.CSS_SELECTOR, "label[for=zoom-2]").click()
    zoomed = [f.size["width"] for f in browser.find_elements(By.CSS_SELECTOR, ".frame img")]
    # 200 % of the frame, less the scroll bar the zoom brings.
    assert all(z >= 1.8 * w for z, w in zip(zoomed, fitted, strict=True)), (zoomed, fitted)
    assert "earliest copy" in browser.page_source
    browser.find_element(By.CSS_SELECTOR, "label[for=zoom-1]").click()
    browser.switch_to.default_content()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.set_window_size(1440, 1400)
    browser.save_screenshot(str(SCREENSHOTS / "compare.png"))
    browser.set_window_size(1440, 1100)
    # The other side links back.
    earlier = browser.find_element(By.CSS_SELECTOR, "#earliest a").get_attribute("href")
    browser.get(earlier)
    assert f"/compare/{recycled}" in browser.page_source

    # Assign to me, comment, decide.
    browser.get(f"{server}/evidence/item/{recycled}")
    browser.find_element(By.ID, "assign").click()
    _wait(browser, ec.presence_of_element_located((By.ID, "assignee")))
    browser.find_element(By.ID, "comment").send_keys("Earlier copy is case-kyiv's market photo.")
    browser.find_element(By.ID, "add-comment").click()
    remarks = _wait(browser, ec.presence_of_element_located((By.ID, "remarks")))
    assert "Earlier copy is case-kyiv" in remarks.text
    Select(browser.find_element(By.ID, "decision")).select_by_value("rejected")
    browser.find_element(By.ID, "note").send_keys("Recycled: a resized copy of a Kyiv photo.")
    browser.find_element(By.ID, "record-decision").click()
    _wait(browser, ec.presence_of_element_located((By.ID, "decision-history")))

    # Review state in the queue: decided, mine.
    browser.get(f"{server}/evidence/")
    _apply(browser, case="case-lagos", review="decided", mine="on")
    rows = browser.find_elements(By.CSS_SELECTOR, "#queue tbody tr")
    assert len(rows) == 1 and "rejected" in rows[0].text and "assigned: analyst" in rows[0].text
    _apply(browser, review="", mine="off")
    browser.save_screenshot(str(SCREENSHOTS / "queue-review.png"))
    browser.get(f"{server}/evidence/case/case-lagos")
    assert "reviewed 1 of 3" in browser.find_element(By.ID, "case-counts").text

    # Export without the other case: case-kyiv's witness is not in the report.
    assert "case-kyiv" in browser.find_element(By.ID, "other-cases-warning").text
    browser.find_element(By.ID, "other-omit").click()
    report = _download(browser, "export-html", tmp_path / "downloads")
    text = report.read_text()
    assert "journalist-f" in text and "witness-a" not in text


def test_map_shows_claimed_and_observed_points(
    browser: Any, server: str, evidence_home: dict[str, Any]
) -> None:
    """The Kyiv market photo claimed in Lagos: both points and the distance on the item page."""
    from selenium.webdriver.common.by import By

    _login_if_needed(browser, server)
    browser.get(f"{server}/evidence/?q=market-again")
    browser.find_element(By.CSS_SELECTOR, "#queue a.mono").click()
    svg = browser.find_element(By.ID, "map")
    assert len(svg.find_elements(By.TAG_NAME, "circle")) >= 3
    assert "km between claim and file" in browser.page_source
    section = svg.find_element(By.XPATH, "./ancestor::section[1]")
    browser.execute_script("arguments[0].scrollIntoView()", section)
    section.screenshot(str(SCREENSHOTS / "map.png"))


def test_form_survives_logging_in_again(
    browser: Any, server: str, evidence_home: dict[str, Any]
) -> None:
    """A note typed before logging in again elsewhere comes back to be sent, and is recorded."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    _login_if_needed(browser, server)
    browser.get(f"{server}/evidence/item/{evidence_home['hostile']}")
    note = "Make field holds a script; treated as text."
    browser.find_element(By.ID, "comment").send_keys(note)
    # Logging in again elsewhere: Airflow issues a new token, which becomes this browser's.
    request = urllib.request.Request(
        f"{server}/auth/token",
        data=json.dumps({"username": "analyst", "password": USERS["analyst"][1]}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=WAIT) as response:
        fresh = json.load(response)["access_token"]
    assert fresh != browser.get_cookie("_token")["value"]
    browser.add_cookie({"name": "_token", "value": fresh, "path": "/"})
    browser.find_element(By.ID, "add-comment").click()
    kept = _wait(browser, ec.presence_of_element_located((By.ID, "stale-form")))
    assert note in kept.find_element(By.TAG_NAME, "textarea").get_attribute("value")
    browser.find_element(By.ID, "send-again").click()
    remarks = _wait(browser, ec.presence_of_element_located((By.ID, "remarks")))
    assert note in remarks.text


def test_video_keyframes_carry_timecodes(
    browser: Any, server: str, evidence_home: dict[str, Any]
) -> None:
    """The demo video's keyframes show where in the video each was taken."""
    from selenium.webdriver.common.by import By

    _login_if_needed(browser, server)
    browser.get(f"{server}/evidence/?q=checkpoint.mp4")
    browser.find_element(By.CSS_SELECTOR, "#queue a.mono").click()
    captions = [
        c.text for c in browser.find_elements(By.CSS_SELECTOR, "figure.keyframe figcaption")
    ]
    assert captions and captions[0] == "0:00.0"
    assert all(re.fullmatch(r"\d+:\d\d\.\d", c) for c in captions), captions


def test_full_size_view_zooms_and_video_proxy_plays(
    browser: Any, server: str, evidence_home: dict[str, Any]
) -> None:
    """The market photo's full-size view loads and zooms to 200 %; the demo video's proxy
    loads its duration and plays in Chromium (currentTime advances)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    _login_if_needed(browser, server)
    browser.get(f"{server}/evidence/?q=market.jpg")
    browser.find_element(By.CSS_SELECTOR, "#queue a.mono").click()
    browser.find_element(By.CSS_SELECTOR, "#view-link a").click()
    image = _wait(browser, ec.presence_of_element_located((By.ID, "full-view")))
    _wait(browser, lambda d: d.execute_script("return arguments[0].naturalWidth", image) > 0)
    fit = browser.execute_script("return arguments[0].getBoundingClientRect().width", image)
    browser.find_element(By.CSS_SELECTOR, "label[for=zoom-1]").click()
    browser.find_element(By.ID, "view").screenshot(str(SCREENSHOTS / "view.png"))
    browser.find_element(By.CSS_SELECTOR, "label[for=zoom-2]").click()
    zoomed = browser.execute_script("return arguments[0].getBoundingClientRect().width", image)
    natural = browser.execute_script("return arguments[0].naturalWidth", image)
    assert zoomed == pytest.approx(2 * natural, abs=1) and zoomed > fit
    assert "metadata removed" in browser.find_element(By.ID, "view-facts").text

    browser.get(f"{server}/evidence/?q=checkpoint.mp4")
    browser.find_element(By.CSS_SELECTOR, "#queue a.mono").click()
    video = browser.find_element(By.ID, "proxy")
    _wait(browser, lambda d: d.execute_script("return arguments[0].readyState", video) >= 1)
    duration = browser.execute_script("return arguments[0].duration", video)
    assert 1.5 < duration < 4, duration  # the demo clip lasts 2 s
    browser.execute_script("arguments[0].muted = true; arguments[0].play()", video)
    _wait(browser, lambda d: d.execute_script("return arguments[0].currentTime", video) > 0.2)
    assert browser.execute_script("return arguments[0].error", video) is None
