"""The view page turns a stripped JPEG as its recorded EXIF orientation says: for each of the
eight orientations, Chromium's rendering of the real template matches Pillow's transpose of the
stored picture (the same mapping the analysis applies to thumbnails)."""

from __future__ import annotations

import io
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.plugins.evidence_fixtures import PLUGINS

pytestmark = [pytest.mark.browser, pytest.mark.integration]

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
COLOURS = [(220, 30, 30), (30, 200, 30), (30, 30, 220), (240, 220, 20)]  # TL, TR, BL, BR


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Headless Debian Chromium; skipped when it is not installed."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("chromium and chromium-driver are not installed")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    profile = tmp_path_factory.mktemp("chromium-profile")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    options.add_argument("--window-size=1400,1400")
    options.add_argument(f"--user-data-dir={profile}")
    browser = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        yield browser
    finally:
        browser.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _stored() -> Image.Image:
    """A 3000x2000 picture in four coloured quarters, so any turn or mirror shows."""
    image = Image.new("RGB", (3000, 2000))
    for index, colour in enumerate(COLOURS):
        x, y = (index % 2) * 1500, (index // 2) * 1000
        image.paste(colour, (x, y, x + 1500, y + 1000))
    return image


def _render(tmp: Path, orientation: int) -> Path:
    """The view page from the plugin's own template, the picture beside it."""
    sys.path.insert(0, str(PLUGINS))
    try:
        from evidence_review.media import ORIENTATION_CSS, zoom_levels
    finally:
        sys.path.remove(str(PLUGINS))
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    sha = "ab" * 32
    picture = tmp / "item" / sha / "media" / "view.jpg"
    picture.parent.mkdir(parents=True, exist_ok=True)
    _stored().save(picture, "JPEG", quality=95)
    env = Environment(
        loader=FileSystemLoader(PLUGINS / "evidence_review" / "templates"),
        autoescape=True,
        undefined=StrictUndefined,
    )
    detail = {
        "width": 3000,
        "height": 2000,
        "size": picture.stat().st_size,
        "method": "stripped",
        "removed": {"Exif": 1},
        "orientation": orientation,
    }
    html = env.get_template("view.html").render(
        base=tmp.as_uri(),
        sha=sha,
        kind="image",
        media={"state": "ready", "name": "view.jpg", "detail": detail},
        levels=zoom_levels(3000, 2000, orientation),
        transform=ORIENTATION_CSS[orientation],
    )
    page = tmp / f"view-{orientation}.html"
    page.write_text(html)
    return page


def _expected(orientation: int) -> Image.Image:
    methods = {
        2: Image.Transpose.FLIP_LEFT_RIGHT,
        3: Image.Transpose.ROTATE_180,
        4: Image.Transpose.FLIP_TOP_BOTTOM,
        5: Image.Transpose.TRANSPOSE,
        6: Image.Transpose.ROTATE_270,
        7: Image.Transpose.TRANSVERSE,
        8: Image.Transpose.ROTATE_90,
    }
    image = _stored()
    return image.transpose(methods[orientation]) if orientation in methods else image


def _close(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    return all(abs(x - y) <= 40 for x, y in zip(a, b, strict=False))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_view_page_shows_the_picture_upright(driver: Any, tmp_path: Path, orientation: int) -> None:
    """At *fit*, the stored 3000x2000 picture is shown turned as orientation N says, in a frame
    of the turned proportions."""
    from selenium.webdriver.common.by import By

    driver.get(_render(tmp_path, orientation).as_uri())
    image = driver.find_element(By.ID, "full-view")
    assert driver.execute_script("return arguments[0].naturalWidth", image) == 3000
    stage = driver.find_element(By.CSS_SELECTOR, ".viewer .stage")
    shot = Image.open(io.BytesIO(stage.screenshot_as_png)).convert("RGB")
    expected = _expected(orientation)
    assert abs(shot.width / shot.height - expected.width / expected.height) < 0.02
    for fx, fy in ((0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75)):
        want = expected.getpixel((int(expected.width * fx), int(expected.height * fy)))
        got = shot.getpixel((int(shot.width * fx), int(shot.height * fy)))
        assert isinstance(want, tuple) and isinstance(got, tuple)
        assert _close(got, want), (orientation, (fx, fy), got, want)
