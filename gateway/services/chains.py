"""The job runner's step for chained videos: submit each segment from the previous segment's last
frame, poll it, store it, and when every segment is stored join them into one MP4.

The chain's state (``gateway/domain/chains.py``) is written with the job under the runner's
lease before every upstream call, so a crash resumes from the last persisted segment. A segment
whose submit may or may not have reached the upstream (found ``submitting`` after a crash, a
lost answer, an accepted id that could not be written) is never submitted again (that could pay
twice): the video becomes ``submit_unknown`` with its money reserved until evidence, an
operator or the deadline settles it (``services/chain_outcomes.py``). A submit the upstream
certainly refused (connect error, 429, 5xx) is tried again with back-off until the deadline.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import logging
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from gateway.blobs.base import BlobError
from gateway.domain.chains import Chain, Segment, segment_request
from gateway.domain.schedule import next_delay
from gateway.errors import GatewayError, RateLimited, UpstreamError, UpstreamTimeout
from gateway.media.join import NotJoinable, join_segments
from gateway.media.probe import UndecodableMedia, probe_file
from gateway.services.chain_outcomes import (
    DEADLINE_REASON,
    attach_segment_evidence,
    segment_deadline,
    settle_unknown_segment,
    unknown_message,
)
from gateway.services.job_changes import release
from gateway.store.base import UNKNOWN_OUTCOME_CODE, Asset, Job, JobChanges
from gateway.upstream.job import UpstreamJob
from gateway.upstream.port import may_have_created

if TYPE_CHECKING:
    from gateway.services.jobs import JobRunner

log = logging.getLogger("gateway.chains")
FILE_CHUNK = 1024 * 1024
MAX_JOIN_ATTEMPTS = 5  # storage errors while joining: a few retries, then the video fails
# An upstream asking us to wait longer than this before a retried submit is not taken literally.
MAX_RETRY_AFTER_SECONDS = 600.0
# Codes of submit failures the upstream answered without creating anything, worth another try:
# a connection never made, and 5xx answers other than a proxy's 504 (``may_have_created``).
RETRIED_SUBMIT_CODES = frozenset({"upstream_unreachable", "upstream_error"})


class ChainStep:
    """One step of one leased chained job; ``JobRunner.step`` hands chained jobs here."""

    # Pauses between attempts to record an accepted segment through database errors.
    record_retry_delays: tuple[float, ...] = (0.05, 0.2, 0.5)

    def __init__(self, runner: JobRunner) -> None:
        self._runner = runner

    async def step(self, job: Job) -> None:
        assert job.chain_json is not None
        chain = Chain.from_json(job.chain_json)
        if job.status == "submit_unknown":
            await self._check_unknown(job, chain)
            return
        if job.status == "submitting":
            # The create call never submits a chain: nothing can exist upstream yet.
            job = await self._save(job, chain, {"status": "queued"})
        segment = chain.current()
        if segment is None:
            await self._join(job, chain)
        elif segment.status == "pending":
            await self._submit(job, chain, segment)
        elif segment.status in ("submitting", "unknown"):
            await self._mark_unknown(
                job,
                chain,
                segment,
                "interrupted",
                "the gateway stopped before it recorded the upstream's answer to its submit",
            )
        else:
            await self._poll(job, chain, segment)

    # -- submit -----------------------------------------------------------------------------

    async def _submit(self, job: Job, chain: Chain, segment: Segment) -> None:
        runner = self._runner
        previous = chain.previous(segment)
        first_frame = previous.last_frame_url if previous is not None else None
        if previous is not None and first_frame is None:
            await self._fail(job, chain, segment, "no_last_frame", "no last frame to start from")
            return
        request = job.request
        body = segment_request(
            request,
            segment.index,
            len(chain.segments),
            segment.prompt,
            segment.duration,
            first_frame,
        ).to_json()
        now = runner._clock()
        chain = chain.with_segment(
            segment.index,
            status="submitting",
            submitted_at=now,
            first_tried_at=segment.first_tried_at or now,
        )
        job = await self._save(job, chain, {})  # persisted before the call: never sent twice
        try:
            accepted = await runner._upstream.submit(body)
        except GatewayError as exc:
            if may_have_created(exc):
                await self._mark_unknown(
                    job, chain, segment, exc.code, f"the upstream's answer was lost ({exc.code})"
                )
            elif _worth_retrying(exc):
                await self._retry_submit(job, chain, chain.segments[segment.index], exc)
            else:
                await self._fail(job, chain, segment, exc.code, f"the upstream refused it: {exc}")
            return
        except Exception:
            # Not an answer we understand: the request may have reached the upstream.
            log.exception("segment submit failed unexpectedly", extra={"job_id": job.id})
            await self._mark_unknown(
                job, chain, segment, "internal_error", "the upstream call failed unexpectedly"
            )
            return
        await self._record_accepted(job, chain, segment, accepted)

    async def _retry_submit(
        self, job: Job, chain: Chain, segment: Segment, exc: GatewayError
    ) -> None:
        """The upstream certainly did not take the segment: try again after a back-off (its
        ``Retry-After`` honoured), or fail the video once the next try would be past the
        deadline after the segment's first try."""
        runner = self._runner
        settings = runner._settings
        now = runner._clock()
        refusals = segment.refusals + 1
        retry_after = min(exc.retry_after, MAX_RETRY_AFTER_SECONDS) if exc.retry_after else None
        delay = next_delay(
            refusals - 1,
            minimum=settings.poll_min_seconds,
            maximum=settings.poll_max_seconds,
            retry_after=retry_after,
        )
        started = segment.first_tried_at or now
        if now + delay >= started + settings.deadline_seconds:
            reason = f"the upstream refused it until the deadline ({refusals} tries): {exc}"
            await self._fail(job, chain, segment, exc.code, reason)
            return
        log.warning(
            "segment submit refused; retrying",
            extra={"job_id": job.id, "error_code": exc.code, "refusals": refusals, "delay": delay},
        )
        chain = chain.with_segment(
            segment.index, status="pending", refusals=refusals, error_code=exc.code
        )
        await self._save(job, chain, {"progress": chain.progress(), **release(now + delay)})

    async def _record_accepted(
        self, job: Job, chain: Chain, segment: Segment, accepted: UpstreamJob
    ) -> None:
        """Write the segment's upstream id down. The upstream has it now: database errors are
        retried with back-off; should it still not be written, the id goes to the log (an
        operator can attach it as evidence) and the next step finds the segment
        ``submitting``, so the video's outcome becomes unknown — never failed, never refunded."""
        from gateway.services.jobs import LeaseLost  # jobs.py imports this module

        runner = self._runner
        status = "in_progress" if accepted.status == "in_progress" else "queued"
        chain = chain.with_segment(
            segment.index, status=status, upstream_id=accepted.id, error_code=None
        )
        for pause in (*self.record_retry_delays, None):
            delay = runner._settings.poll_min_seconds
            changes: JobChanges = {
                "status": "in_progress",
                "attempts": 0,
                **release(runner._clock() + delay),
            }
            try:
                await self._save(job, chain, changes)
                return
            except LeaseLost:
                # A slow answer: another runner took the job over and may have found the
                # segment's outcome unknown meanwhile. This answer is the evidence.
                found = await attach_segment_evidence(
                    runner._store, job.id, accepted.id, runner._clock()
                )
                if found is not None:
                    runner._events.unknown_resolved(found, "evidence")
                    return
                break
            except Exception:
                if pause is None:
                    break
                log.warning(
                    "could not record accepted segment yet; retrying",
                    extra={"job_id": job.id, "upstream_id": accepted.id},
                )
                await asyncio.sleep(pause)
        log.error(
            "could not record accepted segment; its outcome is now unknown",
            extra={"job_id": job.id, "segment": segment.index + 1, "upstream_id": accepted.id},
        )

    # -- unknown outcomes -------------------------------------------------------------------

    async def _mark_unknown(
        self, job: Job, chain: Chain, segment: Segment, reason: str, detail: str
    ) -> None:
        """The segment may exist upstream: the video waits in ``submit_unknown``, its whole
        remaining reservation kept, until evidence, an operator or the deadline settles it."""
        runner = self._runner
        chain = chain.with_segment(
            segment.index, status="unknown", error_code=UNKNOWN_OUTCOME_CODE, error_message=detail
        )
        current = chain.segments[segment.index]
        deadline = segment_deadline(job, current, runner._settings.deadline_seconds)
        job = await self._save(
            job,
            chain,
            {
                "status": "submit_unknown",
                "error_code": UNKNOWN_OUTCOME_CODE,
                "error_message": unknown_message(chain, current, detail),
                "progress": chain.progress(),
                **release(deadline),
            },
        )
        runner._events.outcome_unknown(job, reason)

    async def _check_unknown(self, job: Job, chain: Chain) -> None:
        """At its deadline an unknown segment is charged (the conservative side) and the video
        fails: finished segments stay charged, the rest of the price is refunded."""
        runner = self._runner
        deadline = segment_deadline(job, chain.unknown(), runner._settings.deadline_seconds)
        if runner._clock() < deadline:
            await runner._update(job, release(deadline))
            return
        settled = await settle_unknown_segment(
            runner._store,
            job,
            charge=True,
            actor="gateway",
            reason=DEADLINE_REASON,
            now=runner._clock(),
        )
        if settled is None:
            from gateway.services.jobs import LeaseLost  # jobs.py imports this module

            raise LeaseLost()  # settled meanwhile (an operator, or evidence)
        runner._events.unknown_resolved(settled, "charged", "gateway")

    # -- poll and store ---------------------------------------------------------------------

    async def _poll(self, job: Job, chain: Chain, segment: Segment) -> None:
        runner = self._runner
        assert segment.upstream_id is not None
        try:
            polled = await runner._upstream.poll(segment.upstream_id)
        except RateLimited as exc:
            await self._later(job, chain, job.attempts, exc.retry_after)
            return
        except GatewayError as exc:
            log.warning("segment poll failed", extra={"job_id": job.id, "error_code": exc.code})
            await self._give_up_or_later(job, chain, segment, "upstream_unreachable")
            return
        if polled.status == "failed":
            reason = polled.error_message or f"it ended as {polled.raw_status}"
            await self._fail(job, chain, segment, polled.error_code or "upstream_failed", reason)
        elif polled.status == "completed":
            await self._store_segment(job, chain, segment, polled)
        else:
            chain = chain.with_segment(
                segment.index, status=polled.status, progress=min(polled.progress, 99)
            )
            await self._give_up_or_later(job, chain, segment, "timeout")

    async def _give_up_or_later(self, job: Job, chain: Chain, segment: Segment, code: str) -> None:
        runner = self._runner
        started = segment.submitted_at or job.created_at
        if runner._clock() - started >= runner._settings.deadline_seconds:
            await self._fail(job, chain, segment, code, "it did not finish before the deadline")
        else:
            await self._later(job, chain, job.attempts + 1, None)

    async def _later(
        self, job: Job, chain: Chain, attempts: int, retry_after: float | None
    ) -> None:
        settings = self._runner._settings
        delay = next_delay(
            attempts,
            minimum=settings.poll_min_seconds,
            maximum=settings.poll_max_seconds,
            retry_after=retry_after,
        )
        await self._save(
            job,
            chain,
            {
                "attempts": attempts,
                "progress": chain.progress(),
                "refreshed_at": self._runner._clock(),
                **release(self._runner._clock() + delay),
            },
        )

    async def _store_segment(
        self, job: Job, chain: Chain, segment: Segment, polled: UpstreamJob
    ) -> None:
        """Copy the finished segment (and its last frame) into storage, then go on."""
        runner = self._runner
        as_segment = dataclasses.replace(job, upstream_id=segment.upstream_id)
        final = segment.index == len(chain.segments) - 1
        wants_frame = not final or bool(job.request.return_last_frame)
        try:
            async with runner._downloads, runner._keeping_lease(job):
                video = await runner._fetch(as_segment, polled.video_url, "video")
                video = await runner._probed(as_segment, video)
                frame = None
                if wants_frame:
                    frame = await runner._fetch(as_segment, polled.last_frame_url, "last_frame")
        except (GatewayError, BlobError) as exc:
            log.warning("segment download failed", extra={"job_id": job.id, "error": str(exc)})
            await self._give_up_or_later(job, chain, segment, "upstream_link_expired")
            return
        frame_url = polled.last_frame_url
        if frame_url is None and frame is not None and not final:
            frame_url = await self._data_url(frame)  # no link to hand on: send the image itself
        assert video.media is not None
        chain = chain.with_segment(
            segment.index,
            status="stored",
            progress=100,
            video_key=video.key,
            video_size=video.size,
            duration_ms=video.media.duration_ms,
            last_frame_url=frame_url,
            last_frame_key=frame.key if frame else None,
            last_frame_size=frame.size if frame else 0,
        )
        following = chain.current()
        changes: JobChanges = {"chain_json": chain.to_json(), "attempts": 0}
        changes |= (
            {"status": "downloading"} if following is None else {"progress": chain.progress()}
        )
        # The segment is charged as it is recorded stored: one transaction, never twice.
        job = await self._charge_part(job, segment.price_micros, changes)
        if following is None:
            await self._join(job, chain)
        else:
            await self._submit(job, chain, following)

    async def _data_url(self, frame: Asset) -> str:
        data = b"".join([chunk async for chunk in self._runner._blobs.open_range(frame.key)])
        return f"data:{frame.content_type};base64,{base64.b64encode(data).decode()}"

    # -- join -------------------------------------------------------------------------------

    async def _join(self, job: Job, chain: Chain) -> None:
        """Join the stored segments by stream copy, check the result, store it, complete."""
        runner = self._runner
        workdir = await asyncio.to_thread(tempfile.mkdtemp, prefix="gateway-join-")
        try:
            async with runner._downloads, runner._keeping_lease(job):
                paths = []
                for segment in chain.segments:
                    assert segment.video_key is not None
                    path = os.path.join(workdir, f"segment-{segment.index}.mp4")
                    await self._write_file(segment.video_key, path)
                    paths.append(path)
                output = os.path.join(workdir, "joined.mp4")
                await asyncio.to_thread(join_segments, paths, output)
                facts = await asyncio.to_thread(probe_file, output)
                _check_length(chain, facts.duration_ms, facts.frames)
                size = await asyncio.to_thread(os.path.getsize, output)
                info = await runner._blobs.put(_read_file(output), expected_size=size)
        except (NotJoinable, UndecodableMedia) as exc:
            await self._fail_whole(job, chain, "segments_not_joinable", str(exc))
            return
        except BlobError as exc:
            log.warning("joining failed on storage", extra={"job_id": job.id, "error": str(exc)})
            if job.attempts + 1 >= MAX_JOIN_ATTEMPTS:
                await self._fail_whole(
                    job,
                    chain,
                    "storage_error",
                    "The segments could not be read or the joined video stored.",
                )
            else:
                await self._later(job, chain, job.attempts + 1, None)
            return
        finally:
            await asyncio.to_thread(shutil.rmtree, workdir, True)
        video = Asset(key=info.key, size=info.size, content_type="video/mp4", media=facts)
        last = chain.segments[-1]
        frame = None
        if job.request.return_last_frame and last.last_frame_key is not None:
            frame = Asset(
                key=last.last_frame_key, size=last.last_frame_size, content_type="image/png"
            )
        job = await self._save(job, chain, {"delivered_seconds": chain.total_seconds})
        await runner._complete(job, video=video, last_frame=frame)

    async def _write_file(self, key: str, path: str) -> None:
        with open(path, "wb") as file:  # noqa: ASYNC230 - small local writes, chunk by chunk
            async for chunk in self._runner._blobs.open_range(key):
                await asyncio.to_thread(file.write, chunk)

    # -- state ------------------------------------------------------------------------------

    async def _charge_part(self, job: Job, amount: int, changes: JobChanges) -> Job:
        """Apply ``changes`` and charge ``amount`` of the reservation, in one transaction."""
        runner = self._runner
        now = runner._clock()
        updated = await runner._store.charge_part(
            job.id,
            owner=runner.owner,
            amount=amount,
            changes=changes | {"updated_at": int(now)},
            now=now,
        )
        if updated is None:
            from gateway.services.jobs import LeaseLost  # jobs.py imports this module

            raise LeaseLost()
        return updated

    async def _save(self, job: Job, chain: Chain, changes: JobChanges) -> Job:
        return await self._runner._update(job, {"chain_json": chain.to_json(), **changes})

    async def _fail(self, job: Job, chain: Chain, segment: Segment, code: str, reason: str) -> None:
        chain = chain.with_segment(segment.index, status="failed", error_code=code)
        count = len(chain.segments)
        message = f"Segment {segment.index + 1} of {count} failed: {reason}."
        await self._fail_whole(job, chain, code, message)

    async def _fail_whole(self, job: Job, chain: Chain, code: str, message: str) -> None:
        """Fail the video: finished segments stay charged, the rest is refunded."""
        job = await self._save(job, chain, {})
        await self._runner._fail(job, code, message, charge=chain.charge_for_stored())


def _worth_retrying(exc: GatewayError) -> bool:
    """A refusal (``may_have_created`` said nothing was created) that a later try may pass: a
    rate limit (not an exhausted quota), a connection never made, a 5xx answer. Validation, key and quota errors
    fail the video at once, as they fail a single job."""
    if isinstance(exc, RateLimited | UpstreamTimeout):
        return True  # a timeout here is a connect timeout: ``may_have_created`` said so
    return type(exc) is UpstreamError and exc.code in RETRIED_SUBMIT_CODES


def _check_length(chain: Chain, duration_ms: int, frames: int) -> None:
    """The joined video lasts the sum of its segments, within a frame per boundary."""
    expected = sum(segment.duration_ms for segment in chain.segments)
    frame_ms = duration_ms / frames if frames else 1000.0
    tolerance = frame_ms * len(chain.segments)
    if abs(duration_ms - expected) > tolerance:
        raise NotJoinable(f"the joined video lasts {duration_ms} ms, the segments {expected} ms")


async def _read_file(path: str) -> AsyncIterator[bytes]:
    with open(path, "rb") as file:  # noqa: ASYNC230 - a local temporary file
        while chunk := await asyncio.to_thread(file.read, FILE_CHUNK):
            yield chunk
