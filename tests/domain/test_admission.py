"""Admission decisions: which cache entries are joined or served, and the records a join, a
hit or a new job becomes."""

from __future__ import annotations

from dataclasses import replace

import pytest

from gateway.domain.admission import (
    CacheEntry,
    charges_hit,
    hit,
    hit_asset_keys,
    hit_record,
    in_flight_entry,
    join_record,
    lookup,
    new_record,
)
from gateway.domain.budgets import scopes_for
from gateway.domain.jobs import STATUSES
from gateway.domain.video_request import VideoRequest
from gateway.store.base import Job

NOW = 1_000_000.0
SCOPES = scopes_for("key_2", "team_2")
REQUEST = Job(
    id="vid_new",
    team_id="team_2",
    key_id="key_2",
    model="seedance-1",
    request=VideoRequest(model="seedance-1", prompt="p"),
    status="submitting",
    created_at=int(NOW),
    updated_at=int(NOW),
    next_check_at=NOW + 5,
    price_micros=700,
    cost_micros=700,
)
LEADER = Job(
    id="vid_lead",
    team_id="team_1",
    key_id="key_1",
    model="seedance-1",
    request=VideoRequest(model="seedance-1", prompt="p"),
    status="in_progress",
    created_at=int(NOW - 60),
    updated_at=int(NOW - 5),
    progress=40,
    upstream_id="up_1",
    cost_micros=700,
    delivered_seconds=5,
)
FINISHED = replace(
    LEADER, status="completed", progress=100, video_asset="v" * 64, last_frame_asset="f" * 64
)


def entry(status: str, expires_at: float | None = None) -> CacheEntry:
    return CacheEntry("ck", LEADER.id, status, NOW - 60, expires_at)


# The entry running: every leader status -> join or start afresh.
JOINS = {
    status: ("join" if status in {"submitting", "queued", "in_progress", "downloading"} else None)
    for status in STATUSES
}


@pytest.mark.parametrize(("status", "verdict"), JOINS.items())
def test_a_running_entry_is_joined_while_its_leader_may_still_deliver(
    status: str, verdict: str | None
) -> None:
    leader = replace(LEADER, status=status)  # type: ignore[arg-type]
    assert lookup(entry("running"), leader, NOW) == verdict


@pytest.mark.parametrize(
    ("cache", "leader", "verdict"),
    [
        (None, LEADER, None),
        (entry("running"), None, None),
        (entry("running", expires_at=NOW), LEADER, None),  # expired at this very moment
        (entry("running", expires_at=NOW + 1), LEADER, "join"),
        (entry("running"), replace(LEADER, deleted_at=int(NOW)), None),
        (entry("completed"), FINISHED, "hit"),
        (entry("completed"), replace(FINISHED, video_asset=None), None),
        (entry("completed"), replace(FINISHED, status="failed"), None),
        (entry("completed"), LEADER, None),  # the entry says done, the leader does not
        (entry("completed", expires_at=NOW - 1), FINISHED, None),
        (entry("running"), FINISHED, None),  # finished but not yet servable
    ],
)
def test_lookup_table(cache: CacheEntry | None, leader: Job | None, verdict: str | None) -> None:
    assert lookup(cache, leader, NOW) == verdict


@pytest.mark.parametrize(
    ("leader_status", "status"),
    [
        ("submitting", "queued"),
        ("queued", "queued"),
        ("in_progress", "in_progress"),
        ("downloading", "downloading"),
    ],
)
def test_a_join_moves_with_its_leader_and_costs_nothing(leader_status: str, status: str) -> None:
    leader = replace(LEADER, status=leader_status)  # type: ignore[arg-type]
    joined = join_record(REQUEST, leader, "ck")
    assert (joined.status, joined.progress, joined.upstream_id) == (status, 40, "up_1")
    assert (joined.leader_id, joined.cache_key, joined.cache_result) == (
        LEADER.id,
        "ck",
        "coalesced",
    )
    assert (joined.cost_micros, joined.price_micros, joined.next_check_at) == (0, 700, None)
    assert (joined.id, joined.team_id) == (REQUEST.id, REQUEST.team_id)


@pytest.mark.parametrize(
    ("charge_hits", "cost", "charged"), [(True, 700, True), (True, 0, False), (False, 700, False)]
)
def test_charges_hit(charge_hits: bool, cost: int, charged: bool) -> None:
    assert charges_hit(charge_hits, cost) is charged


@pytest.mark.parametrize("charged", [False, True])
@pytest.mark.parametrize(("retention", "expires_at"), [(None, None), (86_400.0, int(NOW) + 86_400)])
def test_a_hit_is_a_new_completed_video_with_the_source_assets(
    charged: bool, retention: float | None, expires_at: int | None
) -> None:
    job = hit_record(
        REQUEST, FINISHED, cache_key="ck", now=NOW, retention_seconds=retention, charged=charged
    )
    assert (job.status, job.progress, job.completed_at, job.next_check_at) == (
        "completed",
        100,
        int(NOW),
        None,
    )
    assert (job.video_asset, job.last_frame_asset) == (
        FINISHED.video_asset,
        FINISHED.last_frame_asset,
    )
    assert (job.delivered_seconds, job.expires_at) == (5, expires_at)
    assert (job.leader_id, job.cache_result, job.cache_key) == (FINISHED.id, "hit", "ck")
    writes = hit(job, FINISHED, SCOPES, NOW)
    assert writes.asset_keys == hit_asset_keys(FINISHED) == ("v" * 64, "f" * 64)
    if charged:
        assert (job.money_state, job.cost_micros, job.charged_micros, job.reserved_at) == (
            "charged",
            700,
            700,
            NOW,
        )
        reserve, charge = writes.movements()
        assert (reserve.kind, reserve.reserved, reserve.spent, reserve.scopes) == (
            "reserve",
            700,
            0,
            SCOPES,
        )
        assert (charge.kind, charge.reserved, charge.spent) == ("charge", -700, 700)
    else:
        assert (job.money_state, job.cost_micros, job.charged_micros) == ("none", 0, None)
        assert writes.movements() == ()


def test_a_hit_without_a_last_frame_serves_the_video_alone() -> None:
    assert hit_asset_keys(replace(FINISHED, last_frame_asset=None)) == ("v" * 64,)


@pytest.mark.parametrize(
    ("cache_key", "register", "cost", "result", "state"),
    [
        ("ck", True, 700, "miss", "reserved"),
        ("ck", False, 700, "bypass", "reserved"),
        (None, True, 700, "bypass", "reserved"),
        ("ck", True, 0, "miss", "none"),
    ],
)
def test_a_new_job(
    cache_key: str | None, register: bool, cost: int, result: str, state: str
) -> None:
    job = new_record(
        replace(REQUEST, cost_micros=cost), cache_key=cache_key, register=register, now=NOW
    )
    assert (job.cache_result, job.cache_key, job.money_state) == (result, cache_key, state)
    assert job.reserved_at == (NOW if cost else None)


@pytest.mark.parametrize(("ttl", "expires_at"), [(None, None), (0.0, None), (60.0, NOW + 60)])
def test_the_in_flight_entry(ttl: float | None, expires_at: float | None) -> None:
    assert in_flight_entry("ck", "vid_new", NOW, ttl) == CacheEntry(
        "ck", "vid_new", "running", NOW, expires_at
    )
