"""Airflow plugin entry point: mounts the evidence review app and adds the "Evidence" nav entry."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from evidence_review.app import app

URL_PREFIX = "/evidence"


class EvidenceReviewPlugin(AirflowPlugin):
    """Review queue, item pages, decisions and case summaries for analysts."""

    name = "evidence_review"
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "Evidence review"}]  # noqa: RUF012 (Airflow reads class attributes)
    # url_route embeds the page in the Airflow UI (an iframe at /plugin/evidence) under the same
    # origin, so the UI's `_token` cookie authenticates it; nav_top_level puts it in the sidebar.
    external_views = [  # noqa: RUF012
        {
            "name": "Evidence",
            "href": f"{URL_PREFIX}/",
            "destination": "nav",
            "url_route": "evidence",
            "nav_top_level": True,
        },
        {
            "name": "Submit evidence",
            "href": f"{URL_PREFIX}/submit",
            "destination": "nav",
            "url_route": "evidence-submit",
            "nav_top_level": True,
        },
    ]
