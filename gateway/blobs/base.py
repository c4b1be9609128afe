"""The blob storage port: content-addressed objects written from a stream, read by byte range.

Objects are named by the sha256 of their bytes, so identical videos are stored once. Adapters
(local directory, S3-compatible) implement ``BlobStore``; ``open_blob_store(url)`` picks one by
URL scheme. Nothing here knows HTTP or SQL.
"""

from __future__ import annotations

import errno
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from gateway.errors import OutageTypes


class BlobError(Exception):
    """A blob could not be written or read."""


class IncompleteBlob(BlobError):
    """The stream ended before (or went past) the length the source promised."""

    def __init__(self, expected: int, received: int) -> None:
        super().__init__(f"expected {expected} bytes, received {received}")
        self.expected = expected
        self.received = received


class StorageFailed(BlobError):
    """The operating system refused a blob operation: disk full (ENOSPC), read-only file
    system (EROFS), I/O error (EIO) ... ``reason`` is the errno name (a bounded label)."""

    def __init__(self, exc: OSError) -> None:
        self.reason = errno.errorcode.get(exc.errno or 0, "OSError")
        super().__init__(f"storage failed: {self.reason} ({exc.strerror or exc})")


@dataclass(frozen=True, slots=True)
class BlobInfo:
    """A stored object: its name (the sha256 hex of its bytes) and size."""

    key: str
    size: int


class BlobStore(Protocol):
    # The driver's exceptions that mean "storage is briefly unavailable" (answered 503).
    outage_errors: OutageTypes

    async def put(self, chunks: AsyncIterable[bytes], *, expected_size: int | None) -> BlobInfo:
        """Store a stream; refuse (``IncompleteBlob``) when its length differs from
        ``expected_size``. A failed or interrupted put never leaves a visible object."""

    async def stat(self, key: str) -> BlobInfo | None: ...

    def open_range(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """The bytes ``[start, end)`` of an object, in chunks (constant memory)."""

    async def delete(self, key: str) -> None:
        """Remove an object; deleting a missing object is not an error."""

    def keys(self) -> AsyncIterator[str]:
        """Every stored object's key (for the orphan sweep)."""

    async def sweep_temporary(self, older_than_seconds: float) -> int:
        """Remove partial uploads abandoned by a crash; return how many were removed."""

    async def check_writable(self) -> None:
        """Raise ``BlobError`` unless an object could be written now (readiness probe)."""

    async def free_bytes(self) -> int | None:
        """Free space left for objects, or ``None`` when the backend has no such limit (S3)."""

    async def close(self) -> None:
        """Release connections and other resources held by the adapter."""


def open_blob_store(
    url: str,
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
    path_style: bool = False,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
) -> BlobStore:
    """The adapter for ``url``: ``file://PATH`` (local directory) or ``s3://BUCKET/PREFIX``.

    The keyword options configure the S3 adapter (``None`` or ``""``: botocore's default, and
    for credentials its chain: ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, roles); the
    filesystem adapter ignores them.
    """
    if url.startswith("file://"):
        from gateway.blobs.filesystem import FilesystemBlobStore

        return FilesystemBlobStore(url.removeprefix("file://"))
    if url.startswith("s3://"):
        from gateway.blobs.s3 import S3BlobStore, parse_s3_url

        bucket, prefix = parse_s3_url(url)
        return S3BlobStore(
            bucket,
            prefix,
            endpoint_url=endpoint_url,
            region=region,
            path_style=path_style,
            access_key_id=access_key_id,
            secret_access_key=secret_access_key,
        )
    raise ValueError(f"unsupported storage.url {url!r}: use file://PATH or s3://BUCKET/PREFIX")
