"""The contract of admission, money and dedupe, on every adapter (written against the protocol).

Admission decides hit / join / new job and reserves in one step; completion charges and failure
refunds in one step; the ledger always balances the counters (``audit() == []``).
"""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import UTC, datetime
from typing import Any

import pytest

from gateway.domain.budgets import ORG_ID, ScopeRef, scopes_for
from gateway.domain.video_request import VideoRequest
from gateway.errors import BudgetExceeded
from gateway.ids import new_id
from gateway.store.base import (
    Admission,
    AdmissionPlan,
    ApiKey,
    Asset,
    BudgetLimit,
    Job,
    Store,
    Team,
)

from .conftest import NOW, StoreTarget

PRICE = 600_000
LEASE = 60.0
T = float(NOW) + 0.25  # 2025-10-09 08:53:20.25 UTC
VIDEO = Asset(hashlib.sha256(b"video").hexdigest(), 1000, "video/mp4")
FRAME = Asset(hashlib.sha256(b"frame").hexdigest(), 10, "image/png")


def day_of(now: float) -> str:
    return datetime.fromtimestamp(now, tz=UTC).strftime("%Y-%m-%d")


def plan(
    key: ApiKey,
    *,
    now: float = T,
    cost: int = PRICE,
    cache_key: str | None = None,
    lookup: bool | None = None,
    **options: Any,
) -> AdmissionPlan:
    job = Job(
        id=new_id("video", now=now),
        team_id=key.team_id,
        key_id=key.id,
        model="seedance-fast",
        request=VideoRequest(model="seedance-fast", prompt="a cat", seed=7),
        status="submitting",
        created_at=int(now),
        updated_at=int(now),
        price_micros=PRICE,
        cost_micros=cost,
        next_check_at=now + 30,
    )
    return AdmissionPlan(
        job=job,
        scopes=scopes_for(key.id, key.team_id),
        now=now,
        cache_key=cache_key,
        lookup=cache_key is not None if lookup is None else lookup,
        register=cache_key is not None,
        **options,
    )


async def admit(store: Store, key: ApiKey, **options: Any) -> Admission:
    return await store.admit_job(plan(key, **options))


async def run_to_completion(
    store: Store,
    job: Job,
    *,
    now: float = T + 100,
    video: Asset | None = VIDEO,
    last_frame: Asset | None = FRAME,
    charge: int | None = None,
    **changes: Any,
) -> Job:
    """Claim the job (as a runner would) and complete it with these assets."""
    await store.update_job(job.id, {"status": "downloading", "next_check_at": now - 1})
    claimed = await store.claim_due_jobs(owner="runner", now=now, lease_seconds=LEASE, limit=100)
    assert job.id in {c.id for c in claimed}
    done = await store.complete_job(
        job.id,
        owner="runner",
        changes={
            "status": "completed",
            "progress": 100,
            "completed_at": int(now),
            "updated_at": int(now),
            "lease_owner": None,
            "locked_until": None,
            "next_check_at": None,
            "delivered_seconds": 5,
            **changes,
        },
        video=video,
        last_frame=last_frame,
        charge=charge,
    )
    assert done is not None
    return done


def totals(lines: list[Any], scope: str) -> tuple[int, int]:
    [line] = [ln for ln in lines if ln.scope.scope == scope and ln.window == "total"]
    return line.spent, line.reserved


# -- reservations and budgets ---------------------------------------------------------------


async def test_admission_without_cache_reserves_in_every_scope(store: Store, key: ApiKey) -> None:
    admission = await admit(store, key)
    assert admission.outcome == "bypass"
    assert admission.submit_upstream
    job = admission.job
    assert (job.money_state, job.reserved_at, job.cache_key, job.cache_result) == (
        "reserved",
        T,
        None,
        "bypass",
    )
    assert await store.get_job(job.id) == job
    lines = await store.budget_lines(scopes_for(key.id, key.team_id), T)
    assert [(ln.scope.scope, ln.window, ln.limit, ln.spent, ln.reserved) for ln in lines] == [
        (scope, window, None, 0, PRICE)
        for scope in ("key", "team", "org")
        for window in ("total", "day", "month")
    ]
    assert await store.audit() == []


