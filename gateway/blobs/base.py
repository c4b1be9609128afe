"""The blob storage port: content-addressed objects written from a stream, read by byte range.

Objects are named by the sha256 of their bytes, so identical videos are stored once. Adapters
(local directory, S3-compatible) implement ``BlobStore``; ``open_blob_store(url)`` picks one by
URL scheme. Nothing here knows HTTP or SQL.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from typing import Protocol


class BlobError(Exception):
    """A blob could not be written or read."""


class IncompleteBlob(BlobError):
    """The stream ended before (or went past) the length the source promised."""

    def __init__(self, expected: int, received: int) -> None:
        super().__init__(f"expected {expected} bytes, received {received}")
        self.expected = expected
        self.received = received


@dataclass(frozen=True, slots=True)
class BlobInfo:
    """A stored object: its name (the sha256 hex of its bytes) and size."""

    key: str
    size: int


class BlobStore(Protocol):
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


def open_blob_store(url: str) -> BlobStore:
    """The adapter for ``url``: ``file://path`` (local directory)."""
    if url.startswith("file://"):
        from gateway.blobs.filesystem import FilesystemBlobStore

        return FilesystemBlobStore(url.removeprefix("file://"))
    raise ValueError(f"unsupported storage.url {url!r}: use file://PATH")
