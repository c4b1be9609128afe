"""A chained video's segment caught between "about to submit" and the upstream's answer, on a
hand-moved clock: the video waits in ``submit_unknown`` with its money reserved (issue #13's
rule per segment) until evidence, an operator or the deadline settles it; a segment the upstream
certainly refused is tried again with back-off until the deadline."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Mapping
from typing import Any

import httpx
import pytest

from gateway.domain.budgets import ScopeRef
from gateway.domain.chains import Chain
from gateway.domain.video_request import VideoRequest
from gateway.errors import Conflict, UpstreamError, UpstreamTimeout
from gateway.sandbox import FaultRule
from gateway.services.jobs import JobRunner
from gateway.services.outcomes import OutcomeService
from gateway.store.base import Job, Store
from gateway.upstream.client import UpstreamClient
from gateway.upstream.job import UpstreamJob
from gateway.web.rendering import render_video

from .conftest import MakeWorld
from .support import FAST_MODEL, World

SECOND = 113_000  # the fast model's 720p price of one second
DURATION = 45  # three segments of 15 s
SEGMENT = 15 * SECOND


@pytest.fixture(autouse=True)
def quick_frames(world: World) -> None:
    world.sandbox.set_config(frame_rate=4)  # few frames: quick renders, decodes and joins


class LosingUpstream:
    """The real upstream client, except that the answer to submit number ``lose`` is lost after
    the upstream created the job (a read timeout after sending, as on the wire)."""

    def __init__(self, upstream: UpstreamClient, lose: int) -> None:
        self._upstream = upstream
        self._lose = lose
        self.submits = 0
        self.lost: list[str] = []  # the upstream ids whose answers were lost

    def __getattr__(self, name: str) -> Any:
        return getattr(self._upstream, name)

    async def submit(self, body: Mapping[str, Any], **options: Any) -> UpstreamJob:
        self.submits += 1
        accepted = await self._upstream.submit(body, **options)
        if self.submits == self._lose:
            self.lost.append(accepted.id)
            raise UpstreamTimeout(
                "AIHubMix did not answer POST /v1/videos in time (ReadTimeout);"
                " the job may or may not have been created"
            ) from httpx.ReadTimeout("timed out")
        return accepted


class LockedAfterAccept:
    """The real store, except that the next ``failures`` leased updates after ``arm()`` meet a
    locked database (another writer holding the lock while the upstream accepted)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.failures = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def update_leased_job(self, job_id: str, **options: Any) -> Any:
        if self.failures > 0:
            self.failures -= 1
            raise sqlite3.OperationalError("database is locked")
        return await self._store.update_leased_job(job_id, **options)


class ArmingUpstream(LosingUpstream):
    """Locks the store for its next ``failures`` leased updates right after the upstream
    accepts submit number ``at``."""

    def __init__(
        self, upstream: UpstreamClient, *, at: int, store: LockedAfterAccept, failures: int
    ) -> None:
        super().__init__(upstream, lose=0)
        self._arm_at = at
        self._locked = store
        self._failures = failures
        self.accepted: list[str] = []

    async def submit(self, body: Mapping[str, Any], **options: Any) -> UpstreamJob:
        self.submits += 1
        accepted = await self._upstream.submit(body, **options)
        self.accepted.append(accepted.id)
        if self.submits == self._arm_at:
            self._locked.failures = self._failures
        return accepted


def runner_with(world: World, upstream: Any, store: Any = None) -> JobRunner:
    return JobRunner(
        store or world.store,
        upstream,
        world.blobs,
        world.settings,
        clock=world.clock,
        owner="runner-a",
    )


def chain_of(job: Job) -> Chain:
    assert job.chain_json is not None
    return Chain.from_json(job.chain_json)


async def team_money(world: World) -> tuple[int, int]:
    """The team's (spent, reserved) in total."""
    lines = await world.store.budget_lines(
        (ScopeRef("team", world.principal.team_id),), world.clock()
    )
    total = next(line for line in lines if line.window == "total")
    return total.spent, total.reserved


async def until_unknown(world: World, job: Job, runner: JobRunner) -> Job:
    for _ in range(40):
        if job.status == "submit_unknown":
            return job
        job = await world.tick(job.id, runner)
    raise AssertionError(f"still {job.status}")


