"""Anchors and reconciliation on S3 (moto over HTTP): anchors are retained under Object Lock,
custody verify reads them back, and an S3 outage or a planted object fails the checks."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from tests.helpers import init_context, make_settings, photo
from verification.core.claims import Claims
from verification.pipeline import Context, fixity, ingest
from verification.pipeline.submission import submit_file
from verification.storage import StoreUnavailable
from verification.storage.s3 import S3Store

pytestmark = pytest.mark.integration


@pytest.fixture
def ctx(tmp_path: Path, s3_server: str) -> Context:
    """Two photos ingested into a bucket with Object Lock and one-day retention."""
    bucket = f"trust-{os.urandom(6).hex()}"
    store = S3Store(bucket, endpoint_url=s3_server, region="us-east-1", retention_days=1)
    store.ensure_bucket(versioning=True, object_lock=True)
    settings = make_settings(
        tmp_path / "home",
        store="s3",
        s3_bucket=bucket,
        s3_endpoint_url=s3_server,
        s3_region="us-east-1",
        retention_days=1,
    )
    context = init_context(settings, store=store)
    fixity.pin_installation_key(context)
    for seed in (1, 2):
        path = tmp_path / f"p{seed}.jpg"
        path.write_bytes(photo(seed))
        submit_file(context.store, path, Claims("case-s3"))
    assert all(o.status != "failed" for o in ingest(context, workers=1))
    fixity.write_checkpoint(context)
    return context


def test_anchors_are_retained_and_verify_reads_them(ctx: Context) -> None:
    """The key pin and the checkpoint anchor are locked objects; verify passes from them."""
    store = ctx.store
    assert isinstance(store, S3Store)
    for key in ("checkpoints/anchors/0000000000.json", "checkpoints/anchors/0000000001.json"):
        assert store.client.head_object(Bucket=store.bucket, Key=key)["ObjectLockMode"] == (
            "GOVERNANCE"
        )
    report = fixity.verify_collection(ctx)
    assert report.ok, report.failures
    assert report.items == 2


def test_planted_vault_object_is_named(ctx: Context) -> None:
    """An object put in the vault by another S3 client is untracked and fails verify."""
    future = "12" * 32
    ctx.store.put(f"vault/sha256/12/12/{future}", io.BytesIO(b"planted"))
    assert [r.outcome for r in fixity.untracked_objects(ctx)] == ["untracked"]
    report = fixity.verify_collection(ctx)
    assert [str(f) for f in report.failures] == [
        f"item {future[:12]}: chain: vault object without an item (vault/sha256/12/12/{future})"
    ]


def test_store_outage_is_not_a_pass(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    """When the vault cannot be listed, verify says so instead of passing."""

    def refuse(_prefix: str = "") -> None:
        raise StoreUnavailable("AccessDenied")

    real = ctx.store.list
    monkeypatch.setattr(ctx.store, "list", lambda p="": refuse(p) if p == "vault/" else real(p))
    report = fixity.verify_collection(ctx)
    assert "the vault could not be listed" in [f.reason for f in report.failures]
