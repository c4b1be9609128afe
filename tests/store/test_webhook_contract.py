"""The webhook contract, on every adapter: endpoints, the outbox written in the transactions that
finish videos (leader, followers, hits; nothing for rejected, deleted or rolled-back states),
delivery leases with a per-endpoint cap, the attempt log and disabling after failures.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from gateway.ids import new_id
from gateway.store.base import ApiKey, Store, Team
from gateway.store.webhook_records import WebhookAttempt, WebhookDelivery, WebhookEndpoint

from .conftest import StoreTarget
from .test_money_contract import FRAME, VIDEO, T, admit, run_to_completion

LEASE = 30.0
BOTH = ("video.completed", "video.failed")


async def endpoint(
    store: Store, team: Team, *, types: tuple[str, ...] = BOTH, name: str = "hook", **fields: Any
) -> WebhookEndpoint:
    record = WebhookEndpoint(
        id=new_id("we", now=T),
        team_id=team.id,
        name=name,
        url="https://example.com/hook",
        event_types=types,
        secret_sealed="sealed-bytes",
        secret_hint="whsec_****abcd",
        created_at=int(T),
        updated_at=int(T),
        **fields,
    )
    await store.insert_endpoint(record)
    return record


async def events(store: Store, endpoint_id: str) -> list[tuple[str, str]]:
    """(type, video id) of every delivery queued for the endpoint, oldest first."""
    rows = await store.list_deliveries(endpoint_id)
    return sorted((d.event_type, d.video_id) for d, _ in rows)


async def claim(store: Store, owner: str, now: float, **options: Any) -> list[WebhookDelivery]:
    settings: dict[str, Any] = {"lease_seconds": LEASE, "limit": 100, "per_endpoint": 100}
    settings.update(options)
    return await store.claim_deliveries(owner=owner, now=now, **settings)


def attempt(delivery: WebhookDelivery, outcome: Any, at: float, **fields: Any) -> WebhookAttempt:
    return WebhookAttempt(
        delivery_id=delivery.id,
        attempt=delivery.attempts + 1,
        started_at=at,
        duration_seconds=0.01,
        outcome=outcome,
        **fields,
    )


# -- endpoints ---------------------------------------------------------------------------------


async def test_endpoints_are_scoped_to_their_team(
    store: Store, team: Team, other_team: Team
) -> None:
    mine = await endpoint(store, team)
    theirs = await endpoint(store, other_team)
    assert await store.get_endpoint(mine.id, team.id) == mine
    assert await store.get_endpoint(theirs.id, team.id) is None
    assert await store.get_endpoint(theirs.id) == theirs
    page, more = await store.list_endpoints(team.id)
    assert (page, more) == ([mine], False)
    everyone, _ = await store.list_endpoints(None)
    assert {e.id for e in everyone} == {mine.id, theirs.id}
    assert await store.count_endpoints(team.id) == 1


async def test_list_endpoints_pages_by_id(store: Store, team: Team) -> None:
    made = [await endpoint(store, team, name=f"n{i}") for i in range(3)]
    first, more = await store.list_endpoints(team.id, limit=2)
    assert [e.id for e in first] == sorted(e.id for e in made)[:2] and more
    rest, more = await store.list_endpoints(team.id, after=first[-1].id, limit=2)
    assert len(rest) == 1 and not more


async def test_update_and_secret_replacement(store: Store, team: Team) -> None:
    made = await endpoint(store, team)
    changed = await store.update_endpoint(
        made.id, now=int(T) + 5, name="renamed", event_types=("video.failed",)
    )
    assert changed is not None
    assert (changed.name, changed.event_types, changed.updated_at) == (
        "renamed",
        ("video.failed",),
        int(T) + 5,
    )
    disabled = await store.update_endpoint(
        made.id, now=int(T) + 6, status="disabled", disabled_reason="operator"
    )
    assert disabled is not None and (disabled.status, disabled.disabled_reason) == (
        "disabled",
        "operator",
    )
    enabled = await store.update_endpoint(made.id, now=int(T) + 7, status="enabled")
    assert enabled is not None and (enabled.status, enabled.disabled_reason) == ("enabled", None)
    rotated = await store.replace_secret(
        made.id,
        sealed="new",
        hint="whsec_****wxyz",
        now=int(T) + 8,
        previous_sealed="sealed-bytes",
        previous_expires_at=T + 86400,
    )
    assert rotated is not None
    assert (rotated.secret_sealed, rotated.previous_secret_sealed) == ("new", "sealed-bytes")
    assert await store.update_endpoint("we_missing", now=int(T), name="x") is None
    assert await store.delete_endpoint(made.id)
    assert not await store.delete_endpoint(made.id)
    assert await store.get_endpoint(made.id) is None


# -- the outbox --------------------------------------------------------------------------------


async def test_completion_emits_for_the_leader_and_its_followers(
    store: Store, key: ApiKey, team: Team
) -> None:
    hook = await endpoint(store, team)
    leader = await admit(store, key, cache_key="k1")
    follower = await admit(store, key, cache_key="k1", now=T + 1)
    assert follower.outcome == "coalesced"
    await store.update_job(leader.job.id, {"status": "queued", "upstream_id": "cgt-1"})
    await run_to_completion(store, leader.job)
    assert await events(store, hook.id) == sorted(
        [("video.completed", leader.job.id), ("video.completed", follower.job.id)]
    )
    [(delivery, attempts)] = [
        d for d in await store.list_deliveries(hook.id) if d[0].video_id == leader.job.id
    ]
    body = orjson.loads(delivery.body)
    assert body == {
        "id": delivery.event_id,
        "object": "event",
        "type": "video.completed",
        "created_at": int(T + 100),
        "data": {"id": leader.job.id},
    }
    assert delivery.status == "pending" and attempts == []
    hit = await admit(store, key, cache_key="k1", now=T + 200)
    assert hit.outcome == "hit"
    assert ("video.completed", hit.job.id) in await events(store, hook.id)


async def test_failure_emits_for_the_leader_and_its_followers(
    store: Store, key: ApiKey, team: Team
) -> None:
    hook = await endpoint(store, team)
    leader = await admit(store, key, cache_key="k2")
    follower = await admit(store, key, cache_key="k2", now=T + 1)
    await store.update_job(leader.job.id, {"status": "queued", "upstream_id": "cgt-2"})
    await store.update_job(leader.job.id, {"next_check_at": T})
    claimed = await store.claim_due_jobs(owner="r", now=T + 2, lease_seconds=LEASE, limit=10)
    assert [j.id for j in claimed] == [leader.job.id]
    failed = await store.fail_job(leader.job.id, owner="r", code="boom", message="x", now=T + 3)
    assert failed is not None
    assert await events(store, hook.id) == sorted(
        [("video.failed", leader.job.id), ("video.failed", follower.job.id)]
    )


async def test_nothing_is_emitted_for_rejected_deleted_or_rolled_back_states(
    store: Store, key: ApiKey, team: Team
) -> None:
    hook = await endpoint(store, team)
    rejected = await admit(store, key)
    assert await store.fail_job(
        rejected.job.id, owner=None, code="bad", message="x", now=T + 1, rejected=True
    )
    deleted = await admit(store, key, now=T + 2)
    await store.delete_job(deleted.job.id, key.team_id, int(T) + 3)
    await run_to_completion(store, deleted.job, now=T + 10)
    lost = await admit(store, key, now=T + 4)
    await store.update_job(lost.job.id, {"status": "downloading", "next_check_at": T})
    assert (
        await store.complete_job(
            lost.job.id,
            owner="not-the-owner",
            changes={"status": "completed", "updated_at": int(T) + 20},
            video=VIDEO,
            last_frame=FRAME,
        )
        is None
    )
    assert await events(store, hook.id) == []


async def test_only_subscribed_endpoints_of_the_videos_team_get_events(
    store: Store, key: ApiKey, team: Team, other_team: Team
) -> None:
    failures_only = await endpoint(store, team, types=("video.failed",))
    both = await endpoint(store, team)
    elsewhere = await endpoint(store, other_team)
    disabled = await endpoint(store, team, status="disabled")
    admitted = await admit(store, key)
    await run_to_completion(store, admitted.job)
    assert await events(store, failures_only.id) == []
    assert await events(store, elsewhere.id) == []
    assert await events(store, both.id) == [("video.completed", admitted.job.id)]
    # A disabled endpoint keeps its queue for when it is enabled again.
    assert await events(store, disabled.id) == [("video.completed", admitted.job.id)]
    [d1] = [d for d, _ in await store.list_deliveries(both.id)]
    [d2] = [d for d, _ in await store.list_deliveries(disabled.id)]
    assert d1.event_id == d2.event_id and d1.id != d2.id


# -- delivering ----------------------------------------------------------------------------------


async def queued(store: Store, key: ApiKey, team: Team, count: int) -> WebhookEndpoint:
    hook = await endpoint(store, team)
    for n in range(count):
        admitted = await admit(store, key, now=T + n)
        await run_to_completion(store, admitted.job, now=T + 100 + n)
    return hook


async def test_claims_lease_due_deliveries_once_with_a_per_endpoint_cap(
    store: Store, key: ApiKey, team: Team
) -> None:
    await queued(store, key, team, 3)
    now = T + 1000
    first = await claim(store, "a", now, per_endpoint=2)
    assert len(first) == 2 and all(d.lease_owner == "a" for d in first)
    assert await claim(store, "b", now, per_endpoint=2) == []  # two in flight: the cap
    assert len(await claim(store, "b", now, per_endpoint=3)) == 1
    assert await claim(store, "c", now, per_endpoint=10) == []  # all leased
    again = await claim(store, "c", now + LEASE + 1, per_endpoint=10)
    assert len(again) == 3  # expired leases are taken over


async def test_two_stores_never_claim_the_same_delivery(
    store: Store, key: ApiKey, team: Team, target: StoreTarget
) -> None:
    await queued(store, key, team, 6)
    other = await target.open()
    try:
        results = await asyncio.gather(
            *(
                (store if n % 2 else other).claim_deliveries(
                    owner=f"o{n}", now=T + 1000, lease_seconds=LEASE, limit=2, per_endpoint=100
                )
                for n in range(8)
            )
        )
    finally:
        await other.close()
    ids = [d.id for batch in results for d in batch]
    assert len(ids) == 6 and len(set(ids)) == 6


async def test_attempts_move_deliveries_on_and_failures_disable_the_endpoint(
    store: Store, key: ApiKey, team: Team
) -> None:
    hook = await queued(store, key, team, 2)
    d1, d2 = await claim(store, "a", T + 1000)
    result = await store.record_attempt(
        attempt(d1, "retry", T + 1000, status_code=500),
        owner="a",
        next_attempt_at=T + 1005,
        disable_after=3,
    )
    assert result is not None and not result.endpoint_disabled
    assert (result.delivery.status, result.delivery.attempts) == ("pending", 1)
    assert result.delivery.next_attempt_at == T + 1005 and result.delivery.lease_owner is None
    # Not the owner: nothing is recorded.
    assert (
        await store.record_attempt(
            attempt(d2, "delivered", T + 1000), owner="b", next_attempt_at=None, disable_after=3
        )
        is None
    )
    ok = await store.record_attempt(
        attempt(d2, "delivered", T + 1000, status_code=204),
        owner="a",
        next_attempt_at=None,
        disable_after=3,
    )
    assert ok is not None and ok.delivery.status == "delivered"
    assert ok.delivery.delivered_at is not None
    fresh = await store.get_endpoint(hook.id)
    assert fresh is not None and fresh.consecutive_failures == 0  # a success resets the count
    for n in range(3):
        [d] = await claim(store, "a", T + 2000 + n * 10)
        done = await store.record_attempt(
            attempt(d, "retry", T + 2000, error="timeout"),
            owner="a",
            next_attempt_at=T + 2005 + n * 10,
            disable_after=3,
        )
        assert done is not None and done.endpoint_disabled == (n == 2)
    off = await store.get_endpoint(hook.id)
    assert off is not None and (off.status, off.consecutive_failures) == ("disabled", 3)
    assert off.disabled_reason == "too_many_failures"
    assert await claim(store, "a", T + 9000) == []  # a disabled endpoint is not delivered to
    stats = await store.webhook_stats()
    assert (stats.pending, stats.disabled_endpoints) == (0, 1)
    back = await store.update_endpoint(hook.id, now=int(T) + 9000, status="enabled")
    assert back is not None and back.consecutive_failures == 0
    [d] = await claim(store, "a", T + 9000)
    assert d.id == d1.id and d.attempts == 4
    history = dict((x.id, a) for x, a in await store.list_deliveries(hook.id))
    assert [a.outcome for a in history[d1.id]] == ["retry", "retry", "retry", "retry"]
    assert [a.status_code for a in history[d2.id]] == [204]


async def test_failed_for_good_and_resent(store: Store, key: ApiKey, team: Team) -> None:
    hook = await queued(store, key, team, 1)
    [d] = await claim(store, "a", T + 1000)
    gone = await store.record_attempt(
        attempt(d, "failed", T + 1000, error="expired"),
        owner="a",
        next_attempt_at=None,
        disable_after=1,
    )
    assert gone is not None and gone.delivery.status == "failed" and not gone.endpoint_disabled
    assert await claim(store, "a", T + 2000) == []
    again = await store.resend_delivery(hook.id, d.id, T + 3000)
    assert again is not None and (again.status, again.next_attempt_at) == ("pending", T + 3000)
    assert again.event_id == d.event_id
    assert await store.resend_delivery("we_other", d.id, T + 3000) is None
    stats = await store.webhook_stats()
    assert (stats.pending, stats.oldest_pending_created_at) == (1, T + 3000)
    [taken] = await claim(store, "a", T + 3000)
    assert taken.id == d.id
    assert await store.resend_delivery(hook.id, d.id, T + 3001) is None  # in flight


async def test_an_unknown_outcome_announces_itself_once_resolved(
    store: Store, key: ApiKey, team: Team
) -> None:
    hook = await endpoint(store, team)
    leader = await admit(store, key, cache_key="k-unknown")
    follower = await admit(store, key, cache_key="k-unknown", now=T + 1)
    assert follower.outcome == "coalesced"
    marked = await store.update_job_if_status(
        leader.job.id, statuses=("submitting",), changes={"status": "submit_unknown"}
    )
    assert marked is not None
    assert await events(store, hook.id) == []  # not settled: nothing to announce yet
    done = await store.resolve_unknown(
        leader.job.id, charge=False, actor="ana", reason="not at AIHubMix", now=T + 5
    )
    assert done is not None and done.status == "failed"
    assert await events(store, hook.id) == sorted(
        [("video.failed", leader.job.id), ("video.failed", follower.job.id)]
    )
