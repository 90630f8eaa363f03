"""Analyst review UI inside Airflow: a FastAPI app mounted at ``/evidence`` with a nav entry.

Thin by design: routes check who the user is, then call ``verification.review`` and
``verification.report``. See docs/review-ui.md.
"""
