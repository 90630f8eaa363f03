"""Near-duplicates on the production parts: S3 over HTTP (moto) and PostgreSQL.

The same uploads ingested in different orders, batch cuts and worker counts record the same
links, findings and statuses; two ingests running at once on one PostgreSQL ledger, each with
one of two near-duplicates, still link them (the dedupe lock).
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.helpers import init_context, make_settings
from tests.unit.test_pipeline_dedupe import _run, _shuffled, _snapshot, _uploads
from verification import pipeline
from verification.core.claims import Claims
from verification.ledger.models import DuplicateLink, Item
from verification.pipeline.submission import submit_file
from verification.storage.s3 import S3Store

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def _database(pg_url: str) -> Iterator[str]:
    """Another fresh database on the server behind ``pg_url``, dropped afterwards."""
    import psycopg2

    name = f"evidence_test_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield pg_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def _context(home: Path, store: S3Store, url: str, workers: int) -> pipeline.Context:
    settings = make_settings(
        home,
        store="s3",
        s3_bucket=store.bucket,
        s3_endpoint_url=store.client.meta.endpoint_url,
        s3_region="us-east-1",
        database_url=url,
        workers=workers,
    )
    return init_context(settings, store=store)


def _upload_all(store: S3Store, tmp_path: Path) -> list[str]:
    keys = []
    for case, name, data in _uploads():
        path = tmp_path / "files" / case / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        keys.append(submit_file(store, path, Claims(case, "witness")).key)
    return keys


@pytest.mark.integration
@pytest.mark.postgres
def test_shuffled_ingests_on_s3_and_postgresql_agree(
    tmp_path: Path, s3_store: S3Store, pg_url: str
) -> None:
    """ingest (first-seen order) and two seeded permutations cut into batches, each on its own
    PostgreSQL ledger over one bucket, record identical links, findings and statuses."""
    keys = _upload_all(s3_store, tmp_path)
    reference = _context(tmp_path / "ref", s3_store, pg_url, workers=2)
    pipeline.ingest(reference)
    expected = _snapshot(reference)
    assert any(item["duplicates"] for item in expected["items"].values())
    reference.engine.dispose()
    for seed in (11, 12):
        groups, workers = _shuffled(sorted(keys), seed)
        with _database(pg_url) as url:
            ctx = _context(tmp_path / f"run-{seed}", s3_store, url, workers)
            _run(ctx, groups, workers)
            assert _snapshot(ctx) == expected, f"order {groups}, {workers} workers"
            assert ctx.ledger.verify().ok
            ctx.engine.dispose()


@pytest.mark.integration
@pytest.mark.postgres
def test_two_ingests_at_once_link_near_duplicates(tmp_path: Path, pg_url: str) -> None:
    """Three rounds of two `evidence ingest --case` started together, each holding one of two
    near-duplicates (an original and its resized copy): every pair is linked both ways and
    both items need review, whichever run committed first."""
    from tests.unit.test_duplicates import _scene
    from tests.unit.test_pipeline_dedupe import _jpeg

    home = tmp_path / "home"
    ctx = init_context(make_settings(home, database_url=pg_url))
    env = {
        "EVIDENCE_HOME": str(home),
        "EVIDENCE_DATABASE_URL": pg_url,
        "EVIDENCE_WORKERS": "1",
        "PYTHONPATH": str(ROOT),
        "PATH": "/usr/bin:/bin",
    }
    pairs = []
    for round_ in range(3):
        image = _scene(200 + round_, (800, 600))
        for case, data in (
            (f"a{round_}", _jpeg(image)),
            (f"b{round_}", _jpeg(image.resize((400, 300)), 60)),
        ):
            path = tmp_path / case / "photo.jpg"
            path.parent.mkdir(parents=True)
            path.write_bytes(data)
            submit_file(ctx.store, path, Claims(case))
        argv = [sys.executable, "-m", "verification.cli", "ingest", "--no-progress", "--case"]
        runs = [
            subprocess.Popen(
                [*argv, case], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
            for case in (f"a{round_}", f"b{round_}")
        ]
        for run in runs:
            _, err = run.communicate(timeout=600)
            assert run.returncode == 0, err[-2000:]
        pairs.append((f"a{round_}", f"b{round_}"))
    with Session(ctx.engine) as session:
        case_of = {i.sha256: i.case_id for i in session.scalars(select(Item))}
        links = {
            (case_of[link.item_sha256], case_of[link.other_sha256])
            for link in session.scalars(select(DuplicateLink))
        }
        statuses = {i.case_id: i.status for i in session.scalars(select(Item))}
    for a, b in pairs:
        assert (a, b) in links and (b, a) in links
        assert statuses[a] == statuses[b] == "needs-review"
    assert ctx.ledger.verify().ok
    ctx.engine.dispose()
