"""Looking at media in the review app: the full-size view page with zoom, the video proxy on the
item page, the media route with HTTP Range, per-case access, and what shows when a view is not
there (not prepared yet, or could not be made).

SimpleAuthManager roles: ``analyst`` holds "user" (mapped to case-b only), ``admin`` every case,
``viewer`` is not mapped (sees nothing).
"""

from __future__ import annotations

import io
import re
from typing import Any

import exifread
import pytest
from PIL import Image
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.helpers import photo
from tests.plugins.evidence_fixtures import Evidence, build_evidence

ACCESS = {"user": ["case-b"], "Admin": ["*"]}


@pytest.fixture(scope="module")
def evidence(tmp_path_factory: pytest.TempPathFactory) -> Evidence:
    """The five photos plus the demo's clip in case-b, views made; then one more photo whose
    view is not made yet."""
    from verification import pipeline
    from verification.core.claims import Claims
    from verification.media import samples
    from verification.pipeline import views as item_views
    from verification.pipeline.submission import submit_file

    root = tmp_path_factory.mktemp("media")
    evidence = build_evidence(root / "home", case_access=ACCESS)
    clip = root / "clip.mp4"
    clip.write_bytes(samples.video(3, seconds=3))
    evidence.items["clip"] = submit_file(evidence.ctx.store, clip, Claims("case-b", "carol")).sha256
    pipeline.ingest(evidence.ctx, workers=1)
    item_views.make_views(evidence.ctx, item_views.missing_views(evidence.ctx))
    later = root / "later.jpg"
    later.write_bytes(photo(8))
    evidence.items["later"] = submit_file(evidence.ctx.store, later, Claims("case-a", "x")).sha256
    pipeline.ingest(evidence.ctx, workers=1)
    return evidence


def _events(evidence: Evidence) -> int:
    from verification.ledger.models import Event

    with Session(evidence.ctx.engine) as session:
        return session.scalar(select(func.count()).select_from(Event)) or 0


def test_photo_page_links_the_full_size_view_with_zoom(
    make_client: Any, evidence: Evidence
) -> None:
    """The item page links the view; the view page has the zoom steps and the picture."""
    admin = make_client("admin")
    sha = evidence.items["kyiv"]
    item = admin.get(f"/item/{sha}").text
    assert f'href="/item/{sha}/view"' in item and "Full-size view with zoom" in item
    page = admin.get(f"/item/{sha}/view")
    assert page.status_code == 200
    assert f'src="/item/{sha}/media/view.jpg"' in page.text
    assert re.findall(r'id="(zoom-\d)"', page.text) == ["zoom-0", "zoom-1", "zoom-2"]
    assert "metadata removed" in page.text and "Exif" in page.text
    assert "media-src 'self'" in page.headers["content-security-policy"]
    assert "script-src" not in page.headers["content-security-policy"]


def test_view_bytes_are_metadata_free_with_the_originals_pixels(
    make_client: Any, evidence: Evidence
) -> None:
    """The served view has no EXIF or GPS, and decodes to the original's pixels."""
    response = make_client("admin").get(f"/item/{evidence.items['kyiv']}/media/view.jpg")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/jpeg"
    assert response.headers["accept-ranges"] == "bytes"
    assert exifread.process_file(io.BytesIO(response.content), details=False) == {}
    original = evidence.originals["kyiv"]
    assert exifread.process_file(io.BytesIO(original), details=False)
    with Image.open(io.BytesIO(response.content)) as a, Image.open(io.BytesIO(original)) as b:
        assert a.tobytes() == b.tobytes()


def test_video_page_embeds_the_proxy(make_client: Any, evidence: Evidence) -> None:
    """The video's item page has a <video> playing the proxy, and the view page says what it is."""
    admin = make_client("admin")
    sha = evidence.items["clip"]
    item = admin.get(f"/item/{sha}").text
    assert (
        f'<video id="proxy" controls preload="metadata" src="/item/{sha}/media/proxy.webm">' in item
    )
    page = admin.get(f"/item/{sha}/view").text
    assert "WebM proxy" in page and "container metadata removed" in page


