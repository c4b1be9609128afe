"""The job runner: claim due jobs with a lease, poll them upstream, copy finished videos into our
blob store, and only then mark them ``completed``.

``run_once`` is the testable step; ``run`` wraps it in a loop with bounded concurrency and a
graceful drain deadline. State lives in the database, so a crashed runner's jobs are taken
over by another when their lease expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from gateway.blobs.base import BlobError, BlobStore
from gateway.domain.budgets import settle_amount
from gateway.domain.pricing import PriceTable, default_price_table, price_of
from gateway.domain.schedule import next_delay
from gateway.errors import GatewayError, RateLimited, UpstreamError
from gateway.media.probe import UndecodableMedia, probe_blob
from gateway.services.chains import ChainStep
from gateway.services.downloads import (
    DOWNLOAD_CODES,
    DownloadLimits,
    download_deadline,
    failure_reasons,
    given_up,
    store_download,
)
from gateway.services.events import JobEvents
from gateway.services.job_changes import finished_upstream_changes, release
from gateway.services.maintenance import Maintenance
from gateway.services.pacing import PollLimit, wait_any
from gateway.services.stepping import Stepping
from gateway.settings import JobSettings, StorageSettings
from gateway.store.base import (
    TERMINAL_STATUSES,
    UNKNOWN_OUTCOME_CODE,
    Asset,
    Job,
    JobChanges,
    Store,
)
from gateway.upstream.job import UpstreamJob
from gateway.upstream.port import LinkRefused, Upstream, UpstreamNotFound

log = logging.getLogger("gateway.jobs")

# A job the upstream answers 404 for is given up after this many maximal poll intervals
# without a successful poll (a single 404 may be a glitch).
NOT_FOUND_GRACE_POLLS = 5
# An upstream asking us to wait longer than this is not taken literally.
MAX_RETRY_AFTER_SECONDS = 600.0


class LeaseLost(Exception):
    """Another runner owns the job now; this one must stop touching it."""


def runner_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class JobRunner:
    def __init__(
        self,
        store: Store,
        upstream: Upstream,
        blobs: BlobStore,
        settings: JobSettings,
        *,
        storage: StorageSettings | None = None,
        prices: PriceTable | None = None,
        retention_days: int = 0,
        clock: Callable[[], float] = time.time,
        owner: str | None = None,
        events: JobEvents | None = None,
    ) -> None:
        self._events = events or JobEvents()
        self._store = store
        self._upstream = upstream
        self._blobs = blobs
        self._settings = settings
        self._storage = storage or StorageSettings()
        self._prices = prices or default_price_table()
        self._retention_days = retention_days
        self._clock = clock
        self.owner = owner or runner_id()
        self._polls = PollLimit(settings.poll_concurrency, settings.poll_concurrency_max, clock)
        self._downloads = asyncio.Semaphore(settings.download_concurrency)
        self.maintenance = Maintenance(
            store,
            blobs,
            settings,
            clock=clock,
            events=self._events,
            purge_after_days=self._storage.failed_retention_days,
        )
        self._chains = ChainStep(self)
        self._stepping = Stepping()

    def _unreachable_after(self) -> float:
        """A job whose polls fail past its deadline (plus a few polls' grace) is given up."""
        return (
            self._settings.deadline_seconds
            + NOT_FOUND_GRACE_POLLS * self._settings.poll_max_seconds
        )

    @property
    def capacity(self) -> int:
        return self._polls.limit + self._settings.download_concurrency

    # -- the loop -------------------------------------------------------------------------

    async def run_once(self, limit: int | None = None) -> int:
        """Claim the due jobs (up to ``limit``), take each one step further, wait for all."""
        jobs = await self._claim(limit or self.capacity)
        await asyncio.gather(*(self._stepping.start(job, self.step) for job in jobs))
        return len(jobs)

    async def run(self, stop: asyncio.Event) -> None:
        """Keep claiming work until ``stop`` is set, then drain within the deadline."""
        in_flight: set[asyncio.Task[None]] = set()
        next_sweep = self._clock()
        while not stop.is_set():
            try:
                if self._clock() >= next_sweep:
                    # Scheduled first: a failing sweep must not block claims on every tick.
                    next_sweep = self._clock() + self._settings.sweep_interval_seconds
                    await self.maintenance.run()
                free = self.capacity - len(in_flight)
                claimed = await self._claim(free) if free > 0 else []
                self._polls.after_claim(claimed, free)
            except Exception:
                log.exception("job runner tick failed")
                claimed = []
            for job in claimed:
                task = self._stepping.start(job, self.step)
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
            if not claimed:
                await wait_any(stop, in_flight, self._settings.idle_seconds)
        await self._drain(in_flight)

    async def _drain(self, in_flight: set[asyncio.Task[None]]) -> None:
        if not in_flight:
            return
        log.info("draining job runner", extra={"jobs": len(in_flight)})
        _, pending = await asyncio.wait(in_flight, timeout=self._settings.drain_seconds)
        for task in pending:
            task.cancel()  # their leases expire and another runner picks them up
        if pending:
            await asyncio.wait(pending, timeout=5)

    async def _claim(self, limit: int) -> list[Job]:
        """The due jobs to step: never one this process is stepping already (``Stepping``)."""
        before = self._stepping.running()
        claimed = await self._store.claim_due_jobs(
            owner=self.owner,
            now=self._clock(),
            lease_seconds=self._settings.lease_seconds,
            limit=limit,
        )
        fresh, ended = self._stepping.sort(claimed, before)
        for job in ended:  # due again now, claimed afresh (a current row) on the next tick
            try:
                await self._store.update_leased_job(
                    job.id, owner=self.owner, changes={"lease_owner": None, "locked_until": None}
                )
            except Exception:
                log.exception("giving back a lease failed", extra={"job_id": job.id})
        return fresh

    # -- one step of one job --------------------------------------------------------------

    async def step(self, job: Job) -> None:
        """Take one leased job one step further; never raises (failures are rescheduled)."""
        try:
            if job.chain_json is not None and job.status not in TERMINAL_STATUSES:
                await self._chains.step(job)  # a video chained from several upstream jobs
            elif job.status == "submitting":
                await self._check_submitting(job)
            elif job.status == "submit_unknown":
                await self._check_unknown(job)
            elif job.status in ("queued", "in_progress"):
                await self._poll(job)
            elif job.status == "downloading":
                await self._download(job)
        except LeaseLost:
            log.warning("lease lost", extra={"job_id": job.id})
        except Exception:
            log.exception("job step failed", extra={"job_id": job.id})
            with contextlib.suppress(Exception):
                await self._reschedule(job, attempts=job.attempts + 1)

    async def _check_submitting(self, job: Job) -> None:
        """A job left ``submitting``: the gateway died (or could not write) between writing it
        and recording the upstream's answer. The upstream may have it, so its outcome is
        unknown: it keeps its reservation until evidence, an operator or the deadline."""
        if self._clock() - job.created_at < self._settings.submit_grace_seconds:
            await self._update(job, release(job.created_at + self._settings.submit_grace_seconds))
            return
        unknown = await self._update(
            job,
            {
                "status": "submit_unknown",
                "error_code": UNKNOWN_OUTCOME_CODE,
                "error_message": "The gateway stopped before it recorded the upstream's answer.",
                **release(job.created_at + self._settings.deadline_seconds),
            },
        )
        self._events.outcome_unknown(unknown, "interrupted")

    async def _check_unknown(self, job: Job) -> None:
        """At the job's deadline an unknown outcome is charged: a budget may overstate spend
        until an operator refunds, never understate it."""
        deadline = job.created_at + self._settings.deadline_seconds
        if self._clock() < deadline:
            await self._update(job, release(deadline))
            return
        settled = await self._store.resolve_unknown(
            job.id,
            charge=True,
            actor="gateway",
            reason="the deadline passed with the upstream's answer still unknown",
            now=self._clock(),
        )
        if settled is None:
            raise LeaseLost()  # settled meanwhile (an operator, or evidence)
        self._events.unknown_resolved(settled, "charged", "gateway")

    async def _poll(self, job: Job) -> None:
        assert job.upstream_id is not None
        try:
            async with self._polls:
                polled = await self._upstream.poll(job.upstream_id)
        except RateLimited as exc:
            self._polls.rate_limited()
            retry_after = min(exc.retry_after or 0.0, MAX_RETRY_AFTER_SECONDS)
            await self._reschedule(job, attempts=job.attempts, retry_after=retry_after)
            return
        except UpstreamNotFound:
            # Only a job the upstream has not known for a while is gone: one 404 is not enough.
            unseen = self._clock() - (job.refreshed_at or job.created_at)
            if unseen >= NOT_FOUND_GRACE_POLLS * self._settings.poll_max_seconds:
                await self._fail(
                    job, "upstream_job_not_found", "The upstream no longer knows this job."
                )
            else:
                await self._reschedule(job, attempts=job.attempts + 1)
            return
        except GatewayError as exc:
            log.warning("poll failed", extra={"job_id": job.id, "error_code": exc.code})
            if self._clock() - job.created_at >= self._unreachable_after():
                # Past the deadline and still no answer: stop holding the money.
                await self._fail(
                    job, "upstream_unreachable", "The upstream did not answer before the deadline."
                )
            else:
                await self._reschedule(job, attempts=job.attempts + 1)
            return
        await self.apply_poll(job, polled)

    async def apply_poll(self, job: Job, polled: UpstreamJob) -> None:
        """Move a leased job according to what the upstream just said about it."""
        now = self._clock()
        if polled.status == "completed":
            downloading = await self._update(job, finished_upstream_changes(polled, job, now))
            await self._download(downloading)
        elif polled.status == "failed":
            await self._fail(
                job,
                polled.error_code or "upstream_failed",
                polled.error_message or f"The upstream job ended as {polled.raw_status}.",
            )
        elif now - job.created_at >= self._settings.deadline_seconds:
            # This poll was the last look: the job is still not finished.
            await self._fail(
                job, "timeout", "The job did not finish before the gateway's deadline."
            )
        else:
            delay = next_delay(
                job.attempts,
                minimum=self._settings.poll_min_seconds,
                maximum=self._settings.poll_max_seconds,
            )
            await self._update(
                job,
                {
                    "status": polled.status,
                    "progress": min(polled.progress, 99),
                    "refreshed_at": now,
                    "attempts": job.attempts + 1,
                    **release(now + delay),
                },
            )

    async def _download(self, job: Job) -> None:
        """Copy the finished video (and last frame) into our storage, then complete the job."""
        now = self._clock()
        if job.deleted_at is not None and not await self._store.live_followers(job.id):
            await self._complete(job, video=None, last_frame=None)  # nobody can fetch it any more
            return
        expires = min(
            (job.upstream_finished_at or now) + self._settings.link_ttl_seconds,
            download_deadline(job, self._settings, self._storage),
        )
        if now >= expires:
            await self._fail(job, *given_up(job.error_code or ""))
            return
        try:
            if job.attempts == 1 and job.upstream_video_url is None:
                job = await self._refresh_links(job)  # once; then the /content fallback
            async with self._downloads, self._keeping_lease(job):
                until = min(now + self._storage.download_timeout_seconds, expires)
                video = await self._fetch(job, job.upstream_video_url, "video", until)
                video = await self._probed(job, video)
                last_frame = None
                if job.request.return_last_frame:
                    if job.upstream_last_frame_url:
                        last_frame = await self._fetch(
                            job, job.upstream_last_frame_url, "last_frame", until
                        )
                    else:
                        log.warning("upstream gave no last frame", extra={"job_id": job.id})
        except (GatewayError, BlobError) as exc:
            await self._download_failed(job, exc, expires)
            return
        await self._complete(job, video=video, last_frame=last_frame)

    async def _refresh_links(self, job: Job) -> Job:
        """Ask the upstream again for download links after a link stopped working."""
        assert job.upstream_id is not None
        async with self._polls:
            polled = await self._upstream.poll(job.upstream_id)
        if polled.status != "completed" or not polled.video_url:
            return job  # no fresh link: the documented /content path is the fallback
        return await self._update(
            job,
            {
                "upstream_video_url": polled.video_url,
                "upstream_last_frame_url": polled.last_frame_url,
            },
        )

    async def _fetch(
        self, job: Job, url: str | None, variant: str, until: float | None = None
    ) -> Asset:
        """Stream one file into storage through the size, time and content checks."""
        assert job.upstream_id is not None
        limits = DownloadLimits.of(self._storage, variant, until, now=self._clock())
        async with self._upstream.open_content(job.upstream_id, url=url, variant=variant) as got:
            return await store_download(got, self._blobs, variant, limits)

    async def _probed(self, job: Job, video: Asset) -> Asset:
        """The stored video with the probe's figures; a file that does not decode end to end
        is a failed download (``upstream_bad_media``), fetched again while the link lives."""
        try:
            facts = await probe_blob(self._blobs, video.key, video.size)
        except UndecodableMedia as exc:
            log.warning("stored video does not decode", extra={"job_id": job.id})
            raise UpstreamError(
                f"The upstream's video does not decode: {exc}", code="upstream_bad_media"
            ) from exc
        return dataclasses.replace(video, media=facts)

    async def _download_failed(self, job: Job, exc: Exception, expires: float) -> None:
        attempts = job.attempts + 1
        delay = next_delay(
            attempts,
            minimum=self._settings.poll_min_seconds,
            maximum=self._settings.poll_max_seconds,
        )
        reason, blob_reason = failure_reasons(exc)
        self._events.download_failed(job, reason, attempts)
        if blob_reason is not None:
            self._events.blob_failed(blob_reason)
        if self._clock() + delay >= expires:
            await self._fail(job, *given_up(reason))
            return
        # Remembered (not shown while the job runs) so giving up later names the real cause.
        changes: JobChanges = {"error_code": reason if reason in DOWNLOAD_CODES else None}
        if isinstance(exc, UpstreamNotFound | LinkRefused):
            # A signed link that stopped working: fall back to the documented /content path.
            changes |= {"upstream_video_url": None, "upstream_last_frame_url": None}
        await self._reschedule(job, attempts=attempts, extra=changes)

    @asynccontextmanager
    async def _keeping_lease(self, job: Job) -> AsyncIterator[None]:
        """Renew the lease while a long download runs; abandon the work if it is lost."""
        current = asyncio.current_task()
        assert current is not None

        async def renew() -> None:
            while True:
                await asyncio.sleep(self._settings.lease_seconds / 3)
                until = self._clock() + self._settings.lease_seconds
                if not await self._store.extend_lease(job.id, owner=self.owner, until=until):
                    current.cancel()
                    return

        keeper = asyncio.create_task(renew())
        try:
            yield
        except asyncio.CancelledError:
            if keeper.done() and not keeper.cancelled():
                current.uncancel()
                raise LeaseLost() from None
            raise
        finally:
            keeper.cancel()

    # -- state changes --------------------------------------------------------------------

    async def _update(self, job: Job, changes: JobChanges) -> Job:
        changes.setdefault("updated_at", int(self._clock()))
        updated = await self._store.update_leased_job(job.id, owner=self.owner, changes=changes)
        if updated is None:
            raise LeaseLost()
        return updated

    async def _reschedule(
        self,
        job: Job,
        *,
        attempts: int,
        retry_after: float | None = None,
        extra: JobChanges | None = None,
    ) -> None:
        delay = next_delay(
            attempts,
            minimum=self._settings.poll_min_seconds,
            maximum=self._settings.poll_max_seconds,
            retry_after=retry_after,
        )
        await self._update(
            job, {"attempts": attempts, **(extra or {}), **release(self._clock() + delay)}
        )

    async def _fail(self, job: Job, code: str, message: str, *, charge: int = 0) -> None:
        """Fail the job, refund its reservation (all but ``charge``, what a chained video's
        finished segments cost) and fail every video joined to it."""
        failed = await self._store.fail_job(
            job.id,
            owner=self.owner,
            code=code,
            message=message,
            now=self._clock(),
            charge=charge or None,
        )
        if failed is None:
            raise LeaseLost()
        reserved = job.cost_micros if job.money_state == "reserved" else 0
        self._events.failed(failed, code, max(0, reserved - charge))

    async def _complete(self, job: Job, *, video: Asset | None, last_frame: Asset | None) -> None:
        now = self._clock()
        changes: JobChanges = {
            "status": "completed",
            "progress": 100,
            "error_code": None,  # a failed attempt's reason, now moot
            # Signed links grant access to the upstream's copy and are dead weight once the
            # video is ours: not kept in the row.
            "upstream_video_url": None,
            "upstream_last_frame_url": None,
            "completed_at": int(now),
            "updated_at": int(now),
            "attempts": 0,
            **release(None),
        }
        if self._retention_days > 0:
            changes["expires_at"] = int(now) + self._retention_days * 86400
        delivered = price_of(job.request, self._prices, duration=job.delivered_seconds)
        done = await self._store.complete_job(
            job.id,
            owner=self.owner,
            changes=changes,
            video=video,
            last_frame=last_frame,
            charge=settle_amount(job.cost_micros, delivered),
        )
        if done is None:
            raise LeaseLost()
        if self._events.wants_team_names:
            team = await self._store.team_by_id(done.team_id)
            self._events.remember_team(done.team_id, team.name if team else done.team_id)
        self._events.completed(done, done.charged_micros or 0, now)