async def test_a_free_admission_reserves_nothing(store: Store, key: ApiKey) -> None:
    job = (await admit(store, key, cost=0)).job
    assert (job.money_state, job.reserved_at) == ("none", None)
    lines = await store.budget_lines(scopes_for(key.id, key.team_id), T)
    assert all((ln.spent, ln.reserved) == (0, 0) for ln in lines)


async def test_limits_set_list_and_clear(store: Store, key: ApiKey, team: Team) -> None:
    await store.set_limit(BudgetLimit("team", team.id, "day", 5_000_000), NOW)
    await store.set_limit(BudgetLimit("org", ORG_ID, "total", 9_000_000), NOW)
    await store.set_limit(BudgetLimit("key", key.id, "month", 1_000_000), NOW)
    await store.set_limit(BudgetLimit("team", team.id, "day", 4_000_000), NOW + 1)  # replaces
    assert await store.list_limits() == [
        BudgetLimit("key", key.id, "month", 1_000_000),
        BudgetLimit("org", ORG_ID, "total", 9_000_000),
        BudgetLimit("team", team.id, "day", 4_000_000),
    ]
    assert await store.list_limits("team") == [BudgetLimit("team", team.id, "day", 4_000_000)]
    assert await store.list_limits(scope_id=key.id) == [
        BudgetLimit("key", key.id, "month", 1_000_000)
    ]
    assert await store.list_limits("team", "team_missing") == []
    with pytest.raises(ValueError, match="negative"):
        await store.set_limit(BudgetLimit("team", team.id, "day", -1), NOW)
    assert await store.clear_limit("team", team.id, "day") is True
    assert await store.clear_limit("team", team.id, "day") is False
    assert len(await store.list_limits()) == 2


async def test_a_reservation_that_does_not_fit_raises_and_changes_nothing(
    store: Store, key: ApiKey, team: Team
) -> None:
    await store.set_limit(BudgetLimit("team", team.id, "day", 1_000_000), NOW)
    await admit(store, key)
    refused = plan(key)
    with pytest.raises(BudgetExceeded) as caught:
        await store.admit_job(refused)
    assert caught.value.message == (
        "Budget exceeded for team 'acme': $0.40 of its $1.00 daily limit remains today (UTC),"
        " and this request costs $0.60."
    )
    assert (caught.value.scope, caught.value.window) == ("team", "day")
    assert await store.get_job(refused.job.id) is None
    assert totals(await store.budget_lines(scopes_for(key.id, key.team_id), T), "org") == (
        0,
        PRICE,
    )
    assert await store.audit() == []
    # Exactly what fits is admitted.
    assert (await admit(store, key, cost=400_000)).job.money_state == "reserved"


async def test_the_first_violation_names_the_key_by_name_or_prefix(
    store: Store, key: ApiKey, team: Team
) -> None:
    unnamed = await store.create_key(
        team_id=team.id, name="", key_hash="hash-unnamed", prefix="sk-gw-anon", now=NOW
    )
    for scope_id in (key.id, unnamed.id):
        await store.set_limit(BudgetLimit("key", scope_id, "total", 100), NOW)
    await store.set_limit(BudgetLimit("org", ORG_ID, "month", 100), NOW)
    with pytest.raises(BudgetExceeded, match=r"^Budget exceeded for API key 'ci': \$0\.0001 of"):
        await admit(store, key)
    with pytest.raises(BudgetExceeded, match=r"^Budget exceeded for API key 'sk-gw-anon'"):
        await admit(store, unnamed)
    await store.clear_limit("key", key.id, "total")
    with pytest.raises(BudgetExceeded) as caught:
        await admit(store, key)
    # A team never learns the organisation's limit or spend.
    assert caught.value.message == (
        "The organization budget is exceeded (month limit): ask the operator."
    )