async def lost_second_segment(world: World) -> tuple[Job, JobRunner, LosingUpstream]:
    """A 45 s chain whose second segment's submit answer is lost: the video is unknown."""
    upstream = LosingUpstream(world.upstream, lose=2)
    runner = runner_with(world, upstream)
    job = await world.create(duration=DURATION, resolution="720p")
    assert job.cost_micros == DURATION * SECOND
    job = await until_unknown(world, job, runner)
    assert upstream.lost and world.sandbox.counters["create_accepted"] == 2
    return job, runner, upstream


async def test_a_lost_segment_answer_keeps_the_money_until_the_deadline_charges_it(
    world: World,
) -> None:
    job, runner, upstream = await lost_second_segment(world)
    assert [s.status for s in chain_of(job).segments] == ["stored", "unknown", "pending"]
    # Segment 1 is charged; the upstream holds segment 2: its price and the rest stay reserved.
    assert await team_money(world) == (SEGMENT, 2 * SEGMENT)
    assert [j.id for j in await world.store.unknown_outcomes(10)] == [job.id]
    assert (job.error_message or "").startswith("Segment 2 of 3: the upstream's answer was lost")
    shown = render_video(job, "http://gateway")
    assert (shown["status"], shown["error"]) == ("queued", None)
    assert [s["status"] for s in shown["segments"]] == ["completed", "queued", "queued"]
    assert await world.store.audit() == []

    # A look before the deadline changes nothing but when to look next.
    await world.store.update_job(job.id, {"next_check_at": world.clock()})
    job = await world.tick(job.id, runner)
    assert job.status == "submit_unknown" and await team_money(world) == (SEGMENT, 2 * SEGMENT)
    submitted_at = chain_of(job).segments[1].submitted_at
    assert submitted_at is not None
    assert job.next_check_at == submitted_at + world.settings.deadline_seconds

    job = await world.tick(job.id, runner)  # the deadline: segment 2 charged, segment 3 refunded
    assert (job.status, job.error_code, job.money_state) == (
        "failed",
        "submit_outcome_unknown",
        "charged",
    )
    assert job.charged_micros == 2 * SEGMENT
    assert await team_money(world) == (2 * SEGMENT, 0)
    assert (job.error_message or "").startswith("Segment 2 of 3 failed: the outcome of its submit")
    assert [s.status for s in chain_of(job).segments] == ["stored", "failed", "pending"]
    assert world.sandbox.counters["create_accepted"] == 2  # nothing submitted again
    assert upstream.submits == 2
    assert await world.store.audit() == []
    shown = render_video(job, "http://gateway")
    assert (shown["status"], shown["error"]["code"]) == ("failed", "submit_outcome_unknown")


async def test_evidence_resumes_the_chain(world: World) -> None:
    job, runner, upstream = await lost_second_segment(world)
    resolved = await OutcomeService(world.store, clock=world.clock).resolve(
        job.id, decision=None, actor="ana", reason="found in the log", upstream_id=upstream.lost[0]
    )
    assert (resolved.status, resolved.money_state) == ("in_progress", "reserved")
    assert chain_of(resolved).segments[1].upstream_id == upstream.lost[0]
    assert resolved.upstream_id is None  # the video itself has no single upstream job
    assert await world.store.unknown_outcomes(10) == []
    job = await world.settle(job.id, runner)
    assert job.status == "completed", job.error_message
    assert (job.money_state, job.charged_micros) == ("charged", DURATION * SECOND)
    assert world.sandbox.counters["create_accepted"] == 3  # segment 2 was never sent again
    assert await team_money(world) == (DURATION * SECOND, 0)
    assert await world.store.audit() == []


@pytest.mark.parametrize(("decision", "charged"), [("charge", 2 * SEGMENT), ("refund", SEGMENT)])
async def test_an_operator_settles_the_unknown_segment(
    world: World, decision: Any, charged: int
) -> None:
    job, _, _ = await lost_second_segment(world)
    outcomes = OutcomeService(world.store, clock=world.clock)
    resolved = await outcomes.resolve(
        job.id, decision=decision, actor="cli:ana", reason="the dashboard says so"
    )
    assert (resolved.status, resolved.money_state) == ("failed", "charged")
    assert resolved.charged_micros == charged
    assert await team_money(world) == (charged, 0)  # the rest of the price is refunded
    assert (resolved.error_message or "").startswith("Segment 2 of 3 failed")
    assert "cli:ana: the dashboard says so" in (resolved.error_message or "")
    with pytest.raises(Conflict):
        await outcomes.resolve(job.id, decision="charge", actor="b", reason="again")
    assert await world.store.audit() == []
    ledger = await world.store.usage(world.principal.team_id, since=0, by="model")
    assert sum(row.spent for row in ledger) == charged


