"""The contract of concurrency and rate limits, on every adapter: an owner's own limits over the
configured defaults, in-flight jobs counted in the database (hits and joins never count), the
request rate kept in the database, and both holding for concurrent admissions through two
separately opened stores (two processes, two replicas)."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from gateway.domain.traffic import TrafficDefaults, TrafficLimits
from gateway.errors import (
    BudgetExceeded,
    ConcurrencyLimitExceeded,
    InvalidRequest,
    RequestRateExceeded,
    TrafficLimitExceeded,
)
from gateway.store.base import ApiKey, BudgetLimit, Store, Team, TrafficLimit

from .conftest import NOW, StoreTarget
from .test_money_contract import T, admit, plan, run_to_completion

NONE = TrafficDefaults()


def limits(team: tuple[int, int] = (0, 0), key: tuple[int, int] = (0, 0)) -> TrafficDefaults:
    return TrafficDefaults(team=TrafficLimits(*team), key=TrafficLimits(*key))


async def test_own_limits_are_set_merged_listed_and_cleared(store: Store, team: Team) -> None:
    stored = await store.set_traffic_limit(TrafficLimit("team", team.id, 3, None), NOW)
    assert stored == TrafficLimit("team", team.id, 3, None)
    stored = await store.set_traffic_limit(TrafficLimit("team", team.id, None, 20), NOW)
    assert stored == TrafficLimit("team", team.id, 3, 20)  # a field left None is kept
    await store.set_traffic_limit(TrafficLimit("key", "key_x", 0, 5), NOW)
    assert await store.list_traffic_limits() == [
        TrafficLimit("team", team.id, 3, 20),
        TrafficLimit("key", "key_x", 0, 5),
    ]
    assert await store.list_traffic_limits("key") == [TrafficLimit("key", "key_x", 0, 5)]
    assert await store.list_traffic_limits("team", "other") == []
    assert await store.clear_traffic_limit("team", team.id)
    assert not await store.clear_traffic_limit("team", team.id)
    assert await store.list_traffic_limits() == [TrafficLimit("key", "key_x", 0, 5)]


async def test_in_flight_jobs_are_capped_until_one_finishes(store: Store, key: ApiKey) -> None:
    traffic = limits(team=(2, 0))
    first = await admit(store, key, traffic=traffic)
    await admit(store, key, traffic=traffic, now=T + 1)
    with pytest.raises(ConcurrencyLimitExceeded) as refused:
        await admit(store, key, traffic=traffic, now=T + 2)
    assert (refused.value.scope, refused.value.code, refused.value.status) == (
        "team",
        "concurrency_limit_exceeded",
        429,
    )
    assert refused.value.retry_after is not None and refused.value.retry_after > 0
    assert await store.in_flight_jobs("team", key.team_id) == 2
    await run_to_completion(store, first.job)
    assert await store.in_flight_jobs("team", key.team_id) == 1
    await admit(store, key, traffic=traffic, now=T + 3)
    assert await store.audit() == []  # the refusal reserved nothing


async def test_own_limit_overrides_the_default(store: Store, key: ApiKey) -> None:
    traffic = limits(key=(1, 0))
    await store.set_traffic_limit(TrafficLimit("key", key.id, 2, None), NOW)
    await admit(store, key, traffic=traffic)
    await admit(store, key, traffic=traffic, now=T + 1)
    with pytest.raises(ConcurrencyLimitExceeded) as refused:
        await admit(store, key, traffic=traffic, now=T + 2)
    assert refused.value.scope == "key"
    await store.set_traffic_limit(TrafficLimit("key", key.id, 0, None), NOW)  # 0: no limit
    await admit(store, key, traffic=traffic, now=T + 3)
    await admit(store, key, traffic=NONE, now=T + 4)  # a plan without limits checks none


async def test_cache_hits_and_joins_do_not_count(store: Store, key: ApiKey) -> None:
    traffic = limits(team=(1, 0))
    leader = await admit(store, key, traffic=traffic, cache_key="k1")
    joined = await admit(store, key, traffic=traffic, cache_key="k1", now=T + 1)
    assert joined.outcome == "coalesced"  # joins the running job although the team is full
    with pytest.raises(ConcurrencyLimitExceeded):
        await admit(store, key, traffic=traffic, cache_key="k2", now=T + 2)
    await run_to_completion(store, leader.job)
    await admit(store, key, traffic=traffic, cache_key="k3", now=T + 3)  # full again
    hit = await admit(store, key, traffic=traffic, cache_key="k1", now=T + 4)
    assert hit.outcome == "hit"
    assert await store.in_flight_jobs("team", key.team_id) == 1


async def test_request_rate_allows_a_burst_then_one_per_interval(store: Store, key: ApiKey) -> None:
    traffic = limits(key=(0, 3))  # 3 at once, then one every 20 s
    for index in range(3):
        await admit(store, key, traffic=traffic, now=T + index * 0.1)
    with pytest.raises(RequestRateExceeded) as refused:
        await admit(store, key, traffic=traffic, now=T + 1)
    assert (refused.value.scope, refused.value.code) == ("key", "rate_limit_exceeded")
    assert refused.value.retry_after == pytest.approx(19.0, abs=0.01)
    await admit(store, key, traffic=traffic, now=T + 20.0)
    with pytest.raises(RequestRateExceeded):
        await admit(store, key, traffic=traffic, now=T + 21)


async def test_a_refused_create_takes_nothing_from_the_rate(store: Store, key: ApiKey) -> None:
    traffic = limits(team=(0, 2))
    await store.set_limit(BudgetLimit("key", key.id, "total", 1), NOW)
    for _ in range(3):
        with pytest.raises(BudgetExceeded):
            await admit(store, key, traffic=traffic)
    await store.clear_limit("key", key.id, "total")
    await admit(store, key, traffic=traffic)
    await admit(store, key, traffic=traffic)


@pytest.mark.parametrize(
    ("traffic", "admitted"),
    [(limits(team=(3, 0)), 3), (limits(key=(0, 4)), 4)],
    ids=["in-flight", "rate"],
)
async def test_limits_hold_for_concurrent_admissions_through_two_stores(
    store: Store, key: ApiKey, target: StoreTarget, traffic: TrafficDefaults, admitted: int
) -> None:
    other = await target.open()
    try:
        attempts = [
            (store if index % 2 else other).admit_job(
                dataclasses.replace(plan(key), traffic=traffic)
            )
            for index in range(12)
        ]
        results = await asyncio.gather(*attempts, return_exceptions=True)
    finally:
        await other.close()
    refused = [r for r in results if isinstance(r, BaseException)]
    assert all(isinstance(r, TrafficLimitExceeded) for r in refused), refused
    assert len(results) - len(refused) == admitted
    assert await store.in_flight_jobs("key", key.id) == admitted
    assert await store.audit() == []


@pytest.mark.parametrize("name", ["", "has space", "-dash-first", "Ärger", "x" * 65, "a/b"])
async def test_the_database_refuses_team_names_outside_the_pattern(store: Store, name: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        await store.create_team(name, NOW)
    assert refused.value.param == "name"
    assert await store.list_teams() == []
    assert (await store.create_team("Team_1.b-c", NOW)).name == "Team_1.b-c"