async def test_reservations_settle_in_the_period_they_were_made_in(
    store: Store, key: ApiKey
) -> None:
    before = datetime(2026, 11, 25, 23, 59, 50, tzinfo=UTC).timestamp()
    after = before + 20
    job = (await admit(store, key, now=before)).job
    scopes = (ScopeRef("team", key.team_id),)
    await run_to_completion(store, job, now=after)
    old = {ln.window: (ln.spent, ln.reserved) for ln in await store.budget_lines(scopes, before)}
    new = {ln.window: (ln.spent, ln.reserved) for ln in await store.budget_lines(scopes, after)}
    assert old == {"total": (PRICE, 0), "day": (PRICE, 0), "month": (PRICE, 0)}
    assert new == {"total": (PRICE, 0), "day": (0, 0), "month": (PRICE, 0)}
    assert await store.audit() == []


# -- settlement -----------------------------------------------------------------------------


@pytest.mark.parametrize(("charge", "spent"), [(None, PRICE), (250_000, 250_000), (0, 0)])
async def test_completion_charges_in_place_of_the_reservation(
    store: Store, key: ApiKey, charge: int | None, spent: int
) -> None:
    job = (await admit(store, key)).job
    done = await run_to_completion(store, job, charge=charge)
    assert (done.status, done.money_state, done.charged_micros) == ("completed", "charged", spent)
    assert (done.video_asset, done.last_frame_asset) == (VIDEO.key, FRAME.key)
    lines = await store.budget_lines(scopes_for(key.id, key.team_id), T)
    assert {(ln.spent, ln.reserved) for ln in lines} == {(spent, 0)}
    assert await store.audit() == []


async def test_rejection_refunds_once(store: Store, key: ApiKey) -> None:
    job = (await admit(store, key)).job
    failed = await store.fail_job(
        job.id, owner=None, code="bad", message="refused", now=T + 1, rejected=True
    )
    assert failed is not None
    assert (failed.status, failed.money_state, failed.charged_micros) == ("rejected", "refunded", 0)
    assert (failed.error_code, failed.error_message, failed.completed_at) == (
        "bad",
        "refused",
        int(T + 1),
    )
    # No longer submitting: neither a second rejection nor a runner without the lease applies.
    assert await store.fail_job(job.id, owner=None, code="x", message="x", now=T + 2) is None
    assert await store.fail_job(job.id, owner="runner", code="x", message="x", now=T + 2) is None
    lines = await store.budget_lines(scopes_for(key.id, key.team_id), T)
    assert {(ln.spent, ln.reserved) for ln in lines} == {(0, 0)}
    assert await store.audit() == []


async def test_a_runner_fails_only_a_job_it_holds(store: Store, key: ApiKey) -> None:
    job = (await admit(store, key)).job
    await store.update_job(job.id, {"status": "in_progress", "next_check_at": T})
    await store.claim_due_jobs(owner="runner", now=T, lease_seconds=LEASE, limit=1)
    assert await store.fail_job(job.id, owner="other", code="x", message="x", now=T) is None
    failed = await store.fail_job(job.id, owner="runner", code="upstream", message="m", now=T + 5)
    assert failed is not None
    assert (failed.status, failed.lease_owner, failed.next_check_at) == ("failed", None, None)
    assert failed.money_state == "refunded"
    assert await store.audit() == []


# -- dedupe ---------------------------------------------------------------------------------


async def test_identical_requests_join_the_running_leader(store: Store, key: ApiKey) -> None:
    leader = await admit(store, key, cache_key="k1")
    assert (leader.outcome, leader.job.cache_result) == ("miss", "miss")
    joined = await admit(store, key, cache_key="k1", now=T + 1)
    assert joined.outcome == "coalesced"
    assert not joined.submit_upstream
    follower = joined.job
    assert (follower.status, follower.leader_id, follower.cost_micros) == (
        "queued",
        leader.job.id,
        0,
    )
    assert (follower.money_state, follower.next_check_at, follower.cache_key) == (
        "none",
        None,
        "k1",
    )
    assert await store.get_job(follower.id) == follower
    assert await store.live_followers(leader.job.id) == 1


