"""Object storage: one contract (:class:`ObjectStore`), a local-directory and an S3 backend."""

from __future__ import annotations

from verification.storage.base import (
    InvalidKey,
    ObjectExists,
    ObjectInfo,
    ObjectNotFound,
    ObjectStore,
    StagedObject,
    StagingStore,
    StoreError,
    StoreUnavailable,
)
from verification.storage.keys import key_problem, validate_key

__all__ = [
    "InvalidKey",
    "ObjectExists",
    "ObjectInfo",
    "ObjectNotFound",
    "ObjectStore",
    "StagedObject",
    "StagingStore",
    "StoreError",
    "StoreUnavailable",
    "key_problem",
    "open_store",
    "validate_key",
]


def open_store(settings: object) -> ObjectStore:
    """Build the store the settings describe (local directory or S3)."""
    from verification.core.config import Settings

    assert isinstance(settings, Settings)
    if settings.store == "s3":
        from verification.storage.s3 import S3Store

        return S3Store(
            settings.s3_bucket,
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
            retention_days=settings.retention_days,
        )
    from verification.storage.local import LocalStore

    return LocalStore(settings.resolved_store_path)
