"""Browser transfers straight to S3: presigned PUTs and multipart uploads, signed with checksums.

A browser never holds credentials and the api-server never holds the bytes: the server signs one
request at a time and the browser sends it to the store. Every signed request names the SHA-256
of the bytes it may carry (``x-amz-checksum-sha256`` is a signed header), so S3 and MinIO refuse
a body that does not match (``BadDigest``) and the checksum is stored with the object (a single
PUT) or with each part (multipart, where the store also keeps a composite checksum over the
parts: SHA-256 of the concatenated part digests, ``<base64>-<parts>``; full-object SHA-256 does
not exist for multipart uploads).
"""

from __future__ import annotations

import base64
import functools
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from verification.storage._stream import encode_metadata_value
from verification.storage.base import ObjectInfo, StoreError
from verification.storage.keys import normalize_metadata, validate_key
from verification.storage.s3 import S3Store

# The functions below reach S3Store._errors and _translate: this module is part of the storage
# package and maps boto3 failures to store errors exactly as the store does.

EXPIRES = 900  # seconds a signed request stays usable: one part over a slow line
MIN_PART = 5 * 1024 * 1024  # S3's minimum for every part but the last
MAX_PARTS = 10_000


class BrowserUploadsUnsupported(StoreError):
    """The configured store cannot take uploads from a browser (it is not S3)."""


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """A request the browser may send once: method, URL and the headers it must carry."""

    method: str
    url: str
    headers: Mapping[str, str]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, for the page."""
        return {"method": self.method, "url": self.url, "headers": dict(self.headers)}


@dataclass(frozen=True, slots=True)
class Part:
    """A part the store holds for an unfinished multipart upload."""

    number: int
    size: int
    etag: str


def s3_of(store: object) -> S3Store:
    """``store`` as an :class:`S3Store`, or :class:`BrowserUploadsUnsupported`."""
    if not isinstance(store, S3Store):
        msg = "uploads from the browser need an S3 store (EVIDENCE_STORE=s3, e.g. MinIO)"
        raise BrowserUploadsUnsupported(msg)
    return store


@functools.cache
def _presigner(endpoint_url: str | None, region: str | None) -> Any:
    """A client that signs with SigV4 (query-string signatures carry the signed headers' names;
    the older scheme some endpoints default to cannot sign a checksum header)."""
    options: dict[str, Any] = {"signature_version": "s3v4"}
    if endpoint_url:
        options["s3"] = {"addressing_style": "path"}
    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint_url, region_name=region, config=Config(**options)
    )


def _sign(store: S3Store, operation: str, params: Mapping[str, Any], public_url: str | None) -> str:
    """A signed URL for the host the browser reaches (SigV4 signs the host name)."""
    meta = store.client.meta
    client = _presigner(public_url or meta.endpoint_url, meta.region_name)
    with store._errors(params.get("Key")):
        return str(client.generate_presigned_url(operation, Params=dict(params), ExpiresIn=EXPIRES))


def b64_digest(hex_digest: str) -> str:
    """A hex SHA-256 in the base64 form S3 checksum headers use."""
    return base64.b64encode(bytes.fromhex(hex_digest)).decode("ascii")


def composite_sha256(part_digests: Sequence[str]) -> str:
    """The composite checksum S3 stores for a multipart object, from the parts' base64 digests."""
    joined = b"".join(base64.b64decode(d) for d in part_digests)
    return (
        f"{base64.b64encode(hashlib.sha256(joined).digest()).decode('ascii')}-{len(part_digests)}"
    )


def sign_put(
    store: S3Store,
    key: str,
    sha256: str,
    size: int,
    metadata: Mapping[str, str],
    public_url: str | None = None,
) -> SignedRequest:
    """A single-request upload of ``size`` bytes whose SHA-256 (hex) is ``sha256``, write-once.

    ``public_url`` is the endpoint as the browser reaches it (default: the store's own)."""
    validate_key(key)
    values = {k: encode_metadata_value(v) for k, v in normalize_metadata(metadata).items()}
    checksum = b64_digest(sha256)
    params = {
        "Bucket": store.bucket,
        "Key": key,
        "ContentLength": size,
        "ChecksumAlgorithm": "SHA256",
        "ChecksumSHA256": checksum,
        "Metadata": values,
        "IfNoneMatch": "*",
    }
    url = _sign(store, "put_object", params, public_url)
    headers = {
        "x-amz-checksum-sha256": checksum,
        "x-amz-sdk-checksum-algorithm": "SHA256",
        "if-none-match": "*",
        **{f"x-amz-meta-{k}": v for k, v in values.items()},
    }
    return SignedRequest("PUT", url, headers)


def start_multipart(store: S3Store, key: str, metadata: Mapping[str, str]) -> str:
    """Open a multipart upload (SHA-256 checksums per part) and return its upload id.

    Nothing appears under ``key`` until :func:`complete_multipart`; :func:`abort_multipart`
    discards every part.
    """
    validate_key(key)
    values = {k: encode_metadata_value(v) for k, v in normalize_metadata(metadata).items()}
    with store._errors(key):
        response = store.client.create_multipart_upload(
            Bucket=store.bucket, Key=key, ChecksumAlgorithm="SHA256", Metadata=values
        )
    return str(response["UploadId"])