async def test_completing_the_leader_completes_its_followers_and_serves_hits(
    store: Store, target: StoreTarget, key: ApiKey
) -> None:
    leader = (await admit(store, key, cache_key="k1")).job
    followers = [(await admit(store, key, cache_key="k1", now=T + n)).job for n in (1, 2)]
    assert await store.delete_job(followers[1].id, key.team_id, NOW + 3) is not None
    done = await run_to_completion(store, leader, expires_at=NOW + 3600)
    assert done.money_state == "charged"
    assert await store.live_followers(leader.id) == 0

    [live, deleted] = [await store.update_job(f.id, {}) for f in followers]
    assert live is not None and deleted is not None
    assert (live.status, live.progress, live.video_asset, live.last_frame_asset) == (
        "completed",
        100,
        VIDEO.key,
        FRAME.key,
    )
    assert (live.expires_at, live.delivered_seconds, live.money_state) == (NOW + 3600, 5, "none")
    assert (deleted.status, deleted.video_asset) == ("completed", None)
    assert await target.asset_refs(VIDEO.key) == 2  # the leader and the live follower

    hit = await admit(store, key, cache_key="k1", now=T + 200, retention_seconds=86400)
    assert (hit.outcome, hit.job.status, hit.job.cache_result) == ("hit", "completed", "hit")
    assert (hit.job.video_asset, hit.job.last_frame_asset, hit.job.leader_id) == (
        VIDEO.key,
        FRAME.key,
        leader.id,
    )
    assert (hit.job.cost_micros, hit.job.money_state, hit.job.delivered_seconds) == (0, "none", 5)
    assert hit.job.expires_at == int(T + 200 + 86400)
    assert await store.get_job(hit.job.id) == hit.job
    assert await target.asset_refs(VIDEO.key) == 3
    assert await target.asset_refs(FRAME.key) == 3
    assert await store.audit() == []


async def test_a_charged_hit_is_reserved_and_charged_at_once(
    store: Store, key: ApiKey, team: Team
) -> None:
    leader = (await admit(store, key, cache_key="k1")).job
    await run_to_completion(store, leader)
    hit = await admit(store, key, cache_key="k1", now=T + 200, charge_hits=True)
    assert hit.outcome == "hit"
    assert (hit.job.money_state, hit.job.charged_micros, hit.job.cost_micros) == (
        "charged",
        PRICE,
        PRICE,
    )
    assert totals(await store.budget_lines((ScopeRef("team", team.id),), T), "team") == (
        2 * PRICE,
        0,
    )
    await store.set_limit(BudgetLimit("team", team.id, "total", 2 * PRICE), NOW)
    with pytest.raises(BudgetExceeded, match="in total"):
        await admit(store, key, cache_key="k1", now=T + 300, charge_hits=True)
    assert (await admit(store, key, cache_key="k1", now=T + 300)).outcome == "hit"  # free hits
    assert await store.audit() == []


async def test_a_deleted_video_or_an_expired_entry_is_generated_afresh(
    store: Store, key: ApiKey
) -> None:
    leader = (await admit(store, key, cache_key="k1", cache_ttl_seconds=1000)).job
    await run_to_completion(store, leader)
    deletion = await store.delete_job(leader.id, key.team_id, NOW + 500)
    assert deletion is not None and set(deletion.released) == {VIDEO.key, FRAME.key}
    again = await admit(store, key, cache_key="k1", now=T + 600, cache_ttl_seconds=1000)
    assert again.outcome == "miss"  # the stored video is gone

    await run_to_completion(store, again.job, now=T + 700)
    assert (await admit(store, key, cache_key="k1", now=T + 1500)).outcome == "hit"
    assert (await admit(store, key, cache_key="k1", now=T + 1600)).outcome == "miss"  # TTL