async def test_a_crash_between_send_and_record_is_unknown_never_failed(world: World) -> None:
    job = await world.create(duration=30)
    for _ in range(20):
        job = await world.tick(job.id)
        if chain_of(job).segments[0].status == "stored":
            break
    # The process died after persisting "submitting" for segment 2, before the answer.
    chain = chain_of(job).with_segment(1, status="submitting", submitted_at=world.clock())
    changed = await world.store.update_job(
        job.id, {"chain_json": chain.to_json(), "next_check_at": world.clock()}
    )
    assert changed is not None
    created = world.sandbox.counters["create_accepted"]
    job = await world.tick(job.id)
    assert job.status == "submit_unknown"
    assert "stopped before it recorded" in (job.error_message or "")
    assert world.sandbox.counters["create_accepted"] == created  # nothing sent again
    assert (job.settled_micros, job.money_state) == (15 * SECOND, "reserved")
    job = await world.settle(job.id)  # at the deadline
    assert (job.status, job.charged_micros) == ("failed", 30 * SECOND)
    assert await world.store.audit() == []


async def test_an_accepted_segment_is_recorded_through_database_errors(world: World) -> None:
    store = LockedAfterAccept(world.store)
    upstream = ArmingUpstream(world.upstream, at=2, store=store, failures=2)
    runner = runner_with(world, upstream, store)
    runner._chains.record_retry_delays = (0.0, 0.0, 0.0)
    job = await world.create(duration=30)
    job = await world.settle(job.id, runner)
    assert job.status == "completed", job.error_message
    assert world.sandbox.counters["create_accepted"] == 2
    assert await world.store.audit() == []


async def test_an_accepted_segment_that_cannot_be_recorded_becomes_unknown(world: World) -> None:
    store = LockedAfterAccept(world.store)
    upstream = ArmingUpstream(world.upstream, at=2, store=store, failures=4)  # every retry
    runner = runner_with(world, upstream, store)
    runner._chains.record_retry_delays = (0.0, 0.0, 0.0)
    job = await world.create(duration=30)
    for _ in range(40):
        job = await world.job(job.id)
        if upstream.submits == 2:
            break
        job = await world.tick(job.id, runner)
    assert chain_of(job).segments[1].status == "submitting"  # the id could not be written
    world.clock.advance(world.settings.lease_seconds + 1)  # the stuck lease runs out
    job = await world.tick(job.id, runner)
    assert job.status == "submit_unknown" and job.money_state == "reserved"
    assert world.sandbox.counters["create_accepted"] == 2
    # The id went to the log; an operator attaches it and the chain completes.
    await OutcomeService(world.store, clock=world.clock).resolve(
        job.id, decision=None, actor="ana", reason="log line", upstream_id=upstream.accepted[1]
    )
    job = await world.settle(job.id, runner)
    assert (job.status, job.charged_micros) == ("completed", 30 * SECOND)
    assert world.sandbox.counters["create_accepted"] == 2
    assert await world.store.audit() == []


@pytest.mark.parametrize(
    "fault",
    [
        FaultRule(op="create", kind="status", status=503, after=1, times=2),
        FaultRule(op="create", kind="status", status=500, after=1, times=1),
        FaultRule(op="create", kind="status", status=429, retry_after=40, after=1, times=1),
    ],
)
async def test_a_refused_segment_submit_is_retried_with_back_off(
    world: World, fault: FaultRule
) -> None:
    world.sandbox.add_fault(fault)
    job = await world.create(duration=30)
    refused_at = None
    for _ in range(40):
        job = await world.tick(job.id)
        segment = chain_of(job).segments[1]
        if segment.refusals and refused_at is None:
            refused_at = world.clock()
            assert (job.status, segment.status) == ("in_progress", "pending")
            assert job.next_check_at is not None and job.next_check_at > refused_at
            if fault.retry_after:
                assert job.next_check_at >= refused_at + fault.retry_after
        if job.status in ("completed", "failed"):
            break
    assert job.status == "completed", job.error_message
    assert refused_at is not None
    assert chain_of(job).segments[1].refusals == fault.times
    assert world.sandbox.counters["create_accepted"] == 2
    assert job.charged_micros == 30 * SECOND
    assert await world.store.audit() == []


