"""Video use cases after creation: get (refreshing a stale running job), list, delete, and
the stored content.

Works over the ports only (``Store``, ``Upstream``, ``BlobStore``); knows nothing of HTTP.
Reads never finish a job: they may learn that it finished upstream, but storing the video and
settling its money is the job runner's work.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from gateway.blobs.base import BlobStore
from gateway.domain.jobs import PUBLIC_STATUS, TERMINAL_STATUSES
from gateway.domain.media import MediaFacts
from gateway.errors import GatewayError, InvalidRequest, NotFound
from gateway.services.job_changes import finished_upstream_changes
from gateway.services.keys import Principal
from gateway.services.maintenance import delete_released
from gateway.settings import JobSettings
from gateway.store.base import Asset, Job, JobChanges, JobStore, Order
from gateway.upstream.port import Upstream

log = logging.getLogger("gateway.videos")

Variant = Literal["video", "last_frame"]


MEDIA_CACHE_SIZE = 10_000  # asset keys whose probed figures are kept in memory


@dataclass(frozen=True, slots=True)
class StoredContent:
    """A stored video or last frame, ready to be read (whole or by byte range)."""

    asset: Asset
    blobs: BlobStore

    def read(self, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        return self.blobs.open_range(self.asset.key, start, end)


class VideoService:
    def __init__(
        self,
        store: JobStore,
        upstream: Upstream,
        blobs: BlobStore,
        settings: JobSettings,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._upstream = upstream
        self._blobs = blobs
        self._settings = settings
        self._clock = clock
        # Probed figures by asset key. An asset is named by its bytes' sha256, so its figures
        # never change once known: a status poll of a finished video then reads only its job
        # row (one database hop, not two). Only found figures are kept; bounded by clearing.
        self._media: dict[str, MediaFacts] = {}

    async def get(self, principal: Principal, video_id: str) -> Job:
        """The job as the team sees it, refreshed from upstream when running and stale.

        A video coalesced onto another request's job shows that job's progress until it ends.
        """
        job = await self._visible(principal, video_id)
        if job.leader_id is not None and job.status not in TERMINAL_STATUSES:
            # A leader deleted by its owner still runs for its followers.
            leader = await self._store.get_job(job.leader_id, include_deleted=True)
            if leader is not None:
                leader = await self._refreshed(leader)
                return replace(
                    job,
                    status=_shown(leader.status),
                    progress=leader.progress,
                    chain_json=leader.chain_json or job.chain_json,  # a chain's segment progress
                )
            return job
        return await self._refreshed(job)

    async def _refreshed(self, job: Job) -> Job:
        return await self._refresh(job) if self._needs_refresh(job) else job

    def _needs_refresh(self, job: Job) -> bool:
        if job.status not in ("queued", "in_progress") or job.upstream_id is None:
            return False
        age = self._clock() - (job.refreshed_at or 0.0)
        return age >= self._settings.refresh_after_seconds

    async def _refresh(self, job: Job) -> Job:
        """Learn the upstream's progress. A finished job is handed to the runner at once."""
        assert job.upstream_id is not None
        try:
            polled = await self._upstream.poll(job.upstream_id)
        except GatewayError as exc:
            # A failed refresh must not fail the read: answer with what we know.
            log.warning("upstream refresh failed", extra={"job_id": job.id, "error_code": exc.code})
            return job
        now = self._clock()
        changes: JobChanges = {"refreshed_at": now, "updated_at": int(now)}
        if polled.status == "completed":
            changes |= finished_upstream_changes(polled, job, now) | {"next_check_at": now}
        elif polled.status == "failed":
            changes["next_check_at"] = now  # the runner records the failure (and refunds)
        else:
            changes |= {"status": polled.status, "progress": min(polled.progress, 99)}
        updated = await self._store.update_job_if_status(
            job.id, statuses=("queued", "in_progress"), changes=changes
        )
        return updated or job

    async def list(
        self, principal: Principal, *, after: str | None, limit: int, order: Order
    ) -> tuple[list[Job], bool]:
        if after is not None and await self._store.get_job(after, principal.team_id) is None:
            raise NotFound(f"No video found with id '{after}'.", param="after")
        return await self._store.list_jobs(principal.team_id, after=after, limit=limit, order=order)

    async def media_of(self, jobs: Sequence[Job]) -> dict[str, MediaFacts]:
        """The probed figures of these jobs' stored videos, by job id (one query)."""
        keys = {job.id: job.video_asset for job in jobs if job.video_asset is not None}
        known = {key: self._media[key] for key in keys.values() if key in self._media}
        missing = set(keys.values()) - known.keys()
        if missing:
            found = await self._store.asset_media(missing)
            if len(self._media) + len(found) > MEDIA_CACHE_SIZE:
                self._media.clear()
            self._media.update(found)
            known.update(found)
        return {job_id: known[key] for job_id, key in keys.items() if key in known}

    async def delete(self, principal: Principal, video_id: str) -> None:
        job = await self._visible(principal, video_id)
        deletion = await self._store.delete_job(job.id, principal.team_id, int(self._clock()))
        if deletion is None:
            raise _not_found(video_id)
        await delete_released(self._store, self._blobs, list(deletion.released))

    async def content(self, principal: Principal, video_id: str, variant: Variant) -> StoredContent:
        """The stored video (or last frame) of a completed job; never the upstream's copy."""
        job = await self._visible(principal, video_id)
        if job.status != "completed":
            raise InvalidRequest(
                f"Video is not ready yet, current status: {PUBLIC_STATUS[job.status]}.",
                code="video_not_ready",
            )
        key = job.video_asset if variant == "video" else job.last_frame_asset
        if variant == "last_frame" and key is None:
            raise NotFound(
                "This video has no last frame: create it with return_last_frame=true.",
                param="variant",
                code="variant_not_found",
            )
        asset = await self._store.get_asset(key) if key is not None else None
        if asset is None:
            raise NotFound(
                f"The content of video '{video_id}' is no longer stored.", code="content_gone"
            )
        return StoredContent(asset=asset, blobs=self._blobs)

    async def _visible(self, principal: Principal, video_id: str) -> Job:
        job = await self._store.get_job(video_id, principal.team_id)
        if job is None or job.status == "rejected":
            raise _not_found(video_id)
        return job


def _shown(status: str) -> Any:
    """A leader's status as its followers show it (a leader's hidden states look running)."""
    return "queued" if status == "submitting" else status


def _not_found(video_id: str) -> NotFound:
    return NotFound(f"No video found with id '{video_id}'.", param="video_id")