async def test_a_completion_without_a_video_drops_the_entry(store: Store, key: ApiKey) -> None:
    leader = (await admit(store, key, cache_key="k1")).job
    await run_to_completion(store, leader, video=None, last_frame=None)
    assert (await admit(store, key, cache_key="k1", now=T + 200)).outcome == "miss"


async def test_failing_the_leader_fails_its_followers_and_forgets_the_entry(
    store: Store, key: ApiKey
) -> None:
    leader = (await admit(store, key, cache_key="k1")).job
    follower = (await admit(store, key, cache_key="k1", now=T + 1)).job
    failed = await store.fail_job(
        leader.id, owner=None, code="bad", message="no", now=T + 2, rejected=True
    )
    assert failed is not None and failed.status == "rejected"
    after = await store.get_job(follower.id)
    assert after is not None
    assert (after.status, after.error_code, after.error_message) == ("failed", "bad", "no")
    assert (await admit(store, key, cache_key="k1", now=T + 3)).outcome == "miss"
    assert await store.audit() == []


async def test_without_lookup_a_request_takes_over_the_entry(store: Store, key: ApiKey) -> None:
    first = (await admit(store, key, cache_key="k1")).job
    second = await admit(store, key, cache_key="k1", lookup=False, now=T + 1)
    assert second.outcome == "miss"
    joined = await admit(store, key, cache_key="k1", now=T + 2)
    assert (joined.outcome, joined.job.leader_id) == ("coalesced", second.job.id)
    assert first.id != second.job.id


# -- reports --------------------------------------------------------------------------------


async def test_usage_by_model_key_and_day(store: Store, key: ApiKey, other_key: ApiKey) -> None:
    charged = (await admit(store, key, cache_key="k1")).job
    await run_to_completion(store, charged, charge=500_000)
    await admit(store, key, cache_key="k1", now=T + 200)  # a hit saves its price
    refunded = (await admit(store, key, now=T + 300)).job
    await store.fail_job(refunded.id, owner=None, code="x", message="x", now=T + 301)
    await admit(store, key, now=T + 400)  # still reserved
    await admit(store, other_key, now=T + 400)  # another team

    [by_model] = await store.usage(key.team_id, since=T - 1, by="model")
    assert dataclasses.astuple(by_model) == ("seedance-fast", 500_000, PRICE, PRICE, 1, 5, PRICE, 1)
    [by_key] = await store.usage(key.team_id, since=T - 1, by="key")
    assert by_key.group == key.id
    assert dataclasses.astuple(by_key)[1:] == dataclasses.astuple(by_model)[1:]
    [by_day] = await store.usage(key.team_id, since=T - 1, by="day")
    assert by_day.group == day_of(T)
    assert dataclasses.astuple(by_day)[1:] == dataclasses.astuple(by_model)[1:]
    assert await store.usage(key.team_id, since=T + 1000, by="model") == []
    with pytest.raises(ValueError, match="grouped by"):
        await store.usage(key.team_id, since=0, by="colour")


async def test_metrics_snapshot(store: Store, key: ApiKey, team: Team) -> None:
    await store.set_limit(BudgetLimit("team", team.id, "day", 2_000_000), NOW)
    await store.set_limit(BudgetLimit("org", ORG_ID, "total", 5_000_000), NOW)
    await store.set_limit(BudgetLimit("key", key.id, "total", 5_000_000), NOW)  # not reported
    done = (await admit(store, key)).job
    await run_to_completion(store, done, charge=500_000)
    await admit(store, key)  # submitting: queued
    snapshot = await store.metrics_snapshot(T)
    assert snapshot.jobs_by_state == {
        "queued": 1,
        "running": 0,
        "awaiting_download": 0,
        "outcome_unknown": 0,
    }
    assert snapshot.reserved_micros == PRICE
    assert (snapshot.stored_bytes, snapshot.stored_objects) == (VIDEO.size + FRAME.size, 2)
    assert snapshot.budgets == {
        ("team", "acme", "day"): (2_000_000, 2_000_000 - 500_000 - PRICE),
        ("org", "", "total"): (5_000_000, 5_000_000 - 500_000 - PRICE),
    }