def test_range_requests_are_served_in_parts(make_client: Any, evidence: Evidence) -> None:
    """bytes=a-b, a- and -n give 206 with the right slice and Content-Range; a range past the
    end or several ranges give 416 with the size."""
    admin = make_client("admin")
    url = f"/item/{evidence.items['clip']}/media/proxy.webm"
    whole = admin.get(url)
    assert whole.status_code == 200 and whole.headers["content-type"] == "video/webm"
    body, size = whole.content, len(whole.content)
    assert int(whole.headers["content-length"]) == size > 1000
    cases = {
        "bytes=0-99": (0, 99),
        "bytes=100-": (100, size - 1),
        "bytes=-10": (size - 10, size - 1),
        f"bytes=500-{size + 1000}": (500, size - 1),
    }
    for header, (first, last) in cases.items():
        part = admin.get(url, headers={"Range": header})
        assert part.status_code == 206, header
        assert part.headers["content-range"] == f"bytes {first}-{last}/{size}"
        assert part.content == body[first : last + 1]
        assert int(part.headers["content-length"]) == last - first + 1
    for header in (f"bytes={size}-", "bytes=0-1,5-9", "bytes=9-2", "pages=1-2"):
        refused = admin.get(url, headers={"Range": header})
        assert refused.status_code == 416, header
        assert refused.headers["content-range"] == f"bytes */{size}"


def test_not_prepared_and_failed_views_say_so(make_client: Any, evidence: Evidence) -> None:
    """A photo recorded after the views ran: "not prepared yet" and 404 for its bytes; the
    truncated photo: the reason its view could not be made."""
    admin = make_client("admin")
    later = evidence.items["later"]
    assert "not prepared yet" in admin.get(f"/item/{later}").text
    assert "not prepared yet" in admin.get(f"/item/{later}/view").text
    assert admin.get(f"/item/{later}/media/view.jpg").status_code == 404
    broken = evidence.items["broken"]
    item = admin.get(f"/item/{broken}").text
    assert "No full-size view: truncated" in item
    assert "could not be made: truncated" in admin.get(f"/item/{broken}/view").text
    assert admin.get(f"/item/{broken}/media/view.jpg").status_code == 404


def test_only_views_are_served_never_the_original(make_client: Any, evidence: Evidence) -> None:
    """Any other name, the proxy name on a photo, or the thumbnail under media/ is a 404."""
    admin = make_client("admin")
    sha = evidence.items["kyiv"]
    for name in ("original", "thumbnail.jpg", "proxy.webm", "..%2Fview.jpg"):
        assert admin.get(f"/item/{sha}/media/{name}").status_code == 404, name


@pytest.mark.parametrize("path", ["/item/{sha}/view", "/item/{sha}/media/view.jpg"])
def test_per_case_access_applies_to_views(make_client: Any, evidence: Evidence, path: str) -> None:
    """The analyst (case-b only) gets 404 for a case-a photo's view; an unmapped viewer for any."""
    analyst, viewer = make_client("analyst"), make_client("viewer")
    assert analyst.get(path.format(sha=evidence.items["kyiv"])).status_code == 404
    assert analyst.get(path.format(sha=evidence.items["plain"])).status_code == 200
    assert viewer.get(path.format(sha=evidence.items["plain"])).status_code == 404
    clip = f"/item/{evidence.items['clip']}/media/proxy.webm"
    assert analyst.get(clip, headers={"Range": "bytes=0-9"}).status_code == 206
    assert viewer.get(clip).status_code == 404


def test_looking_writes_nothing(make_client: Any, evidence: Evidence) -> None:
    """Pages and bytes of views, ranges included, add no custody event."""
    before = _events(evidence)
    admin = make_client("admin")
    for sha in (evidence.items["kyiv"], evidence.items["clip"], evidence.items["later"]):
        admin.get(f"/item/{sha}/view")
    admin.get(f"/item/{evidence.items['clip']}/media/proxy.webm", headers={"Range": "bytes=0-"})
    assert _events(evidence) == before


def test_unauthenticated_gets_401(airflow_home: dict[str, str], evidence: Evidence) -> None:
    """Without a session, the media route is a 401 like every route."""
    from evidence_review.app import build_app
    from fastapi.testclient import TestClient

    with TestClient(build_app(lambda: evidence.ctx)) as client:
        url = f"/item/{evidence.items['kyiv']}/media/view.jpg"
        assert client.get(url).status_code == 401
