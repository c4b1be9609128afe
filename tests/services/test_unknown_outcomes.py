"""Unknown outcomes and idempotency keys in the services (issue #13), on one hand-moved clock:
an accepted job is never failed because it could not be written down, a slow answer is
evidence, budget refusals say when to retry, and Idempotency-Keys expire through the sweep."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import pytest

from gateway.domain.budgets import ScopeRef, window_end
from gateway.domain.pricing import default_price_table
from gateway.domain.video_request import VideoRequest
from gateway.errors import BudgetExceeded, IdempotencyKeyInUse, OutcomeUnknown
from gateway.sandbox import FaultRule
from gateway.services.creation import CreateService
from gateway.settings import CacheSettings
from gateway.store.base import BudgetLimit, Store
from tests.services.support import FAST_MODEL, T0, World

REQUEST = VideoRequest(model=FAST_MODEL, prompt="a cat on a skateboard")


class LockedRecords:
    """The real store, except that recording an accepted job meets a locked database the first
    ``failures`` times (what SQLite says when another writer holds the lock too long)."""

    def __init__(self, store: Store, failures: int) -> None:
        self._store = store
        self.failures = failures
        self.attempts = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def update_job_if_status(self, job_id: str, **options: Any) -> Any:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise sqlite3.OperationalError("database is locked")
        return await self._store.update_job_if_status(job_id, **options)


def creator(world: World, store: Any) -> CreateService:
    return CreateService(
        store,
        world.upstream,
        default_price_table(),
        world.settings,
        CacheSettings(),
        clock=world.clock,
        record_retry_delays=(0.0, 0.0, 0.0),
    )


async def money(world: World) -> set[tuple[int, int]]:
    """The team's (spent, reserved) in total."""
    lines = await world.store.budget_lines(
        (ScopeRef("team", world.principal.team_id),), world.clock()
    )
    return {(line.spent, line.reserved) for line in lines if line.window == "total"}


async def test_recording_retries_through_transient_database_errors(world: World) -> None:
    store = LockedRecords(world.store, failures=2)
    admission = await creator(world, store).create(world.principal, REQUEST)
    assert store.attempts == 3
    assert admission.job.status == "queued" and admission.job.upstream_id is not None
    job = await world.settle(admission.job.id)
    assert (job.status, job.money_state) == ("completed", "charged")
    assert await world.store.audit() == []


async def test_an_accepted_job_that_cannot_be_recorded_is_unknown_never_failed(
    world: World,
) -> None:
    store = LockedRecords(world.store, failures=100)
    with pytest.raises(OutcomeUnknown) as info:
        await creator(world, store).create(world.principal, REQUEST)
    assert info.value.should_retry is False
    [job], _ = await world.store.list_jobs(
        world.principal.team_id, after=None, limit=5, order="asc"
    )
    assert info.value.message.startswith(f"The outcome of creating video {job.id} is unknown")
    assert world.sandbox.counters["create_accepted"] == 1  # the upstream holds a paid job
    price = job.cost_micros
    assert (job.status, job.money_state) == ("submitting", "reserved")
    assert await money(world) == {(0, price)}
    job = await world.tick(job.id)  # after the submit grace: unknown, still reserved
    assert (job.status, job.money_state) == ("submit_unknown", "reserved")
    assert await money(world) == {(0, price)}
    job = await world.tick(job.id)  # at the deadline: charged
    assert (job.status, job.error_code, job.money_state) == (
        "failed",
        "submit_outcome_unknown",
        "charged",
    )
    assert await money(world) == {(price, 0)}
    assert await world.store.audit() == []


async def test_a_slow_answer_after_the_sweep_is_evidence(world: World) -> None:
    """The runner gave up waiting (unknown); the upstream's answer then arrives: the job runs on
    and is charged for its video, not left unknown."""
    world.gate.close()
    world.sandbox.add_fault(FaultRule(op="create", kind="latency", delay=1.0))
    create = asyncio.create_task(world.create())
    await asyncio.wait_for(world.gate.entered.wait(), 5)
    [job], _ = await world.store.list_jobs(
        world.principal.team_id, after=None, limit=5, order="asc"
    )
    job = await world.tick(job.id)
    assert job.status == "submit_unknown"
    world.gate.open()
    created = await create
    assert created.status == "queued" and created.upstream_id is not None
    job = await world.settle(job.id)
    assert (job.status, job.money_state) == ("completed", "charged")
    assert await world.store.audit() == []


async def test_a_daily_budget_refusal_says_when_the_window_resets(world: World) -> None:
    await world.store.set_limit(
        BudgetLimit("team", world.principal.team_id, "day", 600_000), int(T0)
    )
    await world.create()
    with pytest.raises(BudgetExceeded) as info:
        await world.create()
    assert info.value.should_retry is False
    reset = window_end("day", T0)
    assert reset is not None
    assert info.value.retry_after == pytest.approx(reset - T0)


async def test_idempotency_keys_replay_then_expire_through_the_sweep(world: World) -> None:
    first = await world.creator.create(world.principal, REQUEST, idempotency_key="order-9")
    world.clock.advance(3600)
    again = await world.creator.create(world.principal, REQUEST, idempotency_key="order-9")
    assert (again.job.id, again.replayed) == (first.job.id, True)
    world.clock.set(T0 + 86400 + 1)
    report = await world.runner.maintenance.run()
    assert report.idempotency_keys_expired == 1
    later = await world.creator.create(world.principal, REQUEST, idempotency_key="order-9")
    assert later.job.id != first.job.id and not later.replayed
    assert world.sandbox.counters["create_accepted"] == 2


async def test_a_retry_while_the_first_is_still_submitting_is_told_to_come_back(
    world: World,
) -> None:
    world.gate.close()
    world.sandbox.add_fault(FaultRule(op="create", kind="latency", delay=1.0))
    first = asyncio.create_task(
        world.creator.create(world.principal, REQUEST, idempotency_key="slow-1")
    )
    await asyncio.wait_for(world.gate.entered.wait(), 5)
    impatient = CreateService(
        world.store,
        world.upstream,
        default_price_table(),
        world.settings,
        CacheSettings(),
        clock=world.clock,
        idempotency_wait_seconds=0.05,
    )
    with pytest.raises(IdempotencyKeyInUse) as info:
        await impatient.create(world.principal, REQUEST, idempotency_key="slow-1")
    assert (info.value.status, info.value.retry_after, info.value.should_retry) == (409, 1.0, False)
    world.gate.open()
    created = (await first).job
    again = await impatient.create(world.principal, REQUEST, idempotency_key="slow-1")
    assert (again.job.id, again.replayed) == (created.id, True)
    assert world.sandbox.counters["create_accepted"] == 1
