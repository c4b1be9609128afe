"""The runner's chain step on a hand-moved clock: segments one after another, the edges
(a crash between "about to submit" and the upstream's answer, segments that cannot be joined),
and the orphan sweep leaving a running chain's stored segments alone."""

from __future__ import annotations

import pytest

from gateway.domain.chains import Chain
from gateway.sandbox import FaultRule

from .support import World


@pytest.fixture(autouse=True)
def quick_frames(world: World) -> None:
    world.sandbox.set_config(frame_rate=4)  # few frames: quick renders, decodes and joins


def chain_of(job: object) -> Chain:
    text = getattr(job, "chain_json", None)
    assert text is not None
    return Chain.from_json(text)


async def test_a_chain_runs_segment_after_segment_and_completes(world: World) -> None:
    job = await world.create(duration=30, seed=3)
    assert (job.status, job.upstream_id, job.cost_micros) == ("queued", None, 30 * 113_000)
    while chain_of(job).segments[0].status != "stored":
        job = await world.tick(job.id)
    # Segment 1 is charged as it is stored; segment 2's share stays reserved.
    assert (job.settled_micros, job.money_state) == (15 * 113_000, "reserved")
    assert await world.store.audit() == []
    job = await world.settle(job.id)
    assert job.status == "completed", job.error_message
    assert job.charged_micros == 30 * 113_000 and job.delivered_seconds == 30
    assert [s.status for s in chain_of(job).segments] == ["stored", "stored"]
    assert world.sandbox.counters["create_accepted"] == 2
    second = list(world.sandbox.jobs.values())[1]
    assert second.params.first_frame_url is not None
    facts = (await world.store.asset_media([job.video_asset or ""]))[job.video_asset or ""]
    assert abs(facts.duration_ms - 30_000) <= 2 * 1000 / 4


async def test_a_segment_caught_mid_submit_is_never_sent_again(world: World) -> None:
    job = await world.create(duration=30)
    job = await world.tick(job.id)  # segment 1 submitted
    for _ in range(20):
        chain = chain_of(job)
        if chain.segments[0].status == "stored":
            break
        job = await world.tick(job.id)
    # The process died after persisting "submitting" for segment 2, before the answer.
    chain = chain_of(job).with_segment(1, status="submitting", upstream_id=None)
    job = await world.store.update_job(
        job.id, {"chain_json": chain.to_json(), "next_check_at": world.clock()}
    )
    assert job is not None
    created = world.sandbox.counters["create_accepted"]
    job = await world.settle(job.id)  # unknown, then charged at the deadline (issue #13)
    assert job.status == "failed" and job.error_code == "submit_outcome_unknown"
    assert (job.error_message or "").startswith("Segment 2 of 2 failed")
    assert world.sandbox.counters["create_accepted"] == created  # nothing sent again
    stored = sum(s.price_micros for s in chain_of(job).segments if s.status == "stored")
    assert stored == 15 * 113_000
    assert job.charged_micros == 30 * 113_000  # the unknown segment is charged, never guessed


async def test_segments_that_differ_are_not_joined(world: World) -> None:
    job = await world.create(duration=30)
    job = await world.tick(job.id)  # segment 1 submitted at the sandbox's frame size
    world.sandbox.set_config(frame_short_side=120)  # segment 2 comes out larger
    job = await world.settle(job.id)
    assert job.status == "failed" and job.error_code == "segments_not_joinable"
    assert job.charged_micros == 30 * 113_000  # the upstream finished both segments
    assert job.video_asset is None


async def test_the_orphan_sweep_keeps_a_running_chains_segments(world: World) -> None:
    world.sandbox.add_fault(FaultRule(op="create", kind="fail_job", after=1))
    job = await world.create(duration=30)
    for _ in range(20):
        job = await world.tick(job.id)
        if chain_of(job).segments[0].status == "stored":
            break
    kept = chain_of(job).segments[0].video_key
    assert kept is not None
    for _ in range(2):  # an orphan must be seen on two sweeps
        await world.runner.maintenance.run()
    assert world.blobs.path_for(kept).exists()
    job = await world.settle(job.id)
    assert job.status == "failed" and job.charged_micros == 15 * 113_000
    for _ in range(2):
        await world.runner.maintenance.run()
    assert not world.blobs.path_for(kept).exists()  # the failed chain's segments are swept
