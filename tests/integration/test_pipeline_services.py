"""The pipeline end to end on the production parts: S3 over HTTP (moto) and PostgreSQL."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.helpers import init_context, make_settings, photo
from verification import pipeline
from verification.claims import Claims
from verification.intake import submit_file
from verification.pipeline import vault_key
from verification.storage.s3 import S3Store

KYIV = (50.4501, 30.5234, 179.0)


def _settings(tmp_path: Path, store: S3Store, **kw: object):  # type: ignore[no-untyped-def]
    return make_settings(
        tmp_path / "home",
        store="s3",
        s3_bucket=store.bucket,
        s3_endpoint_url=store.client.meta.endpoint_url,
        s3_region="us-east-1",
        **kw,
    )


def _submit_three(ctx: pipeline.Context, tmp_path: Path) -> list[bytes]:
    files = [
        photo(1, taken="2024:03:14 11:20:05", offset="+02:00", gps=KYIV),
        photo(2, taken="2024:03:14 11:25:00", offset="+02:00"),
        b"\xff\xd8\xff\xe1 truncated",
    ]
    for i, data in enumerate(files):
        path = tmp_path / f"f{i}.jpg"
        path.write_bytes(data)
        submit_file(
            ctx.store,
            path,
            Claims("case-s3", "w", KYIV[0], KYIV[1], datetime(2024, 3, 14, 9, 30, tzinfo=UTC)),
        )
    return files


@pytest.mark.integration
def test_s3_submissions_are_preserved_with_versions_and_verified(
    tmp_path: Path, s3_store: S3Store
) -> None:
    """Through moto's HTTP server: vault copies carry version ids, the chain verifies, reruns add nothing."""
    ctx = init_context(_settings(tmp_path, s3_store, workers=2), store=s3_store)
    files = _submit_three(ctx, tmp_path)
    outcomes = pipeline.ingest(ctx)
    statuses = sorted(o.status for o in outcomes)
    assert statuses.count("unreadable") == 1
    assert "failed" not in statuses
    for data in files:
        sha = hashlib.sha256(data).hexdigest()
        info = s3_store.head(vault_key(sha))
        assert info.version_id
        with s3_store.open(vault_key(sha)) as handle:
            assert handle.read() == data
    assert ctx.ledger.verify().ok
    assert pipeline.ingest(ctx) == []


@pytest.mark.integration
@pytest.mark.postgres
def test_pipeline_on_postgresql_ledger(tmp_path: Path, s3_store: S3Store, pg_url: str) -> None:
    """The ledger on PostgreSQL records the same items and verifies."""
    ctx = init_context(_settings(tmp_path, s3_store, database_url=pg_url), store=s3_store)
    _submit_three(ctx, tmp_path)
    outcomes = pipeline.ingest(ctx)
    assert len(outcomes) == 3
    assert ctx.ledger.verify().ok
    again = [pipeline.process_submission(ctx, o.key) for o in outcomes]
    assert again == outcomes
    ctx.engine.dispose()


@pytest.mark.integration
def test_hostile_keys_from_the_bucket_fail_alone(tmp_path: Path, s3_store: S3Store) -> None:
    """Objects dropped by other clients under unsafe keys are refused with a reason; the rest proceed."""
    ctx = init_context(_settings(tmp_path, s3_store), store=s3_store)
    good = photo(3, taken="2024:03:14 11:20:05")
    s3_store.client.put_object(Bucket=s3_store.bucket, Key="incoming/case-x/ok.jpg", Body=good)
    for key in (
        "incoming/case-x/..\\..\\win.jpg",
        "incoming/case-x//double.jpg",
        "incoming/case-x/a/./b.jpg",
    ):
        s3_store.client.put_object(Bucket=s3_store.bucket, Key=key, Body=b"\xff\xd8\xff")
    outcomes = {o.key: o for o in pipeline.ingest(ctx)}
    assert outcomes["incoming/case-x/ok.jpg"].status == "consistent"
    hostile = [o for k, o in outcomes.items() if k != "incoming/case-x/ok.jpg"]
    assert len(hostile) == 3
    assert all(o.status == "failed" and "InvalidKey" in (o.error or "") for o in hostile)
    assert ctx.ledger.verify().ok
