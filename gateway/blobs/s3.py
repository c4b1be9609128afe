"""Blob storage in an S3-compatible bucket: ``<prefix>objects/<sha256>`` plus ``<prefix>tmp/``.

The name of an object is the sha256 of its bytes, known only once the stream has ended. A put
that fits in one part (``part_size``) is held in memory, hashed and written straight to its
final key with one PUT. A larger one streams as a multipart upload to ``<prefix>tmp/<random>``,
one part in memory at a time, and is then copied server-side to ``<prefix>objects/<sha256>``
(skipped when that object already exists) and the temporary object deleted. A failed, refused
or cancelled put aborts its upload, so no partial object is ever visible; ``sweep_temporary``
removes what a crash left behind. Must not import web, services or store code.

Client library: ``aiobotocore`` (pinned to the version tested; it pins its own ``botocore``).
Compared with aioboto3 (a resource/transfer layer on top of aiobotocore that we do not need),
boto3 in worker threads (a slow client download would hold one of the few pool threads a 2-core
machine gets for the whole transfer) and a hand-written SigV4 client over httpx (no new
dependency, but we would own request signing, the S3 error XML, "200 OK with an error body" on
CopyObject/CompleteMultipartUpload, retries with backoff on 503 SlowDown, and the credential
chain), aiobotocore is natively async, maintained by aio-libs and used by s3fs, returns ranged
GET bodies as streams read chunk by chunk, and brings botocore's full credential chain
(environment, config files, web identity/IRSA and instance roles), so no credential code lives
here. Its cost is weight: botocore and aiohttp (about 40 MB installed). It is imported only
when ``storage.url`` is ``s3://``.

Limits: a single CopyObject copies at most 5 GiB, so larger puts are refused (a multipart copy
with UploadPartCopy would lift this; videos are far smaller). Request checksums are sent only
where S3 requires them, because several S3-compatible servers reject botocore's default CRC
trailers; the payload is still covered by SigV4 (and TLS on https endpoints).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import secrets
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterator
from contextlib import AsyncExitStack, contextmanager
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
)

from gateway.blobs.base import BlobError, BlobInfo, IncompleteBlob
from gateway.errors import OutageTypes

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_s3.type_defs import CompletedPartTypeDef

log = logging.getLogger(__name__)

MiB = 1024 * 1024
PART_SIZE = 8 * MiB
MIN_PART_SIZE = 5 * MiB  # S3's smallest part, except the last one
MAX_OBJECT_SIZE = 5 * 1024 * MiB  # one CopyObject copies at most 5 GiB
READ_CHUNK = 256 * 1024
MISSING_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
TRANSPORT_ERRORS = (BotoCoreError, aiohttp.ClientError)


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> ``("bucket", "some/prefix/")``; the prefix may be empty."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
        raise ValueError(f"unsupported storage.url {url!r}: use s3://BUCKET/PREFIX")
    return parts.netloc, _normalize_prefix(parts.path)


class S3BlobStore:
    # An endpoint that is briefly unreachable (answered 503 by the web layer).
    outage_errors: OutageTypes = (
        EndpointConnectionError,
        ConnectTimeoutError,
        aiohttp.ClientConnectionError,
    )

    """Content-addressed blobs in ``bucket`` under ``prefix``.

    Credentials not given here come from botocore's chain (``AWS_ACCESS_KEY_ID`` and
    ``AWS_SECRET_ACCESS_KEY``, config files, instance or web-identity roles). Empty strings
    count as not given. The client is created on first use; ``close()`` releases it.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        path_style: bool = False,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        part_size: int = PART_SIZE,
        max_connections: int = 100,
    ) -> None:
        if not bucket:
            raise ValueError("an S3 bucket name is required")
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size must be at least {MIN_PART_SIZE} bytes")
        self.bucket = bucket
        self.prefix = _normalize_prefix(prefix)
        self.endpoint_url = endpoint_url or None
        self.part_size = part_size
        self._credentials = (access_key_id or None, secret_access_key or None)
        self._config = AioConfig(
            region_name=region or None,
            signature_version="s3v4",
            s3={"addressing_style": "path" if path_style else "auto"},
            retries={"mode": "standard", "max_attempts": 3},
            connect_timeout=5,
            read_timeout=60,
            max_pool_connections=max_connections,
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        self._client: S3Client | None = None
        # Uploads this process is writing: the sweep never touches them, however slow.
        self._active: set[str] = set()
        self._exit_stack = AsyncExitStack()
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:  # never shows credentials
        where = (
            f"bucket={self.bucket!r}, prefix={self.prefix!r}, endpoint_url={self.endpoint_url!r}"
        )
        return f"S3BlobStore({where})"

    async def _s3(self) -> S3Client:
        async with self._lock:
            if self._client is None:
                access_key_id, secret_access_key = self._credentials
                context = get_session().create_client(
                    "s3",
                    endpoint_url=self.endpoint_url,
                    aws_access_key_id=access_key_id,
                    aws_secret_access_key=secret_access_key,
                    config=self._config,
                )
                self._client = await self._exit_stack.enter_async_context(context)
            return self._client

    async def free_bytes(self) -> int | None:
        """S3 buckets have no free-space figure."""
        return None

    async def close(self) -> None:
        self._client = None
        await self._exit_stack.aclose()

    def object_name(self, key: str) -> str:
        if len(key) != 64 or any(c not in "0123456789abcdef" for c in key):
            raise BlobError(f"not a blob key: {key!r}")
        return f"{self.prefix}objects/{key}"

    async def put(self, chunks: AsyncIterable[bytes], *, expected_size: int | None) -> BlobInfo:
        temp = f"{self.prefix}tmp/{secrets.token_hex(16)}"
        self._active.add(temp)
        try:
            return await self._write(temp, chunks, expected_size)
        finally:
            self._active.discard(temp)

    async def _write(
        self, temp: str, chunks: AsyncIterable[bytes], expected_size: int | None
    ) -> BlobInfo:
        digest = hashlib.sha256()
        size = 0
        pending = _PartBuffer(self.part_size)
        upload: _MultipartUpload | None = None
        try:
            async for chunk in chunks:
                size += len(chunk)
                if expected_size is not None and size > expected_size:
                    raise IncompleteBlob(expected_size, size)
                if size > MAX_OBJECT_SIZE:
                    raise BlobError(f"blob larger than {MAX_OBJECT_SIZE} bytes (S3 copy limit)")
                digest.update(chunk)
                for part in pending.add(chunk):
                    if upload is None:
                        upload = await self._start_upload(temp)
                    await upload.send(part)
                    del part
            if expected_size is not None and size != expected_size:
                raise IncompleteBlob(expected_size, size)
            key = digest.hexdigest()
            if upload is None:
                await self._put_whole(key, pending.take())
            else:
                if pending.size:
                    await upload.send(pending.take())
                await upload.complete()
                await self._publish(upload.name, key)
            return BlobInfo(key=key, size=size)
        except BaseException:
            if upload is not None:
                # Shielded: a second cancellation must not cut the clean-up short.
                await asyncio.shield(upload.discard())
            raise

    async def _start_upload(self, name: str) -> _MultipartUpload:
        client = await self._s3()
        with _translated("starting an upload"):
            started = await client.create_multipart_upload(Bucket=self.bucket, Key=name)
        return _MultipartUpload(client, self.bucket, name, started["UploadId"])

    async def _put_whole(self, key: str, body: io.BytesIO) -> None:
        if await self.stat(key) is not None:
            return  # identical bytes are already stored
        name = self.object_name(key)
        client = await self._s3()
        with _translated(f"writing blob {key}"):
            await client.put_object(Bucket=self.bucket, Key=name, Body=body)

    async def _publish(self, temp: str, key: str) -> None:
        name = self.object_name(key)
        client = await self._s3()
        if await self.stat(key) is None:
            with _translated(f"publishing blob {key}"):
                await client.copy_object(
                    Bucket=self.bucket, Key=name, CopySource={"Bucket": self.bucket, "Key": temp}
                )
        try:
            await client.delete_object(Bucket=self.bucket, Key=temp)
        except (ClientError, *TRANSPORT_ERRORS) as exc:  # the sweep removes it later
            log.warning("could not delete temporary blob %s: %s", temp, exc)

    async def stat(self, key: str) -> BlobInfo | None:
        name = self.object_name(key)
        client = await self._s3()
        try:
            head = await client.head_object(Bucket=self.bucket, Key=name)
        except ClientError as exc:
            if _error_code(exc) in MISSING_CODES:
                return None
            raise BlobError(f"stat of blob {key} failed: {exc}") from exc
        except TRANSPORT_ERRORS as exc:
            raise BlobError(f"stat of blob {key} failed: {exc}") from exc
        return BlobInfo(key=key, size=head["ContentLength"])

    async def open_range(
        self, key: str, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        name = self.object_name(key)
        if end is not None and end <= start:
            return
        wanted = f"bytes={start}-{'' if end is None else end - 1}"
        client = await self._s3()
        try:
            if start == 0 and end is None:
                response = await client.get_object(Bucket=self.bucket, Key=name)
            else:
                response = await client.get_object(Bucket=self.bucket, Key=name, Range=wanted)
        except ClientError as exc:
            code = _error_code(exc)
            if code == "InvalidRange":
                return  # starts at or past the end: nothing to read, as from a file
            if code in MISSING_CODES:
                raise BlobError(f"blob {key} is missing") from exc
            raise BlobError(f"reading blob {key} failed: {exc}") from exc
        except TRANSPORT_ERRORS as exc:
            raise BlobError(f"reading blob {key} failed: {exc}") from exc
        body = response["Body"]
        try:
            while True:
                with _translated(f"reading blob {key}"):
                    chunk = await body.read(READ_CHUNK)
                if not chunk:
                    break
                yield chunk
        finally:
            body.close()

    async def delete(self, key: str) -> None:
        name = self.object_name(key)
        client = await self._s3()
        with _translated(f"deleting blob {key}"):
            await client.delete_object(Bucket=self.bucket, Key=name)

    async def keys(self) -> AsyncIterator[str]:
        client = await self._s3()
        folder = f"{self.prefix}objects/"
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=folder)
        with _translated("listing blobs"):
            async for page in pages:
                for item in page.get("Contents", []):
                    name = item["Key"].removeprefix(folder)
                    if len(name) == 64 and "/" not in name:
                        yield name

    async def sweep_temporary(self, older_than_seconds: float) -> int:
        cutoff = time.time() - older_than_seconds
        active = frozenset(self._active)
        client = await self._s3()
        folder = f"{self.prefix}tmp/"
        stale: list[str] = []
        with _translated("listing temporary blobs"):
            async for page in client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=folder
            ):
                for item in page.get("Contents", []):
                    if item["LastModified"].timestamp() < cutoff and item["Key"] not in active:
                        stale.append(item["Key"])
            uploads: list[tuple[str, str]] = []
            async for listing in client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=folder
            ):
                for upload in listing.get("Uploads", []):
                    if upload["Initiated"].timestamp() < cutoff and upload["Key"] not in active:
                        uploads.append((upload["Key"], upload["UploadId"]))
        removed = 0
        for name in stale:
            with _translated(f"deleting temporary blob {name}"):
                await client.delete_object(Bucket=self.bucket, Key=name)
            removed += 1
        for name, upload_id in uploads:
            try:
                await client.abort_multipart_upload(
                    Bucket=self.bucket, Key=name, UploadId=upload_id
                )
            except ClientError as exc:
                if _error_code(exc) != "NoSuchUpload":  # finished or aborted meanwhile
                    raise BlobError(f"aborting upload of {name} failed: {exc}") from exc
                continue
            except TRANSPORT_ERRORS as exc:
                raise BlobError(f"aborting upload of {name} failed: {exc}") from exc
            removed += 1
        return removed

    async def check_writable(self) -> None:
        probe = f"{self.prefix}tmp/probe-{secrets.token_hex(4)}"
        try:
            client = await self._s3()
            await client.put_object(Bucket=self.bucket, Key=probe, Body=b"ok")
            await client.delete_object(Bucket=self.bucket, Key=probe)
        except (ClientError, *TRANSPORT_ERRORS) as exc:
            raise BlobError(f"bucket {self.bucket} is not writable: {exc}") from exc