async def test_stored_totals_follow_every_asset_change(store: Store, key: ApiKey) -> None:
    """The stored bytes/objects gauges are kept by the database as assets come and go (a scrape
    no longer sums the table): shared assets count once, released ones leave the totals."""
    other = Asset(hashlib.sha256(b"other").hexdigest(), 777, "video/mp4")

    async def totals() -> tuple[int, int]:
        snapshot = await store.metrics_snapshot(T)
        return snapshot.stored_bytes, snapshot.stored_objects

    assert await totals() == (0, 0)
    first = (await admit(store, key)).job
    await run_to_completion(store, first, charge=500_000)
    second = (await admit(store, key)).job
    await run_to_completion(store, second, charge=500_000)  # the same video and frame
    assert await totals() == (VIDEO.size + FRAME.size, 2)
    third = (await admit(store, key)).job
    await run_to_completion(store, third, charge=500_000, video=other, last_frame=None)
    assert await totals() == (VIDEO.size + FRAME.size + other.size, 3)
    assert await store.delete_job(first.id, key.team_id, int(T) + 200) is not None
    assert await totals() == (VIDEO.size + FRAME.size + other.size, 3)  # still referenced
    assert await store.delete_job(second.id, key.team_id, int(T) + 200) is not None
    assert await totals() == (other.size, 1)
    assert await store.delete_job(third.id, key.team_id, int(T) + 200) is not None
    assert await totals() == (0, 0)


async def claimed(store: Store, job: Job) -> None:
    await store.update_job(job.id, {"status": "in_progress", "next_check_at": T})
    assert await store.claim_due_jobs(owner="runner", now=T, lease_seconds=LEASE, limit=10)


async def test_part_charges_move_money_as_segments_finish_and_settle_the_rest(
    store: Store, key: ApiKey
) -> None:
    job = (await admit(store, key)).job  # PRICE reserved, as for a 3-segment chain
    await claimed(store, job)
    part = PRICE // 3
    assert await store.charge_part(job.id, owner="other", amount=part, changes={}, now=T) is None
    first = await store.charge_part(
        job.id, owner="runner", amount=part, changes={"progress": 33}, now=T + 1
    )
    assert first is not None
    assert (first.settled_micros, first.progress, first.money_state) == (part, 33, "reserved")
    lines = await store.budget_lines(scopes_for(key.id, key.team_id), T)
    assert {(ln.spent, ln.reserved) for ln in lines} == {(part, PRICE - part)}
    await store.charge_part(job.id, owner="runner", amount=part, changes={}, now=T + 2)
    assert await store.audit() == []  # mid-chain, the books balance

    failed = await store.fail_job(
        job.id, owner="runner", code="upstream", message="segment 3", now=T + 3, charge=2 * part
    )
    assert failed is not None
    assert (failed.money_state, failed.charged_micros) == ("charged", 2 * part)
    lines = await store.budget_lines(scopes_for(key.id, key.team_id), T)
    assert {(ln.spent, ln.reserved) for ln in lines} == {(2 * part, 0)}
    assert await store.audit() == []


async def test_a_fully_part_charged_job_completes_without_charging_twice(
    store: Store, key: ApiKey
) -> None:
    job = (await admit(store, key)).job
    await claimed(store, job)
    await store.charge_part(job.id, owner="runner", amount=PRICE - 1, changes={}, now=T)
    await store.update_job(job.id, {"lease_owner": None, "locked_until": None})
    done = await run_to_completion(store, job, charge=PRICE)
    assert (done.money_state, done.charged_micros) == ("charged", PRICE)
    lines = await store.budget_lines(scopes_for(key.id, key.team_id), T)
    assert {(ln.spent, ln.reserved) for ln in lines} == {(PRICE, 0)}
    assert await store.audit() == []
