"""The runner's poll limit sizes itself: it grows while due jobs wait for a slot, halves on the
upstream's 429, and stays put when pinned (``poll_concurrency == poll_concurrency_max``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from gateway.domain.schedule import GROW_INTERVAL_SECONDS, grown_poll_limit, shrunk_poll_limit
from gateway.sandbox import FaultRule
from gateway.services.pacing import PollLimit
from gateway.store.base import Job

from .conftest import MakeWorld
from .support import SANDBOX, T0, FakeClock, eventually

INSTANT = SANDBOX.with_changes({"queue_seconds": 0.0, "run_seconds": 0.0})


def test_grows_only_when_a_full_claim_found_late_jobs():
    late = {"lateness": 3.0, "claim_was_full": True, "since_grown": 10.0}
    assert grown_poll_limit(16, ceiling=256, **late) == 32
    assert grown_poll_limit(200, ceiling=256, **late) == 256
    assert grown_poll_limit(16, ceiling=256, **{**late, "lateness": 0.1}) == 16
    assert grown_poll_limit(16, ceiling=256, **{**late, "claim_was_full": False}) == 16
    assert grown_poll_limit(16, ceiling=256, **{**late, "since_grown": 0.5}) == 16
    assert grown_poll_limit(16, ceiling=16, **late) == 16  # pinned


def test_halves_on_rate_limits_down_to_the_floor():
    assert shrunk_poll_limit(64, floor=16) == 32
    assert shrunk_poll_limit(20, floor=16) == 16


async def until(condition: Callable[[], bool]) -> None:
    async def check() -> bool:
        return condition()

    await eventually(check)


def due_job(next_check_at: float) -> Job:
    return Job(
        id="video_x",
        team_id="team_x",
        key_id="key_x",
        model="m",
        request={},
        status="in_progress",
        created_at=0,
        updated_at=0,
        next_check_at=next_check_at,
    )


async def test_limit_admits_more_polls_once_grown_and_fewer_after_429():
    clock = FakeClock(T0)
    limit = PollLimit(1, 4, clock)
    inside: list[int] = []
    release = asyncio.Event()

    async def poll(n: int) -> None:
        async with limit:
            inside.append(n)
            await release.wait()

    tasks = [asyncio.create_task(poll(n)) for n in range(3)]
    await until(lambda: len(inside) == 1)
    limit.after_claim([due_job(T0 - 5)], free=1)  # a full claim, 5 s late: 1 -> 2
    await until(lambda: len(inside) == 2)
    limit.after_claim([due_job(T0 - 5)], free=1)  # too soon to grow again
    clock.advance(GROW_INTERVAL_SECONDS)
    limit.after_claim([due_job(clock() - 0.1)], free=1)  # on time: stays
    assert limit.limit == 2
    limit.rate_limited()
    assert limit.limit == 1
    release.set()
    await asyncio.gather(*tasks)
    assert sorted(inside) == [0, 1, 2]


async def test_runner_polls_more_at_once_while_due_jobs_wait(make_world: MakeWorld) -> None:
    world = await make_world(
        poll_concurrency=2, poll_concurrency_max=8, idle_seconds=0.01, sandbox=INSTANT
    )
    for _ in range(12):
        await world.create()
    world.gate.close()  # every poll is held inside the upstream
    world.sandbox.add_fault(FaultRule(op="poll", kind="latency", delay=60, times=100))
    world.clock.set(T0 + 10)  # all due since T0 + 2: 8 s late
    assert world.runner.capacity == 2 + world.settings.download_concurrency
    stop = asyncio.Event()
    loop = asyncio.create_task(world.runner.run(stop))
    # The first claim filled every slot with late jobs: the limit doubled (once: the fake
    # clock stands still, and growth waits GROW_INTERVAL_SECONDS), so four polls are held.
    await until(lambda: len(world.gate.calls) == 4)
    assert world.runner.capacity == 4 + world.settings.download_concurrency
    stop.set()
    world.gate.open()
    await asyncio.wait_for(loop, 30)
