"""Video use cases: create, get (refreshing a stale running job), list, delete, open content.

Works over the ports only (``Store``, ``UpstreamClient``); knows nothing of HTTP. The create path
writes the job before calling upstream, so a crash never leaves an upstream job we do not know.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from gateway.domain.video_request import VideoRequest
from gateway.errors import GatewayError, InvalidRequest, NotFound, UpstreamError
from gateway.ids import new_id
from gateway.services.keys import Principal
from gateway.store.base import TERMINAL_STATUSES, Job, Order, Store
from gateway.upstream.client import UpstreamClient
from gateway.upstream.job import UpstreamJob

log = logging.getLogger("gateway.videos")

Variant = Literal["video", "last_frame"]


@dataclass(frozen=True, slots=True)
class ContentStream:
    """An open download: headers to pass on and the body as chunks."""

    content_type: str
    content_length: int | None
    chunks: AsyncIterator[bytes]


class VideoService:
    def __init__(
        self,
        store: Store,
        upstream: UpstreamClient,
        *,
        refresh_after_seconds: float = 3.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._upstream = upstream
        self._refresh_after = refresh_after_seconds
        self._clock = clock

    async def create(
        self, principal: Principal, request: VideoRequest, *, request_id: str | None = None
    ) -> Job:
        """Record the job, submit it upstream, and return it as the upstream accepted it."""
        now = self._clock()
        job = Job(
            id=new_id("video", now=now),
            team_id=principal.team_id,
            key_id=principal.key_id,
            model=request.model,
            request=request.to_json(),
            status="submitting",
            created_at=int(now),
            updated_at=int(now),
        )
        await self._store.insert_job(job)
        try:
            accepted = await self._upstream.submit(job.request, request_id=request_id)
        except GatewayError as exc:
            await self._mark_rejected(job, exc.code, exc.message)
            raise
        except Exception as exc:
            await self._mark_rejected(job, "internal_error", "The upstream call failed.")
            raise UpstreamError("The upstream call failed unexpectedly.") from exc
        return await self._record_accepted(job, accepted)

    async def _mark_rejected(self, job: Job, code: str, message: str) -> None:
        await self._store.update_job(
            job.id,
            {
                "status": "rejected",
                "error_code": code,
                "error_message": message,
                "updated_at": int(self._clock()),
            },
        )

    async def _record_accepted(self, job: Job, accepted: UpstreamJob) -> Job:
        """Store the upstream id. The upstream has the job now: never fail this request after it."""
        changes = self._changes_from(accepted, job)
        changes["upstream_id"] = accepted.id
        try:
            updated = await self._store.update_job(job.id, changes)
        except Exception:
            log.exception("could not record accepted upstream job", extra={"job_id": job.id})
            updated = None
        return updated or Job(**{**_job_fields(job), **changes})

    def _changes_from(self, upstream: UpstreamJob, job: Job) -> dict[str, Any]:
        now = self._clock()
        changes: dict[str, Any] = {
            "status": upstream.status,
            "progress": upstream.progress,
            "refreshed_at": now,
            "updated_at": int(now),
        }
        if upstream.video_url:
            changes["upstream_video_url"] = upstream.video_url
        if upstream.last_frame_url:
            changes["upstream_last_frame_url"] = upstream.last_frame_url
        if upstream.status == "failed":
            changes["error_code"] = upstream.error_code or "upstream_failed"
            changes["error_message"] = upstream.error_message or "The upstream job failed."
        if upstream.status in ("completed", "failed") and job.completed_at is None:
            changes["completed_at"] = int(now)
        return changes

    async def get(self, principal: Principal, video_id: str) -> Job:
        """The job as the team sees it, refreshed from upstream when running and stale."""
        job = await self._visible(principal, video_id)
        if self._needs_refresh(job):
            job = await self._refresh(job)
        return job

    def _needs_refresh(self, job: Job) -> bool:
        if job.status in TERMINAL_STATUSES or job.upstream_id is None:
            return False
        return job.refreshed_at is None or self._clock() - job.refreshed_at >= self._refresh_after

    async def _refresh(self, job: Job) -> Job:
        assert job.upstream_id is not None
        try:
            polled = await self._upstream.poll(job.upstream_id)
        except GatewayError as exc:
            # A failed refresh must not fail the read: answer with what we know.
            log.warning("upstream refresh failed", extra={"job_id": job.id, "error_code": exc.code})
            return job
        updated = await self._store.update_job(job.id, self._changes_from(polled, job))
        return updated or job

    async def list(
        self, principal: Principal, *, after: str | None, limit: int, order: Order
    ) -> tuple[list[Job], bool]:
        if after is not None and await self._store.get_job(after, principal.team_id) is None:
            raise NotFound(f"No video found with id '{after}'.", param="after")
        return await self._store.list_jobs(principal.team_id, after=after, limit=limit, order=order)

    async def delete(self, principal: Principal, video_id: str) -> None:
        job = await self._visible(principal, video_id)
        if not await self._store.delete_job(job.id, principal.team_id, int(self._clock())):
            raise _not_found(video_id)

    @asynccontextmanager
    async def open_content(
        self, principal: Principal, video_id: str, variant: Variant
    ) -> AsyncIterator[ContentStream]:
        """Stream a finished video (or its last frame) from the upstream."""
        job = await self.get(principal, video_id)
        if job.status != "completed":
            shown = "failed" if job.status == "rejected" else job.status
            shown = "queued" if shown == "submitting" else shown
            raise InvalidRequest(
                f"Video is not ready yet, current status: {shown}.", code="video_not_ready"
            )
        assert job.upstream_id is not None
        if variant == "last_frame":
            if not (job.request.get("return_last_frame") and job.upstream_last_frame_url):
                raise NotFound(
                    "This video has no last frame: create it with return_last_frame=true.",
                    param="variant",
                    code="variant_not_found",
                )
            url: str | None = job.upstream_last_frame_url
        else:
            url = job.upstream_video_url
        async with self._upstream.open_content(job.upstream_id, url=url, variant=variant) as resp:
            yield ContentStream(
                content_type=resp.headers.get(
                    "content-type", "image/png" if variant == "last_frame" else "video/mp4"
                ),
                content_length=_content_length(resp),
                chunks=resp.aiter_bytes(),
            )

    async def _visible(self, principal: Principal, video_id: str) -> Job:
        job = await self._store.get_job(video_id, principal.team_id)
        if job is None or job.status == "rejected":
            raise _not_found(video_id)
        return job


def _not_found(video_id: str) -> NotFound:
    return NotFound(f"No video found with id '{video_id}'.", param="video_id")


def _content_length(resp: httpx.Response) -> int | None:
    value = resp.headers.get("content-length")
    return int(value) if value and value.isdigit() else None


def _job_fields(job: Job) -> dict[str, Any]:
    return {name: getattr(job, name) for name in Job.__dataclass_fields__}
