"""The contract of money at the edges, on every adapter (issue #13): an unknown outcome keeps its
reservation until resolved exactly once (charge or refund, the ledger naming who and why), an
upstream id that turns up is evidence, Idempotency-Keys bind once and expire, and a revoked key
is never admitted."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

from gateway.domain.budgets import scopes_for
from gateway.store.base import ApiKey, IdempotencyKeyTaken, IdempotencyRecord, KeyRevoked, Store

from .test_money_contract import PRICE, T, admit, claimed, plan

DAY = 86400.0


async def unknown_job(store: Store, key: ApiKey) -> str:
    job = (await admit(store, key)).job
    marked = await store.update_job_if_status(
        job.id, statuses=("submitting",), changes={"status": "submit_unknown"}
    )
    assert marked is not None and marked.money_state == "reserved"
    return job.id


@pytest.mark.parametrize(("charge", "spent"), [(True, PRICE), (False, 0)])
async def test_an_unknown_outcome_is_resolved_once_with_who_and_why(
    store: Store, key: ApiKey, charge: bool, spent: int
) -> None:
    job_id = await unknown_job(store, key)
    assert [job.id for job in await store.unknown_outcomes(10)] == [job_id]
    lines = await store.budget_lines(scopes_for(key.id, key.team_id), T)
    assert {(ln.spent, ln.reserved) for ln in lines} == {(0, PRICE)}
    done = await store.resolve_unknown(job_id, charge=charge, actor="ana", reason="seen", now=T + 5)
    assert done is not None
    assert (done.status, done.error_code) == ("failed", "submit_outcome_unknown")
    assert done.money_state == ("charged" if charge else "refunded")
    assert (
        await store.resolve_unknown(job_id, charge=True, actor="b", reason="x", now=T + 6) is None
    )
    lines = await store.budget_lines(scopes_for(key.id, key.team_id), T)
    assert {(ln.spent, ln.reserved) for ln in lines} == {(spent, 0)}
    assert await store.audit() == []


async def test_an_upstream_id_that_turns_up_is_evidence(store: Store, key: ApiKey) -> None:
    job_id = await unknown_job(store, key)
    found = await store.attach_upstream_id(job_id, "cgt-found", T + 3)
    assert found is not None
    assert (found.status, found.upstream_id, found.next_check_at) == ("queued", "cgt-found", T + 3)
    assert found.money_state == "reserved"
    assert await store.attach_upstream_id(job_id, "cgt-other", T + 4) is None
    assert await store.resolve_unknown(job_id, charge=False, actor="a", reason="r", now=T) is None


async def test_an_idempotency_key_binds_once_and_expires(store: Store, key: ApiKey) -> None:
    first = plan(key)
    record = IdempotencyRecord(key.id, "order-1", "f" * 64, first.job.id, T, T + DAY)
    await store.admit_job(dataclasses.replace(first, idempotency=record))
    second = plan(key)
    again = dataclasses.replace(record, job_id=second.job.id)
    with pytest.raises(IdempotencyKeyTaken) as taken:
        await store.admit_job(dataclasses.replace(second, idempotency=again))
    assert taken.value.record.job_id == first.job.id
    assert await store.get_job(second.job.id) is None  # nothing was created, nothing reserved
    lines = await store.budget_lines(scopes_for(key.id, key.team_id), T)
    assert {ln.reserved for ln in lines} == {PRICE}
    assert (await store.idempotency_record(key.id, "order-1", T + 1)) == record
    assert await store.idempotency_record(key.id, "order-1", T + DAY) is None
    # Once expired, the key binds a new request.
    later = plan(key, now=T + DAY + 1)
    renewed = IdempotencyRecord(
        key.id, "order-1", "e" * 64, later.job.id, later.now, later.now + DAY
    )
    await store.admit_job(dataclasses.replace(later, idempotency=renewed))
    assert (await store.idempotency_record(key.id, "order-1", later.now)) == renewed
    assert await store.expire_idempotency_keys(later.now + DAY, 100) == 1
    assert await store.idempotency_record(key.id, "order-1", later.now) is None


async def test_a_revoked_key_is_never_admitted(store: Store, key: ApiKey) -> None:
    assert await store.revoke_key(key.id, int(T))
    with pytest.raises(KeyRevoked):
        await store.admit_job(plan(key))
    lines = await store.budget_lines(scopes_for(key.id, key.team_id), T)
    assert {(ln.spent, ln.reserved) for ln in lines} == {(0, 0)}


async def test_concurrent_admissions_with_one_key_create_one_job(store: Store, key: ApiKey) -> None:
    """Twenty at once (PostgreSQL: twenty pooled connections): the primary key lets one in."""
    plans = [plan(key) for _ in range(20)]

    async def admit_one(candidate: Any) -> str:
        record = IdempotencyRecord(key.id, "once", "f" * 64, candidate.job.id, T, T + DAY)
        try:
            await store.admit_job(dataclasses.replace(candidate, idempotency=record))
        except IdempotencyKeyTaken as taken:
            return taken.record.job_id
        return candidate.job.id

    bound = await asyncio.gather(*(admit_one(candidate) for candidate in plans))
    assert len(set(bound)) == 1
    lines = await store.budget_lines(scopes_for(key.id, key.team_id), T)
    assert {ln.reserved for ln in lines} == {PRICE}
    assert await store.audit() == []


@pytest.mark.parametrize(("charge", "parts"), [(True, 2), (False, 1)])
async def test_a_chained_videos_unknown_segment_is_settled_alone(
    store: Store, key: ApiKey, charge: bool, parts: int
) -> None:
    """A chain of three segments: the first charged as stored, the second's outcome unknown.
    Settling charges (or refunds) that one segment, refunds the rest and records the chain."""
    job = (await admit(store, key)).job
    await claimed(store, job)
    part = PRICE // 3
    waiting = await store.charge_part(
        job.id,
        owner="runner",
        amount=part,
        changes={"status": "submit_unknown", "lease_owner": None, "chain_json": '{"a": 1}'},
        now=T + 1,
    )
    assert waiting is not None and waiting.settled_micros == part
    assert [j.id for j in await store.unknown_outcomes(10)] == [job.id]
    done = await store.resolve_unknown(
        job.id,
        charge=charge,
        actor="ana",
        reason="seen",
        now=T + 5,
        amount=2 * part,
        chain_json='{"b": 2}',
        message="Segment 2 of 3 failed: settled",
    )
    assert done is not None
    assert (done.status, done.money_state, done.charged_micros) == (
        "failed",
        "charged",
        parts * part,
    )
    assert (done.chain_json, done.error_message) == ('{"b": 2}', "Segment 2 of 3 failed: settled")
    lines = await store.budget_lines(scopes_for(key.id, key.team_id), T)
    assert {(ln.spent, ln.reserved) for ln in lines} == {(parts * part, 0)}
    assert await store.audit() == []
    again = await store.resolve_unknown(job.id, charge=True, actor="b", reason="x", now=T + 6)
    assert again is None
