"""The object-store contract shared by the local and S3 backends."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

from verification.core.hashing import Digests


class StoreError(Exception):
    """Any object-store failure the caller should report (base class)."""


class ObjectNotFound(StoreError):
    """The key (or the requested version) does not exist."""


class ObjectExists(StoreError):
    """A write-once put found the key already present."""


class StoreUnavailable(StoreError):
    """The store cannot be reached or refused access (network, credentials, permissions)."""


class InvalidKey(StoreError, ValueError):
    """An object key that is unsafe or malformed (``..``, absolute, backslash, control chars)."""


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """What the store says about one object; ``metadata`` keys are lower-case."""

    key: str
    size: int
    etag: str
    last_modified: datetime
    version_id: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)


@runtime_checkable
class ObjectStore(Protocol):
    """Streaming object storage. Implementations never hold a whole object in memory."""

    @property
    def url(self) -> str:
        """Where the store lives (``s3://bucket`` or ``file:///path``), for records and logs."""
        ...

    def head(self, key: str, version_id: str | None = None) -> ObjectInfo:
        """Describe one object; raises :class:`ObjectNotFound`."""
        ...

    def open(self, key: str, version_id: str | None = None) -> BinaryIO:
        """A readable binary stream, read lazily (close it); raises :class:`ObjectNotFound`."""
        ...

    def put(
        self,
        key: str,
        data: BinaryIO,
        *,
        metadata: Mapping[str, str] | None = None,
        sha256: str | None = None,
        if_absent: bool = False,
    ) -> ObjectInfo:
        """Stream ``data`` to ``key``.

        ``sha256`` (hex) lets the store verify the transfer; a mismatch raises
        :class:`StoreError` and stores nothing. ``if_absent`` makes the write write-once:
        :class:`ObjectExists` when the key is already there, even against a concurrent writer.
        Metadata names are lower-cased; values round-trip exactly, non-ASCII included.
        """
        ...

    def list(
        self, prefix: str = "", *, modified_since: datetime | None = None
    ) -> Iterator[ObjectInfo]:
        """Every object under ``prefix``, in key (UTF-8 byte) order, fetched page by page.

        Listings carry key, size, etag and time but no user ``metadata`` (S3 listings do not
        return it): call :meth:`head` for that. With ``modified_since``, objects last modified
        before that time are left out (skipped as cheaply as the store allows).
        """
        ...

    def exists(self, key: str) -> bool:
        """Whether ``key`` exists (a missing bucket or an unreachable store still raises)."""
        ...


class StagedObject(Protocol):
    """An object written before its key is known, published under its key once the bytes are in.

    The store hashes the bytes as they are written (:meth:`digests`), so an object keyed by its
    own SHA-256 needs one pass: write, then publish under the digest.
    """

    @property
    def path(self) -> Path:
        """A local file holding the bytes; readable until the staging ends, published or not."""
        ...

    def write(self, data: bytes) -> int:
        """Append ``data``; returns its length."""
        ...

    def digests(self) -> Digests:
        """SHA-256, SHA-1, MD5 and size of everything written."""
        ...

    def publish(self, key: str, *, sha256: str | None = None) -> ObjectInfo:
        """Make the bytes the write-once object ``key``, durably; no more writes after this.

        ``sha256`` (hex) is checked against what was written first: a mismatch raises
        :class:`StoreError` and publishes nothing. An existing ``key`` is never replaced:
        :class:`ObjectExists`, even against a concurrent writer.
        """
        ...


@runtime_checkable
class StagingStore(Protocol):
    """An optional capability (the local store has it): write first, choose the key after.

    Leaving the context discards the staged bytes (the published object stays), on every path:
    a failure before :meth:`StagedObject.publish` leaves no object behind.
    """

    def stage(self) -> AbstractContextManager[StagedObject]:
        """A new, empty staged object."""
        ...
