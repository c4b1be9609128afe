"""One runner process never steps the same job twice at once.

A step can outlast its lease (a slow poll, a chained segment's submit); the runner's next claim
then takes the job again under the same owner name, so a second step would pass every lease
check. These tests hold a step inside the upstream (the sandbox's gate), let the lease expire on
the fake clock, and watch what the runner does with the claim that comes back.
"""

from __future__ import annotations

import asyncio

import pytest

from gateway.sandbox import FaultRule
from gateway.store.base import Job

from .conftest import MakeWorld
from .support import SANDBOX, T0, World, eventually

LEASE = 60.0
FAST_LOOP = {"idle_seconds": 0.01, "lease_seconds": LEASE}
QUEUED_FOR_AN_HOUR = SANDBOX.with_changes({"queue_seconds": 3600.0})


async def held_poll(world: World) -> str:
    """A job whose first poll is held in the upstream until the test opens the gate."""
    job = await world.create()
    world.gate.close()
    world.sandbox.add_fault(FaultRule(op="poll", kind="latency", delay=1, times=0))
    world.clock.set(T0 + 2)
    return job.id


async def lease_renewed(world: World, job_id: str) -> None:
    """Let the held step's lease expire and wait until the runner has claimed the job again."""
    world.clock.advance(LEASE + 1)

    async def claimed_again() -> bool:
        locked = (await world.job(job_id)).locked_until
        return locked is not None and locked >= world.clock() + LEASE

    await eventually(claimed_again)


async def test_run_does_not_step_a_job_whose_step_outlasted_its_lease(
    make_world: MakeWorld,
) -> None:
    world = await make_world(**FAST_LOOP)
    job_id = await held_poll(world)
    stop = asyncio.Event()
    loop = asyncio.create_task(world.runner.run(stop))
    await asyncio.wait_for(world.gate.entered.wait(), 5)

    await lease_renewed(world, job_id)  # the same runner's claim took the job once more
    world.gate.open()

    async def completed() -> bool:
        return (await world.job(job_id)).status == "completed"

    await eventually(completed)
    stop.set()
    await asyncio.wait_for(loop, 5)
    assert world.sandbox.counters["poll"] == 1  # one step, one poll: not a second step beside it
    assert len(world.gate.calls) == 1
    job = await world.job(job_id)
    assert (job.lease_owner, job.locked_until, job.next_check_at) == (None, None, None)
    assert world.sandbox.counters["file"] == 1  # stored once


async def test_a_step_that_outlasts_its_lease_sets_the_next_check_when_it_ends(
    make_world: MakeWorld,
) -> None:
    """The re-claim only renewed the lease: the held step's own outcome (here: poll again
    later) is what stands, and the lease is given back."""
    world = await make_world(**FAST_LOOP, sandbox=QUEUED_FOR_AN_HOUR)
    job_id = await held_poll(world)
    stop = asyncio.Event()
    loop = asyncio.create_task(world.runner.run(stop))
    await asyncio.wait_for(world.gate.entered.wait(), 5)
    await lease_renewed(world, job_id)
    world.gate.open()

    async def rescheduled() -> bool:
        return (await world.job(job_id)).attempts == 1

    await eventually(rescheduled)
    stop.set()
    await asyncio.wait_for(loop, 5)
    job = await world.job(job_id)
    assert (job.status, job.lease_owner, job.locked_until) == ("queued", None, None)
    assert job.next_check_at is not None and job.next_check_at > world.clock()
    assert world.sandbox.counters["poll"] == 1


async def test_run_once_beside_a_held_step_leaves_that_job_alone(world: World) -> None:
    job_id = await held_poll(world)
    first = asyncio.create_task(world.runner.run_once())
    await asyncio.wait_for(world.gate.entered.wait(), 5)
    world.clock.advance(LEASE + 1)

    second = asyncio.create_task(world.runner.run_once())

    async def second_done_or_polling() -> bool:
        return second.done() or len(world.gate.calls) > 1

    await eventually(second_done_or_polling)
    world.gate.open()
    assert await asyncio.wait_for(second, 5) == 0  # claimed (its lease renewed), not stepped
    assert await asyncio.wait_for(first, 5) == 1
    assert world.sandbox.counters["poll"] == 1
    job = await world.job(job_id)
    assert job.status == "completed"


# -- a step that ends while the claim runs ------------------------------------------------


async def test_a_step_that_ends_after_the_claim_took_its_row_is_not_repeated(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The claim read the row before the held step's last write: stepping that row would
    repeat the step from a stale snapshot."""
    job_id = await held_poll(world)
    first = asyncio.create_task(world.runner.run_once())
    await asyncio.wait_for(world.gate.entered.wait(), 5)
    world.clock.advance(LEASE + 1)
    claim = world.store.claim_due_jobs

    async def claim_then_end_the_step(
        *, owner: str, now: float, lease_seconds: float, limit: int
    ) -> list[Job]:
        claimed = await claim(owner=owner, now=now, lease_seconds=lease_seconds, limit=limit)
        world.gate.open()
        await asyncio.wait_for(first, 5)  # the held step completes the job meanwhile
        return claimed

    monkeypatch.setattr(world.store, "claim_due_jobs", claim_then_end_the_step)
    assert await world.runner.run_once() == 0
    assert first.result() == 1
    job = await world.job(job_id)
    assert (job.status, job.lease_owner, job.locked_until) == ("completed", None, None)
    assert world.sandbox.counters["poll"] == world.sandbox.counters["file"] == 1


async def test_a_job_due_again_when_its_step_ended_during_the_claim_is_given_back(
    make_world: MakeWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The claim read the row after the step's last write (a current row, rightly claimed),
    but the runner cannot tell which: it gives the lease back instead of holding the job for
    a whole lease, and the next claim takes it afresh."""
    world = await make_world(sandbox=QUEUED_FOR_AN_HOUR)
    job_id = await held_poll(world)
    first = asyncio.create_task(world.runner.run_once())
    await asyncio.wait_for(world.gate.entered.wait(), 5)
    claim = world.store.claim_due_jobs

    async def end_the_step_then_claim(
        *, owner: str, now: float, lease_seconds: float, limit: int
    ) -> list[Job]:
        world.gate.open()
        await asyncio.wait_for(first, 5)  # the step ends: poll again at next_check_at ...
        rescheduled = (await world.job(job_id)).next_check_at
        assert rescheduled is not None
        world.clock.set(rescheduled)  # ... which comes before the claim reads the row
        return await claim(owner=owner, now=rescheduled, lease_seconds=lease_seconds, limit=limit)

    monkeypatch.setattr(world.store, "claim_due_jobs", end_the_step_then_claim)
    assert await world.runner.run_once() == 0
    job = await world.job(job_id)
    assert (job.attempts, job.lease_owner, job.locked_until) == (1, None, None)
    assert job.next_check_at == world.clock()  # due now, not held for a lease
    monkeypatch.undo()
    assert await world.runner.run_once() == 1
    assert world.sandbox.counters["poll"] == 2
