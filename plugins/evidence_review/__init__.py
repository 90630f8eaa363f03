"""Analyst review UI inside Airflow: a FastAPI app mounted at ``/evidence`` with a nav entry.

Thin by design: routes check who the user is, then call ``verification.review`` and
``verification.pipeline.records``. See docs/review-ui.md.
"""
