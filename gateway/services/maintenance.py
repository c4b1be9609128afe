"""Periodic housekeeping of stored videos: crash leftovers, orphaned blobs, retention, and the
purge of old failed and rejected jobs (their rows and request media: they cost nothing, so
without a purge anyone could grow the database by sending requests the upstream refuses).

An orphan is a blob no asset row points at (a crash between storing it and recording it, or a
delete interrupted halfway). A blob must be seen orphaned on two consecutive sweeps before it is
removed, so a download that is just being recorded is never mistaken for one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from gateway.blobs.base import BlobStore
from gateway.domain.chains import Chain
from gateway.services.events import JobEvents
from gateway.settings import JobSettings
from gateway.store.base import Deletion, JobStore, Store

log = logging.getLogger("gateway.maintenance")

EXPIRY_BATCH = 200
KEY_BATCH = 500


@dataclass(frozen=True, slots=True)
class SweepReport:
    temporary_removed: int
    orphans_removed: int
    videos_expired: int
    blobs_released: int
    idempotency_keys_expired: int = 0
    jobs_purged: int = 0


class Maintenance:
    def __init__(
        self,
        store: Store,
        blobs: BlobStore,
        settings: JobSettings,
        *,
        clock: Callable[[], float] = time.time,
        events: JobEvents | None = None,
        purge_after_days: int = 0,
    ) -> None:
        self._purge_after_seconds = purge_after_days * 86400
        self._events = events or JobEvents()
        self._store = store
        self._blobs = blobs
        self._settings = settings
        self._clock = clock
        self._orphan_candidates: set[str] = set()

    async def run(self) -> SweepReport:
        temporary = await self._blobs.sweep_temporary(self._settings.temp_max_age_seconds)
        expired, released = await self._expire()
        purged, media_released = await self._purge()
        released += media_released
        orphans = await self._sweep_orphans()
        keys = await self._forget_idempotency_keys()
        report = SweepReport(temporary, orphans, expired, released, keys, purged)
        if temporary or orphans or expired or purged:
            log.info(
                "sweep",
                extra={
                    "temporary_removed": temporary,
                    "orphans_removed": orphans,
                    "videos_expired": expired,
                    "blobs_released": released,
                    "idempotency_keys_expired": keys,
                    "jobs_purged": purged,
                },
            )
        return report

    async def _expire(self) -> tuple[int, int]:
        expired = released = 0
        while True:
            batch = await self._store.expire_jobs(int(self._clock()), EXPIRY_BATCH)
            expired += len(batch)
            self._events.expired(len(batch))
            released += await self.remove_released(batch)
            if len(batch) < EXPIRY_BATCH:
                return expired, released

    async def _forget_idempotency_keys(self) -> int:
        """Idempotency-Keys past ``requests.idempotency_hours`` bind nothing any more."""
        forgotten = 0
        while True:
            count = await self._store.expire_idempotency_keys(self._clock(), EXPIRY_BATCH)
            forgotten += count
            if count < EXPIRY_BATCH:
                return forgotten

    async def _purge(self) -> tuple[int, int]:
        if self._purge_after_seconds <= 0:
            return 0, 0
        before = int(self._clock() - self._purge_after_seconds)
        purged = released = 0
        while True:
            batch = await self._store.purge_ended_jobs(before, EXPIRY_BATCH)
            purged += len(batch)
            released += await self.remove_released(batch)
            if len(batch) < EXPIRY_BATCH:
                return purged, released

    async def remove_released(self, deletions: list[Deletion]) -> int:
        """Delete the blobs that deleted or expired jobs no longer share with any job."""
        keys = [key for deletion in deletions for key in deletion.released]
        return await delete_released(self._store, self._blobs, keys)

    async def _segments_in_use(self) -> set[str]:
        """Blobs a running chain has stored but not yet joined (no asset row points at them)."""
        keys: set[str] = set()
        for text in await self._store.running_chains():
            for segment in Chain.from_json(text).segments:
                keys.update(k for k in (segment.video_key, segment.last_frame_key) if k)
        return keys

    async def _sweep_orphans(self) -> int:
        orphans: set[str] = set()
        batch: list[str] = []
        async for key in self._blobs.keys():
            batch.append(key)
            if len(batch) >= KEY_BATCH:
                orphans |= set(batch) - await self._store.known_assets(batch)
                batch = []
        if batch:
            orphans |= set(batch) - await self._store.known_assets(batch)
        if orphans:
            orphans -= await self._segments_in_use()
        confirmed = orphans & self._orphan_candidates
        for key in confirmed:
            await self._blobs.delete(key)
        self._orphan_candidates = orphans - confirmed
        return len(confirmed)


async def delete_released(store: JobStore, blobs: BlobStore, keys: list[str]) -> int:
    """Delete blobs whose last reference went, unless a new video took one meanwhile (an
    identical download recorded between the release and now keeps its bytes)."""
    if not keys:
        return 0
    still_used = await store.known_assets(keys)
    removed = 0
    for key in keys:
        if key not in still_used:
            await blobs.delete(key)
            removed += 1
    return removed