async def test_a_segment_refused_until_the_deadline_fails_the_video(
    make_world: MakeWorld,
) -> None:
    world = await make_world(deadline_seconds=300.0)
    world.sandbox.set_config(frame_rate=4)
    world.sandbox.add_fault(FaultRule(op="create", kind="status", status=503, after=1, times=0))
    job = await world.create(duration=30)
    job = await world.settle(job.id, steps=100)
    assert (job.status, job.error_code) == ("failed", "upstream_error")
    assert (job.error_message or "").startswith("Segment 2 of 2 failed: the upstream refused it")
    segment = chain_of(job).segments[1]
    assert segment.first_tried_at is not None and segment.refusals > 3
    assert world.clock() <= segment.first_tried_at + world.settings.deadline_seconds
    assert job.charged_micros == 15 * SECOND  # segment 1 only; the rest refunded
    assert await team_money(world) == (15 * SECOND, 0)
    assert await world.store.audit() == []


async def test_a_rejected_segment_still_fails_at_once(world: World) -> None:
    world.sandbox.add_fault(FaultRule(op="create", kind="reject", after=1))
    job = await world.create(duration=30)
    job = await world.settle(job.id)
    assert (job.status, job.error_code) == ("failed", "upstream_rejected")
    assert chain_of(job).segments[1].refusals == 0
    assert job.charged_micros == 15 * SECOND


async def test_an_idempotent_replay_of_a_waiting_chain_answers_the_video(world: World) -> None:
    upstream = LosingUpstream(world.upstream, lose=2)
    runner = runner_with(world, upstream)
    request: dict[str, Any] = {"model": FAST_MODEL, "prompt": "p"}
    first = await world.creator.create(
        world.principal, VideoRequest(**request, duration=30), idempotency_key="k-1"
    )
    job = await until_unknown(world, first.job, runner)
    again = await world.creator.create(
        world.principal, VideoRequest(**request, duration=30), idempotency_key="k-1"
    )
    assert again.replayed and again.job.id == job.id


class UnreachableOnce(LosingUpstream):
    """Submit number ``at`` never reaches the upstream: the connection is refused."""

    def __init__(self, upstream: UpstreamClient, at: int) -> None:
        super().__init__(upstream, lose=0)
        self._at = at

    async def submit(self, body: Mapping[str, Any], **options: Any) -> UpstreamJob:
        self.submits += 1
        if self.submits == self._at:
            raise UpstreamError(
                "could not reach AIHubMix for POST /v1/videos (ConnectError)",
                code="upstream_unreachable",
            ) from httpx.ConnectError("connection refused")
        return await self._upstream.submit(body, **options)


async def test_a_segment_submit_that_could_not_connect_is_retried(world: World) -> None:
    upstream = UnreachableOnce(world.upstream, at=2)
    runner = runner_with(world, upstream)
    job = await world.create(duration=30)
    job = await world.settle(job.id, runner)
    assert job.status == "completed", job.error_message
    assert chain_of(job).segments[1].refusals == 1
    assert upstream.submits == 3 and world.sandbox.counters["create_accepted"] == 2
    assert await world.store.audit() == []


async def test_a_slow_segment_answer_after_another_runner_found_it_unknown_is_evidence(
    world: World,
) -> None:
    """Runner A's submit of segment 2 hangs past its lease; runner B takes the job over and
    finds the segment's outcome unknown; A's answer then arrives and resumes the chain."""
    world.sandbox.add_fault(FaultRule(op="create", kind="latency", delay=1.0, after=1))
    world.gate.close()  # the second submit (segment 2) hangs until the gate opens
    job = await world.create(duration=30)

    async def until_segment_two_hangs() -> None:
        while not world.gate.entered.is_set():
            await world.tick(job.id)

    slow = asyncio.create_task(until_segment_two_hangs())
    await asyncio.wait_for(world.gate.entered.wait(), 10)
    world.clock.advance(world.settings.lease_seconds + 1)
    job = await world.tick(job.id, world.runner_for("runner-b"))
    assert job.status == "submit_unknown" and job.money_state == "reserved"
    world.gate.open()
    await slow
    job = await world.job(job.id)
    assert job.status == "in_progress" and chain_of(job).segments[1].upstream_id is not None
    job = await world.settle(job.id)
    assert (job.status, job.charged_micros) == ("completed", 30 * SECOND)
    assert world.sandbox.counters["create_accepted"] == 2
    assert await world.store.audit() == []
