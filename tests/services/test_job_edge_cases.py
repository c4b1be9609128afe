"""Edge cases found in review: a stray 404, polls that never answer, and a deleted leader whose
followers still wait for the video."""

from __future__ import annotations

from gateway.sandbox import FaultRule, SandboxConfig
from tests.services.conftest import MakeWorld


async def test_one_404_does_not_fail_a_job_that_was_being_polled(make_world: MakeWorld) -> None:
    slow = SandboxConfig(queue_seconds=1.0, run_seconds=300.0, video_bytes=100_000)
    world = await make_world(sandbox=slow, poll_min_seconds=0.5, poll_max_seconds=30.0)
    job = await world.create()
    for _ in range(6):  # many good polls while the job runs
        job = await world.tick(job.id)
    assert job.status == "in_progress"
    assert job.attempts >= 6
    world.sandbox.add_fault(FaultRule(op="poll", kind="status", status=404))
    job = await world.settle(job.id)
    assert job.status == "completed"
    assert job.money_state == "charged"


async def test_a_job_unknown_upstream_for_long_fails_and_refunds(make_world: MakeWorld) -> None:
    world = await make_world(poll_max_seconds=2.0)
    job = await world.create()
    world.sandbox.add_fault(FaultRule(op="poll", kind="status", status=404, times=0))
    job = await world.settle(job.id)
    assert (job.status, job.error_code) == ("failed", "upstream_job_not_found")
    assert job.money_state == "refunded"
    assert await world.store.audit() == []


async def test_polls_failing_past_the_deadline_release_the_money(make_world: MakeWorld) -> None:
    world = await make_world(deadline_seconds=60.0, poll_max_seconds=5.0)
    job = await world.create()
    world.sandbox.add_fault(FaultRule(op="poll", kind="status", status=500, times=0))
    job = await world.settle(job.id, steps=200)
    assert (job.status, job.error_code) == ("failed", "upstream_unreachable")
    assert world.clock() - job.created_at >= 60.0
    assert job.money_state == "refunded"
    assert await world.store.audit() == []


async def test_followers_of_a_deleted_leader_get_the_video_and_keep_the_cache(
    make_world: MakeWorld,
) -> None:
    world = await make_world()
    leader = await world.create(seed=5)
    follower = await world.create(seed=5)
    assert follower.cache_result == "coalesced"
    await world.videos.delete(world.principal, leader.id)
    done = await world.settle(leader.id)
    assert done.status == "completed"
    follower = await world.job(follower.id)
    assert follower.status == "completed"
    assert follower.video_asset is not None
    assert world.stored_bytes(follower.video_asset)[4:8] == b"ftyp"
    # The next identical request is a hit on the follower's stored copy, not a new job.
    again = await world.create(seed=5)
    assert again.cache_result == "hit"
    assert again.leader_id == follower.id
    assert again.video_asset == follower.video_asset


async def test_a_deleted_running_leader_is_not_joined(make_world: MakeWorld) -> None:
    world = await make_world()
    leader = await world.create(seed=6)
    await world.videos.delete(world.principal, leader.id)
    fresh = await world.create(seed=6)
    assert fresh.cache_result == "miss"
    assert fresh.leader_id is None