class _MultipartUpload:
    """One multipart upload to a temporary key: send parts, complete, or discard."""

    def __init__(self, client: S3Client, bucket: str, name: str, upload_id: str) -> None:
        self.client = client
        self.bucket = bucket
        self.name = name
        self.upload_id = upload_id
        self.parts: list[CompletedPartTypeDef] = []
        self.completed = False

    async def send(self, body: io.BytesIO) -> None:
        number = len(self.parts) + 1
        with _translated(f"uploading part {number}"):
            sent = await self.client.upload_part(
                Bucket=self.bucket,
                Key=self.name,
                UploadId=self.upload_id,
                PartNumber=number,
                Body=body,
            )
        self.parts.append({"ETag": sent["ETag"], "PartNumber": number})

    async def complete(self) -> None:
        with _translated("completing an upload"):
            await self.client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=self.name,
                UploadId=self.upload_id,
                MultipartUpload={"Parts": self.parts},
            )
        self.completed = True

    async def discard(self) -> None:
        """Best effort: whatever is left is removed by ``sweep_temporary``."""
        try:
            if self.completed:
                await self.client.delete_object(Bucket=self.bucket, Key=self.name)
            else:
                await self.client.abort_multipart_upload(
                    Bucket=self.bucket, Key=self.name, UploadId=self.upload_id
                )
        except (ClientError, *TRANSPORT_ERRORS) as exc:
            log.warning("could not discard temporary upload %s: %s", self.name, exc)