def sign_part(
    store: S3Store,
    key: str,
    upload_id: str,
    number: int,
    checksum: str,
    size: int,
    public_url: str | None = None,
) -> SignedRequest:
    """Part ``number`` of an upload, ``size`` bytes whose SHA-256 (base64) is ``checksum``."""
    if not 1 <= number <= MAX_PARTS:
        msg = f"part number {number} is outside 1..{MAX_PARTS}"
        raise StoreError(msg)
    params = {
        "Bucket": store.bucket,
        "Key": key,
        "UploadId": upload_id,
        "PartNumber": number,
        "ContentLength": size,
        "ChecksumAlgorithm": "SHA256",
        "ChecksumSHA256": checksum,
    }
    url = _sign(store, "upload_part", params, public_url)
    headers = {"x-amz-checksum-sha256": checksum, "x-amz-sdk-checksum-algorithm": "SHA256"}
    return SignedRequest("PUT", url, headers)


def uploaded_parts(store: S3Store, key: str, upload_id: str) -> list[Part]:
    """The parts the store holds so far (what a resumed upload can skip), by part number."""
    parts: list[Part] = []
    marker = 0
    with store._errors(key):
        while True:
            response = store.client.list_parts(
                Bucket=store.bucket, Key=key, UploadId=upload_id, PartNumberMarker=marker
            )
            parts.extend(
                Part(p["PartNumber"], p["Size"], p["ETag"].strip('"'))
                for p in response.get("Parts", [])
            )
            if not response.get("IsTruncated"):
                return sorted(parts, key=lambda p: p.number)
            marker = int(response["NextPartNumberMarker"])


def complete_multipart(
    store: S3Store, key: str, upload_id: str, parts: Sequence[Part], checksums: Sequence[str]
) -> ObjectInfo:
    """Join ``parts`` (with the checksums each was signed with) into the object, write-once.

    Raises :class:`~verification.storage.ObjectExists` when another object took the key.
    """
    listed = [
        {"PartNumber": p.number, "ETag": f'"{p.etag}"', "ChecksumSHA256": checksum}
        for p, checksum in zip(parts, checksums, strict=True)
    ]
    with store._errors(key):
        response = store.client.complete_multipart_upload(
            Bucket=store.bucket,
            Key=key,
            UploadId=upload_id,
            MultipartUpload={"Parts": listed},
            IfNoneMatch="*",
        )
    return store.head(key, response.get("VersionId"))


def abort_multipart(store: S3Store, key: str, upload_id: str) -> None:
    """Discard an unfinished upload and its parts (an upload already gone is not an error)."""
    try:
        store.client.abort_multipart_upload(Bucket=store.bucket, Key=key, UploadId=upload_id)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in {"NoSuchUpload", "404"}:
            raise store._translate(exc, key) from exc
    except BotoCoreError as exc:
        raise store._translate(exc, key) from exc


def stored_checksum(store: S3Store, key: str, version_id: str | None) -> str | None:
    """The SHA-256 checksum the store keeps for an object (``<b64>`` or ``<b64>-<parts>``)."""
    args: dict[str, Any] = {"Bucket": store.bucket, "Key": key, "ChecksumMode": "ENABLED"}
    if version_id:
        args["VersionId"] = version_id
    with store._errors(key):
        response = store.client.head_object(**args)
    value = response.get("ChecksumSHA256")
    return str(value) if value else None


def withdraw(store: S3Store, key: str, version_id: str | None) -> None:
    """Remove an object the intake refused before the pipeline accepted it (a bad transfer)."""
    args: dict[str, Any] = {"Bucket": store.bucket, "Key": key}
    if version_id:
        args["VersionId"] = version_id
    with store._errors(key):
        store.client.delete_object(**args)


def allow_browser_uploads(
    store: S3Store, origins: Sequence[str], metadata_names: Sequence[str]
) -> None:
    """A bucket CORS rule letting pages at ``origins`` PUT objects and parts (nothing else),
    with the user metadata named (listed one by one: not every S3 server matches wildcards)."""
    rule = {
        "AllowedOrigins": list(origins),
        "AllowedMethods": ["PUT"],
        "AllowedHeaders": [
            "content-type",
            "if-none-match",
            "x-amz-checksum-sha256",
            "x-amz-sdk-checksum-algorithm",
            *(f"x-amz-meta-{name}" for name in metadata_names),
        ],
        "ExposeHeaders": ["ETag", "x-amz-checksum-sha256"],
        "MaxAgeSeconds": 600,
    }
    with store._errors(None):
        store.client.put_bucket_cors(Bucket=store.bucket, CORSConfiguration={"CORSRules": [rule]})


def browser_origin(store: S3Store, public_url: str | None = None) -> str:
    """Where the browser sends signed requests (``scheme://host[:port]``), for the page's CSP."""
    url = _sign(store, "get_object", {"Bucket": store.bucket, "Key": "origin"}, public_url)
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
