"""Any S3 endpoint (AWS, MinIO, moto) as an object store, through boto3.

Every put sends the object's SHA-256 (``ChecksumSHA256``) so the server verifies the transfer;
write-once puts are S3 conditional writes (``If-None-Match: *``) on both the single-request and the
multipart path, so two writers racing for one key cannot both win. User metadata values are
percent-encoded on the wire (S3 headers are ASCII) and decoded on read, so they round-trip exactly.

Over 500 lines on purpose: it is one class implementing one contract (:class:`ObjectStore`)
against one API, and its error mapping, multipart path and Object Lock handling are read together.
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from typing import Any, BinaryIO

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    CredentialRetrievalError,
    HTTPClientError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from verification.core.text import printable
from verification.storage._stream import (
    Digests,
    copy_with_digests,
    decode_metadata_value,
    encode_metadata_value,
    expected_sha256,
)
from verification.storage.base import (
    ObjectExists,
    ObjectInfo,
    ObjectNotFound,
    StoreError,
    StoreUnavailable,
)
from verification.storage.keys import normalize_metadata, validate_key, validate_prefix

logger = logging.getLogger(__name__)

MiB = 1024 * 1024
MAX_PARTS = 10_000
_MISSING_BUCKET = {"NoSuchBucket"}
_NOT_FOUND = {"NoSuchKey", "NoSuchVersion", "NotFound", "404"}
_EXISTS = {"PreconditionFailed", "412"}
_DENIED = {
    "AccessDenied",
    "AllAccessDisabled",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "403",
}
_DIGEST = {"BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch"}
_Parts = list[dict[str, Any]]  # CompleteMultipartUpload's part list
_CREDENTIALS = (
    NoCredentialsError,
    PartialCredentialsError,
    CredentialRetrievalError,
    NoRegionError,
)


def make_client(
    endpoint_url: str | None = None,
    region: str | None = None,
    *,
    max_attempts: int = 3,
    connect_timeout: float = 5,
    read_timeout: float = 60,
) -> Any:
    """A boto3 S3 client with bounded retries and timeouts; path-style for custom endpoints."""
    options: dict[str, Any] = {
        "retries": {"max_attempts": max_attempts, "mode": "standard"},
        "connect_timeout": connect_timeout,
        "read_timeout": read_timeout,
    }
    if endpoint_url:
        # MinIO and moto serve buckets under the path, not as virtual hosts.
        options["s3"] = {"addressing_style": "path"}
    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint_url, region_name=region, config=Config(**options)
    )


class S3Store:
    """A bucket as an object store. Streams both ways; never reads a whole object into memory."""

    def __init__(
        self,
        bucket: str,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        retention_days: int = 0,
        client: Any = None,
        page_size: int = 1000,
        multipart_threshold: int = 64 * MiB,
        part_size: int = 16 * MiB,
    ) -> None:
        if part_size < 5 * MiB:
            msg = "part_size must be at least 5 MiB (the S3 minimum for all but the last part)"
            raise ValueError(msg)
        self._bucket = bucket
        self._client = client if client is not None else make_client(endpoint_url, region)
        self._endpoint = endpoint_url or self._client.meta.endpoint_url
        self._retention_days = retention_days
        self._page_size = page_size
        self._multipart_threshold = multipart_threshold
        self._part_size = part_size
        self._lock_enabled: bool | None = None
        self._bucket_seen = False

    def __repr__(self) -> str:
        return f"S3Store({self._bucket!r}, endpoint_url={self._endpoint!r})"

    @property
    def url(self) -> str:
        """``s3://bucket``."""
        return f"s3://{self._bucket}"

    @property
    def bucket(self) -> str:
        """The bucket name."""
        return self._bucket

    @property
    def client(self) -> Any:
        """The boto3 client (for callers that need an S3 feature the contract does not cover)."""
        return self._client

    def head(self, key: str, version_id: str | None = None) -> ObjectInfo:
        """Describe one object (HEAD); raises :class:`ObjectNotFound`."""
        validate_key(key)
        with self._errors(key):
            response = self._client.head_object(**self._object_args(key, version_id))
        return _info_from_head(key, response)

    def open(self, key: str, version_id: str | None = None) -> BinaryIO:
        """The object's body, read lazily from the connection (close it when done).

        The body asks for checksum mode, so botocore verifies a stored full-object checksum as
        the last byte is read; a truncated or corrupted transfer raises :class:`StoreError`.
        """
        validate_key(key)
        with self._errors(key):
            response = self._client.get_object(
                **self._object_args(key, version_id), ChecksumMode="ENABLED"
            )
        return io.BufferedReader(_ResponseBody(response["Body"], self._translate, key))

    def put(
        self,
        key: str,
        data: BinaryIO,
        *,
        metadata: Mapping[str, str] | None = None,
        sha256: str | None = None,
        if_absent: bool = False,
    ) -> ObjectInfo:
        """Upload ``data`` with its SHA-256 for server-side verification; multipart when large.

        A ``sha256`` that does not match the data stops the upload before anything is sent. With
        ``if_absent`` the write is conditional (:class:`ObjectExists` when the key exists) and,
        when ``retention_days`` is set and the bucket has Object Lock, retained in GOVERNANCE mode.
        """
        validate_key(key)
        values = normalize_metadata(metadata)
        expected = expected_sha256(sha256)
        with _rewindable(data) as (body, digests):
            if expected is not None and digests.sha256 != expected:
                msg = (
                    f"sha256 mismatch for {key!r}: expected {expected}, "
                    f"received {digests.sha256}; nothing stored"
                )
                raise StoreError(msg)
            with self._errors(key):
                if if_absent and self._exists(key):
                    msg = f"object {key!r} already exists in {self.url}"
                    raise ObjectExists(msg)
                extra = self._put_args(values, if_absent=if_absent)
                if digests.size > self._multipart_threshold:
                    version_id = self._put_multipart(key, body, digests, extra, if_absent)
                else:
                    version_id = self._put_single(key, body, digests, extra, if_absent)
        logger.debug("stored %s in %s (%s bytes)", printable(key), self.url, digests.size)
        return self.head(key, version_id=version_id)

    def list(
        self, prefix: str = "", *, modified_since: datetime | None = None
    ) -> Iterator[ObjectInfo]:
        """Every object under ``prefix`` in key order, ``page_size`` keys per request.

        ``metadata`` is empty (listings do not carry it; use head). Keys are yielded as stored,
        even ones :func:`validate_key` would refuse, so callers can report them. S3 cannot
        filter a listing by time: ``modified_since`` is applied to each page as it arrives, so
        the requests still grow with the prefix (docs/scaling.md).
        """
        validate_prefix(prefix)
        if modified_since is not None and modified_since.tzinfo is None:
            modified_since = modified_since.replace(tzinfo=UTC)
        paginator = self._client.get_paginator("list_objects_v2")
        pages = paginator.paginate(
            Bucket=self._bucket, Prefix=prefix, PaginationConfig={"PageSize": self._page_size}
        )
        with self._errors(prefix):
            for page in pages:
                for item in page.get("Contents", []):
                    if modified_since is not None and item["LastModified"] < modified_since:
                        continue
                    yield ObjectInfo(
                        key=item["Key"],
                        size=item["Size"],
                        etag=_etag(item["ETag"]),
                        last_modified=item["LastModified"],
                    )

    def exists(self, key: str) -> bool:
        """Whether ``key`` exists."""
        validate_key(key)
        with self._errors(key):
            return self._exists(key)

    def ensure_bucket(self, versioning: bool = True, object_lock: bool = False) -> None:
        """Create the bucket if needed (idempotent); enable versioning and, optionally, Object Lock.

        Object Lock implies versioning. Used by ``evidence init`` and by tests.
        """
        args: dict[str, Any] = {"Bucket": self._bucket}
        region = self._client.meta.region_name
        if region and region != "us-east-1":
            args["CreateBucketConfiguration"] = {"LocationConstraint": region}
        if object_lock:
            args["ObjectLockEnabledForBucket"] = True
        with self._errors(None):
            try:
                self._client.create_bucket(**args)
                logger.info("created bucket %s at %s", self._bucket, self._endpoint)
            except ClientError as exc:
                if _code(exc) != "BucketAlreadyOwnedByYou":
                    raise
            if versioning or object_lock:
                self._client.put_bucket_versioning(
                    Bucket=self._bucket, VersioningConfiguration={"Status": "Enabled"}
                )
            if object_lock and not self._object_lock_enabled(refresh=True):
                self._client.put_object_lock_configuration(
                    Bucket=self._bucket,
                    ObjectLockConfiguration={"ObjectLockEnabled": "Enabled"},
                )
        self._lock_enabled = None
        self._bucket_seen = True

    def _object_args(self, key: str, version_id: str | None) -> dict[str, Any]:
        args: dict[str, Any] = {"Bucket": self._bucket, "Key": key}
        if version_id is not None:
            args["VersionId"] = version_id
        return args

    def _exists(self, key: str) -> bool:
        try:
            self._client.head_object(Bucket=self._bucket, Key=key)
        except ClientError as exc:
            if _status(exc) == 404:
                self._check_bucket()
                return False
            raise
        return True

    def _put_args(self, values: Mapping[str, str], *, if_absent: bool) -> dict[str, Any]:
        """Metadata and, for write-once objects in a locked bucket, the retention."""
        extra: dict[str, Any] = {
            "Metadata": {name: encode_metadata_value(value) for name, value in values.items()}
        }
        if if_absent and self._retention_days > 0 and self._object_lock_enabled():
            until = datetime.now(UTC) + timedelta(days=self._retention_days)
            extra["ObjectLockMode"] = "GOVERNANCE"
            extra["ObjectLockRetainUntilDate"] = until
        return extra

    def _put_single(
        self,
        key: str,
        body: BinaryIO,
        digests: Digests,
        extra: Mapping[str, Any],
        if_absent: bool,
    ) -> str | None:
        args: dict[str, Any] = {
            "Bucket": self._bucket,
            "Key": key,
            "Body": body,
            "ContentLength": digests.size,
            "ChecksumAlgorithm": "SHA256",
            "ChecksumSHA256": _b64(bytes.fromhex(digests.sha256)),
            **extra,
        }
        if if_absent:
            args["IfNoneMatch"] = "*"
        response = self._client.put_object(**args)
        version_id: str | None = response.get("VersionId")
        return version_id

    def _put_multipart(
        self,
        key: str,
        body: BinaryIO,
        digests: Digests,
        extra: Mapping[str, Any],
        if_absent: bool,
    ) -> str | None:
        """Parts of ``part_size`` (one in memory at a time), each verified by the server."""
        upload = self._client.create_multipart_upload(
            Bucket=self._bucket, Key=key, ChecksumAlgorithm="SHA256", **extra
        )
        upload_id = upload["UploadId"]
        try:
            parts = self._upload_parts(key, upload_id, body, digests)
            args: dict[str, Any] = {
                "Bucket": self._bucket,
                "Key": key,
                "UploadId": upload_id,
                "MultipartUpload": {"Parts": parts},
            }
            if if_absent:
                args["IfNoneMatch"] = "*"
            response = self._client.complete_multipart_upload(**args)
        except BaseException:
            with suppress(ClientError, BotoCoreError):
                self._client.abort_multipart_upload(
                    Bucket=self._bucket, Key=key, UploadId=upload_id
                )
            raise
        version_id: str | None = response.get("VersionId")
        return version_id

    def _upload_parts(self, key: str, upload_id: str, body: BinaryIO, digests: Digests) -> _Parts:
        part_size = max(self._part_size, -(-digests.size // MAX_PARTS))
        whole = hashlib.sha256()
        parts: _Parts = []
        while chunk := _read_exactly(body, part_size):
            whole.update(chunk)
            checksum = _b64(hashlib.sha256(chunk).digest())
            response = self._client.upload_part(
                Bucket=self._bucket,
                Key=key,
                UploadId=upload_id,
                PartNumber=len(parts) + 1,
                Body=chunk,
                ChecksumSHA256=checksum,
            )
            parts.append(
                {"PartNumber": len(parts) + 1, "ETag": response["ETag"], "ChecksumSHA256": checksum}
            )
        if whole.hexdigest() != digests.sha256:
            msg = f"the data for {key!r} changed while it was being uploaded; nothing stored"
            raise StoreError(msg)
        return parts

    def _object_lock_enabled(self, *, refresh: bool = False) -> bool:
        """Whether the bucket has Object Lock enabled (asked once, then cached)."""
        if self._lock_enabled is None or refresh:
            try:
                response = self._client.get_object_lock_configuration(Bucket=self._bucket)
            except ClientError as exc:
                if _code(exc) != "ObjectLockConfigurationNotFoundError":
                    raise
                self._lock_enabled = False
            else:
                configuration = response.get("ObjectLockConfiguration", {})
                self._lock_enabled = configuration.get("ObjectLockEnabled") == "Enabled"
        return self._lock_enabled

    def _check_bucket(self) -> None:
        """Tell a missing bucket from a missing key: HEAD answers a bare 404 for both."""
        if self._bucket_seen:
            return
        try:
            self._client.head_bucket(Bucket=self._bucket)
        except ClientError as exc:
            if _status(exc) == 404:
                raise self._translate(exc, None, missing_bucket=True) from exc
            return  # e.g. 403 without s3:ListBucket: the bucket may well exist
        self._bucket_seen = True

    @contextmanager
    def _errors(self, key: str | None) -> Iterator[None]:
        """Translate boto3 failures into store errors that name the bucket, never the data."""
        try:
            yield
        except StoreError:
            raise
        except ClientError as exc:
            if _status(exc) == 404 and _code(exc) not in _MISSING_BUCKET:
                self._check_bucket()
            raise self._translate(exc, key) from exc
        except BotoCoreError as exc:
            raise self._translate(exc, key) from exc

    def _translate(
        self, exc: Exception, key: str | None, *, missing_bucket: bool = False
    ) -> StoreError:
        where = f"bucket {self._bucket!r} at {self._endpoint}"
        subject = f"{key!r} in {where}" if key is not None else where
        if isinstance(exc, BotoConnectionError | HTTPClientError):
            return StoreUnavailable(f"cannot reach {where}: {type(exc).__name__}")
        if isinstance(exc, _CREDENTIALS):
            return StoreUnavailable(f"no usable credentials for {where}: {type(exc).__name__}")
        if not isinstance(exc, ClientError):
            return StoreError(f"S3 request failed for {subject}: {type(exc).__name__}")
        code, status = _code(exc), _status(exc)
        if missing_bucket or code in _MISSING_BUCKET:
            return StoreUnavailable(f"{where} does not exist")
        if code in _DENIED or status == 403:
            return StoreUnavailable(f"{where} refused access ({code})")
        if code in _NOT_FOUND or status == 404:
            return ObjectNotFound(f"no object {subject}")
        if code in _EXISTS or status == 412:
            return ObjectExists(f"object {subject} already exists")
        if code in _DIGEST:
            return StoreError(f"{where} rejected {key!r} ({code}); nothing stored")
        return StoreError(f"S3 request failed for {subject}: {code} (HTTP {status})")


class _ResponseBody(io.RawIOBase):
    """A botocore response body as a raw stream.

    ``StreamingBody.__enter__`` hands out the bare urllib3 response, which skips botocore's
    length and checksum checks; reading through this wrapper keeps them in every usage.
    """

    def __init__(
        self,
        body: Any,
        translate: Callable[[Exception, str | None], StoreError],
        key: str,
    ) -> None:
        self._body = body
        self._translate = translate
        self._key = key

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            data = self._body.read(len(buffer))
        except BotoCoreError as exc:
            raise self._translate(exc, self._key) from exc
        size = len(data)
        buffer[:size] = data
        return size

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()


@contextmanager
def _rewindable(data: BinaryIO) -> Iterator[tuple[BinaryIO, Digests]]:
    """``data`` (or a spooled copy) positioned at its start, with the digests of its content.

    Seekable streams at offset 0 are read twice (hash, then send); anything else is copied to a
    temporary file in 1 MiB chunks, so the body can be retried and its checksum sent up front.
    """
    try:
        at_start = data.seekable() and data.tell() == 0
    except (AttributeError, OSError, ValueError):
        at_start = False
    if at_start:
        digests = copy_with_digests(data)
        data.seek(0)
        yield data, digests
        return
    with tempfile.TemporaryFile(prefix="evidence-upload-") as spool:
        digests = copy_with_digests(data, spool)
        spool.seek(0)
        yield spool, digests


def _read_exactly(body: BinaryIO, size: int) -> bytes:
    """Up to ``size`` bytes, short only at the end of the stream."""
    chunks: list[bytes] = []
    remaining = size
    while remaining > 0 and (chunk := body.read(remaining)):
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _info_from_head(key: str, response: Mapping[str, Any]) -> ObjectInfo:
    metadata = {
        name.lower(): decode_metadata_value(value)
        for name, value in response.get("Metadata", {}).items()
    }
    return ObjectInfo(
        key=key,
        size=response["ContentLength"],
        etag=_etag(response["ETag"]),
        last_modified=response["LastModified"],
        version_id=response.get("VersionId"),
        metadata=metadata,
    )


def _etag(value: str) -> str:
    return value.strip('"')


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: ClientError) -> int | None:
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return int(status) if status is not None else None
