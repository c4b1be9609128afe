"""The job runner end to end over real adapters: SQLite, a blob directory, the sandbox upstream.

Every test drives ``run_once`` by hand while moving one fake clock; only the ``run()`` tests at
the bottom use a (short, bounded) real loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time

import pytest

from gateway.blobs.base import BlobError
from gateway.blobs.filesystem import FilesystemBlobStore
from gateway.domain.video_request import VideoRequest
from gateway.sandbox import FaultRule, expected_last_frame_bytes, expected_video_bytes
from gateway.services.jobs import JobRunner
from gateway.store.base import Job

from .conftest import MakeWorld
from .support import SANDBOX, T0, World, eventually, sha256

# Upstream job timeline with the default SANDBOX config: queued until T0+1, done at T0+5.
# Runner looks (poll_min 2 s, x2.5, cap 30 s): T0+2, T0+4, T0+9 (completed), ...


def assert_released(job: Job) -> None:
    assert (job.lease_owner, job.locked_until) == (None, None)


async def test_queued_job_is_polled_downloaded_and_completed(world: World) -> None:
    job = await world.create()
    assert (job.status, job.next_check_at) == ("queued", T0 + 2)

    assert await world.runner.run_once() == 0  # not due yet
    world.clock.set(T0 + 2)
    assert await world.runner.run_once() == 1
    job = await world.job(job.id)
    assert (job.status, job.attempts, job.next_check_at) == ("in_progress", 1, T0 + 4)
    assert 0 < job.progress < 99 and job.refreshed_at == T0 + 2
    assert_released(job)

    job = await world.tick(job.id)
    assert (job.status, job.attempts, job.next_check_at) == ("in_progress", 2, T0 + 9)

    job = await world.tick(job.id)  # the upstream finished at T0+5
    expected = expected_video_bytes(world.upstream_job(job))
    assert job.status == "completed"
    assert (job.progress, job.completed_at, job.attempts) == (100, int(T0 + 9), 0)
    assert (job.next_check_at, job.upstream_finished_at, job.expires_at) == (None, T0 + 9, None)
    assert_released(job)
    assert job.video_asset == sha256(expected)
    assert job.last_frame_asset is None
    asset = await world.store.get_asset(job.video_asset)
    assert asset is not None
    assert (asset.size, asset.content_type) == (len(expected), "video/mp4")
    assert world.stored_bytes(job.video_asset) == expected
    assert world.temporary_files() == []
    assert world.sandbox.counters["file"] == 1  # the signed link, not /content
    assert world.sandbox.counters["content"] == 0
    assert await world.runner.run_once() == 0  # nothing left to do


async def test_last_frame_is_stored_when_asked_for(world: World) -> None:
    job = await world.settle((await world.create(return_last_frame=True)).id)
    upstream = world.upstream_job(job)
    frame = expected_last_frame_bytes(upstream)
    assert job.status == "completed"
    assert world.stored_bytes(job.video_asset) == expected_video_bytes(upstream)
    assert job.last_frame_asset == sha256(frame)
    assert world.stored_bytes(job.last_frame_asset) == frame
    asset = await world.store.get_asset(job.last_frame_asset)
    assert asset is not None and (asset.size, asset.content_type) == (len(frame), "image/png")
    assert len(world.object_files()) == 2


async def test_same_content_is_stored_once(world: World) -> None:
    first = await world.settle((await world.create(seed=7)).id)
    second = await world.settle((await world.create(seed=7)).id)
    assert first.video_asset == second.video_asset
    assert len(world.object_files()) == 1


async def test_polls_back_off_two_five_twelve_and_a_half_then_the_cap(
    make_world: MakeWorld,
) -> None:
    world = await make_world(sandbox=SANDBOX.with_changes({"run_seconds": 10_000.0}))
    job = await world.create()
    delays = []
    for _ in range(6):
        due = job.next_check_at
        assert due is not None
        world.clock.set(due - 0.01)
        assert await world.runner.run_once() == 0  # never early
        job = await world.tick(job.id)
        assert job.next_check_at is not None
        delays.append(job.next_check_at - world.clock())
    assert delays == [2.0, 5.0, 12.5, 30.0, 30.0, 30.0]
    assert job.status == "in_progress" and job.attempts == 6
    assert world.sandbox.counters["poll"] == 6


@pytest.mark.parametrize(
    ("retry_after", "wait", "then"),
    [(40, 40.0, "completed"), (1, 2.0, "in_progress")],  # the upstream finishes at T0+5
)
async def test_rate_limited_poll_waits_at_least_retry_after(
    world: World, retry_after: int, wait: float, then: str
) -> None:
    job = await world.create()
    world.sandbox.add_fault(
        FaultRule(op="poll", kind="status", status=429, retry_after=retry_after, times=0)
    )
    job = await world.tick(job.id)

    assert world.sandbox.counters["poll"] == 3  # the client's own retries ...
    assert world.client_sleeps == [retry_after, retry_after]  # ... each after Retry-After
    assert (job.status, job.attempts) == ("queued", 0)  # a rate limit is not a failed look
    assert job.next_check_at == T0 + 2 + wait
    assert_released(job)

    world.sandbox.faults.clear()
    world.clock.set(T0 + 2 + wait - 0.5)
    assert await world.runner.run_once() == 0
    job = await world.tick(job.id)
    assert job.status == then
    assert world.sandbox.counters["poll"] == 4


async def test_poll_server_error_is_retried_later(world: World) -> None:
    job = await world.create()
    world.sandbox.add_fault(FaultRule(op="poll", kind="status", status=500))
    job = await world.tick(job.id)
    assert world.sandbox.counters["poll"] == 1  # a 500 is not retried by the client
    assert (job.status, job.attempts, job.next_check_at) == ("queued", 1, T0 + 2 + 5)
    assert_released(job)

    job = await world.tick(job.id)  # T0+7: the upstream finished meanwhile
    assert job.status == "completed"


async def test_poll_503_is_ridden_out_by_the_client(world: World) -> None:
    job = await world.create()
    world.sandbox.add_fault(FaultRule(op="poll", kind="status", status=503, times=2))
    job = await world.tick(job.id)
    assert world.sandbox.counters["poll"] == 3
    assert len(world.client_sleeps) == 2
    assert (job.status, job.attempts) == ("in_progress", 1)


async def test_unfinished_job_fails_with_timeout_after_its_last_poll_past_the_deadline(
    make_world: MakeWorld,
) -> None:
    world = await make_world(
        deadline_seconds=100.0, sandbox=SANDBOX.with_changes({"run_seconds": 10_000.0})
    )
    job = await world.create()
    looks = []
    while job.status not in ("failed", "completed"):
        job = await world.tick(job.id)
        looks.append(world.clock() - T0)
    # Looks at +2, +4, +9, +21.5, +51.5, +81.5 are before the deadline; +111.5 is the last.
    assert looks == [2.0, 4.0, 9.0, 21.5, 51.5, 81.5, 111.5]
    assert world.sandbox.counters["poll"] == len(looks)
    assert (job.status, job.error_code) == ("failed", "timeout")
    assert job.completed_at == int(T0 + 111.5)
    assert job.next_check_at is None
    assert_released(job)
    assert world.object_files() == []


async def test_job_that_finishes_by_its_last_poll_is_completed_not_timed_out(
    make_world: MakeWorld,
) -> None:
    # Finishes upstream at T0+106: after the deadline, before the last look at T0+111.5.
    world = await make_world(
        deadline_seconds=100.0, sandbox=SANDBOX.with_changes({"run_seconds": 105.0})
    )
    job = await world.settle((await world.create()).id)
    assert world.clock() == T0 + 111.5
    assert (job.status, job.error_code) == ("completed", None)
    assert world.stored_bytes(job.video_asset) == expected_video_bytes(world.upstream_job(job))


async def test_upstream_failure_fails_the_job_with_the_upstream_code(world: World) -> None:
    world.sandbox.add_fault(
        FaultRule(
            op="create",
            kind="fail_job",
            error_code="OutputVideoSensitiveContentDetected",
            error_message="The output video may contain sensitive content",
        )
    )
    job = await world.settle((await world.create()).id)
    assert job.status == "failed"
    assert job.error_code == "OutputVideoSensitiveContentDetected"
    assert job.error_message == "The output video may contain sensitive content"
    assert job.completed_at == int(T0 + 9) and job.next_check_at is None
    assert_released(job)
    assert job.video_asset is None
    assert world.sandbox.counters["file"] + world.sandbox.counters["content"] == 0


async def test_job_cancelled_upstream_fails(world: World) -> None:
    job = await world.tick((await world.create()).id)
    world.sandbox.force_status(job.upstream_id or "", "cancelled", None)
    job = await world.tick(job.id)
    assert (job.status, job.error_code) == ("failed", "cancelled")


@pytest.mark.parametrize(
    "raise_app_exceptions",
    [
        pytest.param(False, id="short-body"),  # the client sees fewer bytes than promised
        pytest.param(True, id="exception"),  # the transport raises mid-response
    ],
)
async def test_truncated_download_is_retried_without_leaving_partial_files(
    make_world: MakeWorld, raise_app_exceptions: bool
) -> None:
    world = await make_world(raise_app_exceptions=raise_app_exceptions)
    world.sandbox.add_fault(FaultRule(op="file", kind="truncate", truncate_at=70_000))
    job = await world.create()
    for _ in range(3):
        job = await world.tick(job.id)

    assert job.status == "downloading"
    assert job.next_check_at is not None and job.next_check_at > world.clock()
    assert job.video_asset is None
    assert_released(job)
    assert world.temporary_files() == []
    assert world.object_files() == []

    job = await world.tick(job.id)
    assert job.status == "completed"
    assert world.stored_bytes(job.video_asset) == expected_video_bytes(world.upstream_job(job))
    assert world.sandbox.counters["file"] == 2
    assert world.temporary_files() == []


async def test_refused_signed_link_falls_back_to_the_content_endpoint(
    make_world: MakeWorld,
) -> None:
    world = await make_world(cdn_host="cdn.sandbox")
    world.sandbox.add_fault(FaultRule(op="file", kind="status", status=403, times=0))
    job = await world.create()
    for _ in range(3):
        job = await world.tick(job.id)

    assert job.status == "downloading"
    assert (job.upstream_video_url, job.upstream_last_frame_url) == (None, None)
    assert job.attempts == 1
    assert world.sandbox.counters["file"] == 1

    # The next attempt asks for fresh links once (refused again), then uses /content.
    job = await world.tick(job.id)
    assert job.status == "downloading"
    assert world.sandbox.counters["file"] == 2
    job = await world.tick(job.id)
    assert job.status == "completed"
    assert world.sandbox.counters["content"] == 1
    assert world.stored_bytes(job.video_asset) == expected_video_bytes(world.upstream_job(job))


@pytest.mark.parametrize(
    ("offset", "fetched"),
    [
        pytest.param(0.0, False, id="expired-before-the-attempt"),
        pytest.param(-1.0, True, id="expires-before-the-next-attempt"),
    ],
)
async def test_download_gives_up_when_the_links_expire(
    make_world: MakeWorld, offset: float, fetched: bool
) -> None:
    world = await make_world(link_ttl_seconds=600.0)
    world.sandbox.add_fault(FaultRule(op="file", kind="status", status=500, times=0))
    job = await world.create()
    for _ in range(3):
        job = await world.tick(job.id)
    assert (job.status, job.upstream_finished_at) == ("downloading", T0 + 9)
    files = world.sandbox.counters["file"]

    world.clock.set(T0 + 9 + 600 + offset)
    assert await world.runner.run_once() == 1
    job = await world.job(job.id)

    assert (job.status, job.error_code) == ("failed", "upstream_link_expired")
    assert world.sandbox.counters["file"] == files + (1 if fetched else 0)
    assert job.next_check_at is None
    assert_released(job)
    assert world.object_files() == world.temporary_files() == []


async def test_job_stuck_submitting_keeps_its_money_after_the_grace_period(world: World) -> None:
    """The upstream may have the job: its outcome is unknown, never refunded on a guess; at the
    deadline it is charged (issue #13)."""
    # The process dies while the upstream has not answered the submit yet.
    world.gate.close()
    world.sandbox.add_fault(FaultRule(op="create", kind="timeout"))
    create = asyncio.create_task(world.create())
    await asyncio.wait_for(world.gate.entered.wait(), 5)
    create.cancel()
    with pytest.raises(asyncio.CancelledError):
        await create
    world.gate.open()
    [listed], _ = await world.store.list_jobs(
        world.principal.team_id, after=None, limit=10, order="asc"
    )
    job = await world.job(listed.id)  # the whole row: lists leave the upstream columns out
    assert (job.status, job.upstream_id, job.next_check_at) == ("submitting", None, T0 + 120)

    world.clock.set(T0 + 119.5)
    assert await world.runner.run_once() == 0
    job = await world.tick(job.id)

    assert (job.status, job.error_code) == ("submit_unknown", "submit_outcome_unknown")
    assert (job.money_state, job.next_check_at) == (
        "reserved",
        T0 + world.settings.deadline_seconds,
    )
    assert_released(job)
    job = await world.tick(job.id)
    assert (job.status, job.error_code) == ("failed", "submit_outcome_unknown")
    assert (job.money_state, job.charged_micros) == ("charged", job.cost_micros)
    assert job.next_check_at is None
    assert await world.store.audit() == []
    assert world.sandbox.counters["create_accepted"] == world.sandbox.counters["poll"] == 0


async def test_submitting_job_seen_too_early_is_released_until_the_grace_ends(
    world: World,
) -> None:
    """Another process's clock ran ahead: the job is rescheduled, not kept leased."""
    job = Job(
        id="video_early",
        team_id=world.principal.team_id,
        key_id=world.principal.key_id,
        model="m",
        request=VideoRequest(model="m", prompt="p"),
        status="submitting",
        created_at=int(T0),
        updated_at=int(T0),
        next_check_at=T0 + 10,
    )
    await world.store.insert_job(job)
    job = await world.tick(job.id)
    assert (job.status, job.next_check_at) == ("submitting", T0 + 120)
    assert_released(job)
    job = await world.tick(job.id)
    assert (job.status, job.error_code) == ("submit_unknown", "submit_outcome_unknown")


# -- leases -----------------------------------------------------------------------------


async def claim(world: World, runner: JobRunner) -> list[Job]:
    """What ``runner`` claims now, without taking any step (as if it then crashed)."""
    return await world.store.claim_due_jobs(
        owner=runner.owner, now=world.clock(), lease_seconds=world.settings.lease_seconds, limit=10
    )


async def test_claimed_job_waits_for_its_lease_to_expire_before_another_runner_takes_it(
    world: World,
) -> None:
    other = world.runner_for("runner-b")
    job = await world.create()
    world.clock.set(T0 + 2)
    [held] = await claim(world, world.runner)
    assert held.lease_owner == "runner-a"

    assert await other.run_once() == 0
    world.clock.set(T0 + 2 + 60)  # the lease's last instant
    assert await other.run_once() == 0
    world.clock.advance(0.5)
    assert await other.run_once() == 1  # B finishes what A left (upstream done at T0+5)
    job = await world.job(job.id)
    assert job.status == "completed"
    assert_released(job)
    assert world.stored_bytes(job.video_asset) == expected_video_bytes(world.upstream_job(job))


async def test_runner_that_lost_its_lease_changes_nothing(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    other = world.runner_for("runner-b")
    job = await world.create()
    world.clock.set(T0 + 2)
    [stale] = await claim(world, world.runner)
    world.clock.advance(61)  # runner A stalls past its lease; B takes over
    [taken] = await claim(world, other)

    with caplog.at_level(logging.WARNING, logger="gateway.jobs"):
        await world.runner.step(stale)  # must not raise

    assert "lease lost" in caplog.messages
    job = await world.job(job.id)
    assert (job.status, job.attempts, job.lease_owner) == ("queued", 0, "runner-b")
    await other.step(taken)
    job = await world.job(job.id)
    assert job.status == "completed"
    assert_released(job)


async def make_downloading(world: World) -> Job:
    """A job finished upstream whose first download attempt failed (so it is ``downloading``)."""
    world.sandbox.add_fault(FaultRule(op="file", kind="status", status=500))
    job = await world.create()
    for _ in range(3):
        job = await world.tick(job.id)
    assert job.status == "downloading" and job.next_check_at is not None
    world.clock.set(job.next_check_at)
    return job


async def test_download_finished_after_the_lease_was_lost_is_not_recorded(world: World) -> None:
    other = world.runner_for("runner-b")
    job = await make_downloading(world)
    [stale] = await claim(world, world.runner)
    world.clock.advance(61)
    [taken] = await claim(world, other)

    await world.runner.step(stale)  # downloads, then complete_job is refused

    job = await world.job(job.id)
    assert (job.status, job.video_asset, job.lease_owner) == ("downloading", None, "runner-b")
    [blob] = world.object_files()  # stored, but recorded by no one: the sweep's to remove
    assert await world.store.known_assets([blob.name]) == set()

    await other.step(taken)
    job = await world.job(job.id)
    assert job.status == "completed" and job.video_asset == blob.name
    assert await world.store.known_assets([blob.name]) == {blob.name}


async def test_lease_is_renewed_during_a_long_download(make_world: MakeWorld) -> None:
    world = await make_world(lease_seconds=0.06)  # renewed every 20 ms of real time
    job = await make_downloading(world)
    world.gate.close()
    world.sandbox.add_fault(FaultRule(op="file", kind="latency", delay=5))
    step = asyncio.create_task(world.runner.run_once())
    await asyncio.wait_for(world.gate.entered.wait(), 5)
    world.clock.advance(100)

    async def renewed() -> bool:
        locked = (await world.job(job.id)).locked_until
        return locked is not None and locked >= world.clock()

    await eventually(renewed)
    world.gate.open()
    assert await asyncio.wait_for(step, 5) == 1
    job = await world.job(job.id)
    assert job.status == "completed"
    assert_released(job)


async def test_lease_taken_during_a_download_abandons_it(make_world: MakeWorld) -> None:
    world = await make_world(lease_seconds=0.06)
    job = await make_downloading(world)
    world.gate.close()
    world.sandbox.add_fault(FaultRule(op="file", kind="latency", delay=5))
    step = asyncio.create_task(world.runner.run_once())
    await asyncio.wait_for(world.gate.entered.wait(), 5)

    await world.store.update_job(job.id, {"lease_owner": "thief"})

    assert await asyncio.wait_for(step, 5) == 1  # returned although the upstream still hangs
    world.gate.open()
    job = await world.job(job.id)
    assert (job.status, job.lease_owner, job.video_asset) == ("downloading", "thief", None)
    assert world.temporary_files() == world.object_files() == []


# -- deleted jobs -----------------------------------------------------------------------


async def test_deleted_job_that_finishes_is_completed_without_storing_anything(
    world: World,
) -> None:
    job = await world.tick((await world.create()).id)
    await world.videos.delete(world.principal, job.id)
    job = await world.settle(job.id)
    assert (job.status, job.video_asset, job.last_frame_asset) == ("completed", None, None)
    assert job.deleted_at is not None
    assert world.sandbox.counters["file"] + world.sandbox.counters["content"] == 0
    assert world.object_files() == []


async def test_job_deleted_while_downloading_leaves_only_an_orphan(world: World) -> None:
    job = await make_downloading(world)
    [claimed] = await claim(world, world.runner)
    await world.videos.delete(world.principal, job.id)  # while the runner holds it

    await world.runner.step(claimed)

    job = await world.job(job.id)
    assert (job.status, job.video_asset) == ("completed", None)
    [blob] = world.object_files()
    assert await world.store.known_assets([blob.name]) == set()  # nothing holds it ...
    await world.runner.maintenance.run()
    await world.runner.maintenance.run()
    assert world.object_files() == []  # ... so the orphan sweep removes it


async def test_run_once_takes_at_most_its_limit(world: World) -> None:
    for _ in range(3):
        await world.create()
    world.clock.set(T0 + 2)
    assert await world.runner.run_once(limit=2) == 2
    assert await world.runner.run_once(limit=2) == 1
    assert await world.runner.run_once() == 0


# -- the loop ---------------------------------------------------------------------------

INSTANT = SANDBOX.with_changes({"queue_seconds": 0.0, "run_seconds": 0.0})
FAST_LOOP = {"idle_seconds": 0.01, "sandbox": INSTANT}


async def test_run_processes_due_jobs_and_sweeps_until_stopped(make_world: MakeWorld) -> None:
    world = await make_world(**FAST_LOOP)
    stale = world.blobs.tmp / "crashed.part"
    stale.write_bytes(b"partial")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    jobs = [await world.create() for _ in range(3)]
    world.clock.set(T0 + 2)
    stop = asyncio.Event()
    loop = asyncio.create_task(world.runner.run(stop))

    async def all_completed() -> bool:
        return all([(await world.job(job.id)).status == "completed" for job in jobs])

    await eventually(all_completed)
    stop.set()
    await asyncio.wait_for(loop, 5)
    assert not stale.exists()  # the first tick swept crash leftovers


class FailingSweep(FilesystemBlobStore):
    sweeps = 0

    async def sweep_temporary(self, older_than_seconds: float) -> int:
        self.sweeps += 1
        raise BlobError("the disk is having a bad day")


async def test_failing_maintenance_does_not_stop_the_runner(
    make_world: MakeWorld, caplog: pytest.LogCaptureFixture
) -> None:
    world = await make_world(**FAST_LOOP)
    blobs = FailingSweep(world.blobs.root)
    runner = JobRunner(world.store, world.upstream, blobs, world.settings, clock=world.clock)
    job = await world.create()
    world.clock.set(T0 + 2)
    stop = asyncio.Event()
    with caplog.at_level(logging.ERROR, logger="gateway.jobs"):
        loop = asyncio.create_task(runner.run(stop))

        async def completed() -> bool:
            return (await world.job(job.id)).status == "completed"

        await eventually(completed)
        stop.set()
        await asyncio.wait_for(loop, 5)
    assert blobs.sweeps == 1  # retried after sweep_interval_seconds, not on every tick
    assert caplog.messages.count("job runner tick failed") == 1


async def start_blocked_download(world: World) -> tuple[Job, asyncio.Event, asyncio.Task[None]]:
    """A running loop whose one job is stuck inside the upstream's file download."""
    world.gate.close()
    world.sandbox.add_fault(FaultRule(op="file", kind="latency", delay=60))
    job = await world.create()
    world.clock.set(T0 + 2)
    stop = asyncio.Event()
    loop = asyncio.create_task(world.runner.run(stop))
    await asyncio.wait_for(world.gate.entered.wait(), 5)
    return job, stop, loop


async def test_stop_lets_in_flight_work_finish_within_the_drain_deadline(
    make_world: MakeWorld,
) -> None:
    # A drain deadline no test reaches: the loop must end because the work finished, not
    # because the deadline passed (a loop that always waited the full deadline times out here).
    world = await make_world(drain_seconds=3600.0, **FAST_LOOP)
    job, stop, loop = await start_blocked_download(world)
    stop.set()
    asyncio.get_running_loop().call_later(0.05, world.gate.open)
    await asyncio.wait_for(loop, 60)
    assert (await world.job(job.id)).status == "completed"


async def test_stop_abandons_work_still_running_at_the_drain_deadline(
    make_world: MakeWorld,
) -> None:
    world = await make_world(drain_seconds=0.05, **FAST_LOOP)
    job, stop, loop = await start_blocked_download(world)
    stop.set()
    started = time.monotonic()
    # The download stays blocked until the gate opens, after the loop ended: the loop can only
    # end by abandoning it at the drain deadline.
    await asyncio.wait_for(loop, 30)
    elapsed = time.monotonic() - started
    world.gate.open()
    assert elapsed >= 0.04  # ... and not before the deadline
    job = await world.job(job.id)
    # Left as it was, its lease to expire so that another runner takes it over.
    assert (job.status, job.lease_owner) == ("downloading", "runner-a")
    assert world.temporary_files() == world.object_files() == []


async def test_stored_video_is_probed_and_its_figures_kept(world: World) -> None:
    job = await world.settle((await world.create(generate_audio=True, ratio="9:16")).id)
    assert job.status == "completed" and job.video_asset is not None
    facts = (await world.store.asset_media([job.video_asset]))[job.video_asset]
    assert (facts.container, facts.video_codec, facts.width, facts.height) == (
        "mp4",
        "h264",
        90,
        160,
    )
    assert (facts.duration_ms, facts.has_audio) == (5000, True)


async def test_a_whole_but_undecodable_download_is_retried(world: World) -> None:
    # The upstream hands over a truncated MP4 with a Content-Length that matches it.
    world.sandbox.add_fault(FaultRule(op="file", kind="cut_file", truncate_at=9000))
    job = await world.create()
    for _ in range(3):
        job = await world.tick(job.id)
    assert job.status == "downloading"
    assert job.video_asset is None and job.attempts == 1
    job = await world.settle(job.id)
    assert job.status == "completed"
    assert world.stored_bytes(job.video_asset) == expected_video_bytes(world.upstream_job(job))
    assert world.sandbox.counters["file"] == 2