class _PartBuffer:
    """Collects a stream into parts of exactly ``part_size`` bytes.

    Each part is a ``BytesIO`` written chunk by chunk and handed to botocore as a file: bytes
    would be wrapped by botocore in a ``BytesIO`` that aiohttp copies whole (``getbuffer()`` on
    shared memory), doubling the memory a part takes.
    """

    def __init__(self, part_size: int) -> None:
        self.part_size = part_size
        self.part = io.BytesIO()

    @property
    def size(self) -> int:
        return self.part.tell()

    def add(self, chunk: bytes) -> Iterator[io.BytesIO]:
        """Take ``chunk``; yield every part it completes."""
        rest = memoryview(chunk)
        while self.size + len(rest) >= self.part_size:
            room = self.part_size - self.size
            self.part.write(rest[:room])
            rest = rest[room:]
            yield self.take()
        self.part.write(rest)

    def take(self) -> io.BytesIO:
        """What was collected, rewound to its start; the buffer starts a new part."""
        part, self.part = self.part, io.BytesIO()
        part.seek(0)
        return part


@contextmanager
def _translated(action: str) -> Iterator[None]:
    """Turn botocore and aiohttp errors into ``BlobError`` where they enter."""
    try:
        yield
    except (ClientError, *TRANSPORT_ERRORS) as exc:
        raise BlobError(f"{action} failed: {exc}") from exc


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _normalize_prefix(prefix: str) -> str:
    cleaned = prefix.strip("/")
    return f"{cleaned}/" if cleaned else ""
