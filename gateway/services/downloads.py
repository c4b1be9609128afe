"""Copying one upstream download into the blob store, treating every byte as untrusted.

The upstream's answer is a claim: its content type, its length and its bytes are all checked
while they stream, before anything is stored under a key. A download is refused when it is
larger than allowed, slower than the time it has, announces a type we do not serve, or is not
what it says (a video must be a structurally sound MP4, a last frame a PNG/JPEG/WebP). Every
refusal is an ``UnusableDownload`` with its own ``code``; an ``OSError`` from any blob adapter
becomes ``StorageFailed`` (a ``BlobError``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Final

from gateway.blobs.base import BlobStore, IncompleteBlob, StorageFailed
from gateway.errors import GatewayError, UpstreamError
from gateway.media.images import IMAGE_TYPES, MAGIC_LENGTH, image_type
from gateway.media.mp4 import Mp4Check, NotMp4
from gateway.settings import JobSettings, StorageSettings
from gateway.store.base import Asset, Job
from gateway.upstream.port import Download

VIDEO_TYPE: Final = "video/mp4"
# Announced types we accept (the bytes are checked either way); anything else (text/html,
# application/json ...) is not a video or an image whatever its bytes.
_OCTETS: Final = frozenset({"", "application/octet-stream", "binary/octet-stream"})
ACCEPTED_TYPES: Final = {
    "video": frozenset({VIDEO_TYPE}) | _OCTETS,
    "last_frame": frozenset(IMAGE_TYPES) | _OCTETS,
}
# Download refusals, each a bounded metrics label and the failed job's error.code.
TOO_LARGE: Final = "download_too_large"
TOO_SLOW: Final = "download_too_slow"
NOT_MEDIA: Final = "download_not_media"
DOWNLOAD_CODES: Final = frozenset({TOO_LARGE, TOO_SLOW, NOT_MEDIA, "upstream_link_refused"})


def failure_reasons(exc: Exception) -> tuple[str, str | None]:
    """A failed download's reason (a bounded metrics label) and, for storage failures, the
    blob error's reason (an errno name, or "other")."""
    if isinstance(exc, GatewayError):
        return exc.code, None
    if isinstance(exc, IncompleteBlob):
        return "incomplete", "other"
    return "storage_error", exc.reason if isinstance(exc, StorageFailed) else "other"


def given_up(reason: str) -> tuple[str, str]:
    """The code and message of a video given up after downloads failed for ``reason``: its
    own code when the upstream never offered a usable video; otherwise (storage errors, broken
    transfers) ``upstream_link_expired``: a usable video was lost (the VideoLost alert)."""
    if reason in DOWNLOAD_CODES:
        return reason, f"The upstream's video could not be stored ({reason}); not charged."
    return "upstream_link_expired", "The upstream link expired before the video could be stored."


class UnusableDownload(UpstreamError):
    """The upstream's download cannot become a stored video or frame (see ``code``)."""

    default_code = NOT_MEDIA


@dataclass(frozen=True, slots=True)
class DownloadLimits:
    max_bytes: int
    seconds: float  # the time this download has in total

    @classmethod
    def of(
        cls, storage: StorageSettings, variant: str, until: float | None, *, now: float
    ) -> DownloadLimits:
        """The configured limits for ``variant``, with time left until ``until`` (default:
        ``storage.download_timeout_seconds`` from ``now``)."""
        end = until if until is not None else now + storage.download_timeout_seconds
        size = storage.max_video_bytes if variant == "video" else storage.max_image_bytes
        return cls(max_bytes=size, seconds=end - now)


def download_deadline(job: Job, jobs: JobSettings, storage: StorageSettings) -> float:
    """The job deadline, checked during downloads too; a job finishing upstream close to it
    still gets one full download timeout."""
    finished = job.upstream_finished_at or job.created_at
    return max(job.created_at + jobs.deadline_seconds, finished + storage.download_timeout_seconds)


async def store_download(
    download: Download, blobs: BlobStore, variant: str, limits: DownloadLimits
) -> Asset:
    """Stream ``download`` into ``blobs`` through the checks; the stored asset or a refusal."""
    if download.content_type not in ACCEPTED_TYPES[variant]:
        raise UnusableDownload(
            f"the upstream sent {download.content_type!r} for the {variant}", code=NOT_MEDIA
        )
    if download.length is not None and download.length > limits.max_bytes:
        raise _too_large(variant, limits.max_bytes)
    checked = _CheckedStream(download.chunks, variant, limits.max_bytes)
    if limits.seconds <= 0:
        raise _too_slow(variant)
    timer = asyncio.timeout(limits.seconds)
    try:
        async with timer:
            info = await blobs.put(checked, expected_size=download.length)
    except TimeoutError as exc:
        if timer.expired():
            raise _too_slow(variant) from exc
        raise StorageFailed(exc) from exc
    except OSError as exc:  # any adapter's disk or socket failure below the blob port
        raise StorageFailed(exc) from exc
    content_type = VIDEO_TYPE if variant == "video" else checked.image_type
    return Asset(key=info.key, size=info.size, content_type=content_type)


class _CheckedStream:
    """The download's chunks, counted and checked as they pass; raises on the first problem
    so the blob store discards its partial upload."""

    def __init__(self, chunks: AsyncIterator[bytes], variant: str, max_bytes: int) -> None:
        self._chunks = chunks
        self._variant = variant
        self._max_bytes = max_bytes
        self._mp4 = Mp4Check()
        self._head = b""
        self.image_type = ""

    async def __aiter__(self) -> AsyncIterator[bytes]:
        size = 0
        async for chunk in self._chunks:
            size += len(chunk)
            if size > self._max_bytes:
                raise _too_large(self._variant, self._max_bytes)
            self._check(chunk)
            yield chunk
        self._finish()

    def _check(self, chunk: bytes) -> None:
        if self._variant == "video":
            try:
                self._mp4.feed(chunk)
            except NotMp4 as exc:
                raise UnusableDownload(f"the video is not an MP4: {exc}", code=NOT_MEDIA) from exc
        elif len(self._head) < MAGIC_LENGTH:
            self._head += chunk[: MAGIC_LENGTH - len(self._head)]

    def _finish(self) -> None:
        if self._variant == "video":
            try:
                self._mp4.finish()
            except NotMp4 as exc:
                raise UnusableDownload(f"the video is not an MP4: {exc}", code=NOT_MEDIA) from exc
            return
        found = image_type(self._head)
        if found is None:
            raise UnusableDownload("the last frame is not a PNG, JPEG or WebP", code=NOT_MEDIA)
        self.image_type = found


def _too_large(variant: str, limit: int) -> UnusableDownload:
    return UnusableDownload(f"the {variant} is larger than {limit} bytes", code=TOO_LARGE)


def _too_slow(variant: str) -> UnusableDownload:
    return UnusableDownload(f"the {variant} did not arrive in the time allowed", code=TOO_SLOW)
