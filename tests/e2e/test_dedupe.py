"""Dedupe over real HTTP: identical seeded requests share one upstream job and one charge,
finished ones are served from storage at once, and failures never stick in the cache."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from gateway.domain.budgets import ORG_ID
from gateway.sandbox.state import expected_video_bytes
from tests.conftest import FAST_MODEL, GatewayHandle, SandboxHandle, wait_for
from tests.e2e.test_budgets import PRICE, all_finished, audit, counters, team_id_of

SEEDED = {"model": FAST_MODEL, "prompt": "A heron in the rain", "seed": 1234}


def create(
    gateway: GatewayHandle, key: str, body: dict[str, Any], **headers: str
) -> httpx.Response:
    return gateway.http.post(
        "/v1/videos", json=body, headers={"Authorization": f"Bearer {key}", **headers}
    )


def content(gateway: GatewayHandle, key: str, video_id: str) -> bytes:
    resp = gateway.http.get(
        f"/v1/videos/{video_id}/content", headers={"Authorization": f"Bearer {key}"}
    )
    assert resp.status_code == 200, resp.text
    return resp.content


def test_50_concurrent_identical_requests_make_one_job(gateway, sandbox: SandboxHandle):
    sandbox.configure(queue_seconds=0.5)
    key = gateway.new_key("team-dedupe")
    team = team_id_of(gateway, "team-dedupe")

    def post(_: int) -> httpx.Response:
        with httpx.Client(timeout=60) as client:
            return client.post(
                f"{gateway.url}/v1/videos", json=SEEDED, headers={"Authorization": f"Bearer {key}"}
            )

    with ThreadPoolExecutor(max_workers=25) as pool:
        responses = list(pool.map(post, range(50)))
    assert [r.status_code for r in responses] == [200] * 50
    ids = [r.json()["id"] for r in responses]
    assert len(set(ids)) == 50
    outcomes = sorted(r.headers["x-gateway-cache"] for r in responses)
    assert outcomes.count("miss") == 1
    assert set(outcomes) <= {"miss", "coalesced", "hit"}
    assert sandbox.stats()["create_accepted"] == 1
    wait_for(lambda: all_finished(gateway, key, ids), timeout=60)
    bodies = {content(gateway, key, i) for i in ids}
    assert len(bodies) == 1
    leader = next(r.json()["id"] for r in responses if r.headers["x-gateway-cache"] == "miss")
    assert bodies == {expected_video_bytes(sandbox.job(gateway.job(leader).upstream_id))}
    assert counters(gateway, "team", team) == {"reserved": 0, "spent": PRICE}
    costs = sorted(r.headers["x-gateway-cost-usd"] for r in responses)
    assert costs == ["0.00"] * 49 + ["0.565"]
    assert audit(gateway) == []


def test_a_finished_video_is_a_hit_even_after_upstream_links_expired(gateway, sandbox):
    key = gateway.new_key()
    client = gateway.client(key)
    first = client.videos.create_and_poll(
        model=FAST_MODEL, prompt="Hit me", poll_interval_ms=20, extra_body={"seed": 5}
    )
    sandbox.expire_links()
    resp = create(gateway, key, {"model": FAST_MODEL, "prompt": "Hit me", "seed": 5})
    assert resp.headers["x-gateway-cache"] == "hit"
    hit = resp.json()
    assert hit["id"] != first.id
    assert hit["status"] == "completed"
    assert hit["cost_usd"] == "0.00"
    assert content(gateway, key, hit["id"]) == content(gateway, key, first.id)
    assert sandbox.stats()["create_accepted"] == 1


def test_equivalent_spellings_share_a_key(gateway: GatewayHandle, sandbox: SandboxHandle):
    key = gateway.new_key()
    client = gateway.client(key)
    first = client.videos.create(
        model=FAST_MODEL,
        prompt="Same",
        seconds="5",  # type: ignore[arg-type]
        size="1280x720",
        extra_body={"seed": 9},  # type: ignore[arg-type]
    )
    spelled = [
        {"model": FAST_MODEL, "prompt": "Same", "seed": 9},
        {
            "seed": 9,
            "prompt": "Same",
            "model": FAST_MODEL,
            "duration": 5,
            "ratio": "16:9",
            "resolution": "720p",
            "generate_audio": False,
            "watermark": False,
        },
    ]
    for body in spelled:
        resp = create(gateway, key, body)
        assert resp.headers["x-gateway-cache"] in ("coalesced", "hit"), body
    raw = json.dumps({"model": FAST_MODEL, "prompt": "Same", "seed": 9}, indent=4)
    resp = gateway.http.post(
        "/v1/videos",
        content=raw,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    assert resp.headers["x-gateway-cache"] in ("coalesced", "hit")
    assert sandbox.stats()["create_accepted"] == 1
    assert first.id


@pytest.mark.parametrize(
    "change",
    [
        {"prompt": "Same!"},
        {"seed": 10},
        {"duration": 6},
        {"resolution": "480p"},
        {"ratio": "9:16"},
        {"generate_audio": True},
        {"watermark": True},
        {"return_last_frame": True},
        {"model": "doubao-seedance-2-0-260128"},
        {
            "content": [
                {
                    "type": "image_url",
                    "image_url": {"url": "https://example.com/a.jpg"},
                    "role": "first_frame",
                }
            ]
        },
    ],
)
def test_any_change_is_a_miss(gateway, sandbox, change: dict[str, Any]):
    key = gateway.new_key()
    base = {"model": FAST_MODEL, "prompt": "Same", "seed": 9}
    assert create(gateway, key, base).headers["x-gateway-cache"] == "miss"
    assert create(gateway, key, {**base, **change}).headers["x-gateway-cache"] == "miss"
    assert sandbox.stats()["create_accepted"] == 2


def test_unseeded_requests_are_not_deduped(gateway, sandbox):
    key = gateway.new_key()
    body = {"model": FAST_MODEL, "prompt": "No seed"}
    assert create(gateway, key, body).headers["x-gateway-cache"] == "bypass"
    assert create(gateway, key, body).headers["x-gateway-cache"] == "bypass"
    assert create(gateway, key, {**body, "seed": -1}).headers["x-gateway-cache"] == "bypass"
    assert sandbox.stats()["create_accepted"] == 3


def test_teams_do_not_share_cache_entries(gateway, sandbox):
    alice, bob = gateway.new_key("team-alice"), gateway.new_key("team-bob")
    assert create(gateway, alice, SEEDED).headers["x-gateway-cache"] == "miss"
    assert create(gateway, bob, SEEDED).headers["x-gateway-cache"] == "miss"
    assert sandbox.stats()["create_accepted"] == 2


def test_org_scope_shares_across_teams(gateway_factory, sandbox):
    gateway = gateway_factory(cache={"scope": "org"})
    alice, bob = gateway.new_key("team-alice"), gateway.new_key("team-bob")
    assert create(gateway, alice, SEEDED).headers["x-gateway-cache"] == "miss"
    assert create(gateway, bob, SEEDED).headers["x-gateway-cache"] in ("coalesced", "hit")
    assert sandbox.stats()["create_accepted"] == 1


def test_leader_failure_fails_followers_and_clears_the_entry(gateway, sandbox):
    sandbox.hold_new_jobs()  # the leader stays queued until the follower has joined it
    sandbox.fault(op="create", kind="fail_job", error_code="OutputVideoSensitiveContentDetected")
    key = gateway.new_key("team-fail")
    team = team_id_of(gateway, "team-fail")
    leader = create(gateway, key, SEEDED)
    follower = create(gateway, key, SEEDED)
    assert follower.headers["x-gateway-cache"] == "coalesced"
    sandbox.configure(queue_seconds=0.05)
    sandbox.finish_now(gateway.job(leader.json()["id"]).upstream_id)  # ... and fails
    client = gateway.client(key)
    for video_id in (leader.json()["id"], follower.json()["id"]):
        done = client.videos.poll(video_id, poll_interval_ms=20)
        assert done.status == "failed"
        assert done.error is not None and done.error.code == "OutputVideoSensitiveContentDetected"
    retry = create(gateway, key, SEEDED)
    assert retry.headers["x-gateway-cache"] == "miss"
    assert sandbox.stats()["create_accepted"] == 2
    assert client.videos.poll(retry.json()["id"], poll_interval_ms=20).status == "completed"
    assert counters(gateway, "team", team) == {"reserved": 0, "spent": PRICE}
    assert audit(gateway) == []


def test_cache_control_no_cache_and_no_store(gateway, sandbox):
    key = gateway.new_key()
    client = gateway.client(key)
    first = create(gateway, key, SEEDED).json()["id"]
    client.videos.poll(first, poll_interval_ms=20)
    fresh = create(gateway, key, SEEDED, **{"Cache-Control": "no-cache"})
    assert fresh.headers["x-gateway-cache"] == "miss"
    client.videos.poll(fresh.json()["id"], poll_interval_ms=20)
    hit = create(gateway, key, SEEDED)
    assert hit.headers["x-gateway-cache"] == "hit"
    assert gateway.job(hit.json()["id"]).leader_id == fresh.json()["id"]
    stored = create(gateway, key, SEEDED, **{"Cache-Control": "no-store"})
    assert stored.headers["x-gateway-cache"] == "bypass"
    assert create(gateway, key, SEEDED).headers["x-gateway-cache"] == "hit"
    assert sandbox.stats()["create_accepted"] == 3


def test_hits_can_be_charged(gateway_factory, sandbox):
    gateway = gateway_factory(cache={"charge_hits": True})
    key = gateway.new_key("team-charged")
    team = team_id_of(gateway, "team-charged")
    client = gateway.client(key)
    first = create(gateway, key, SEEDED).json()["id"]
    client.videos.poll(first, poll_interval_ms=20)
    hit = create(gateway, key, SEEDED)
    assert hit.headers["x-gateway-cache"] == "hit"
    assert hit.headers["x-gateway-cost-usd"] == "0.565"
    assert counters(gateway, "team", team) == {"reserved": 0, "spent": 2 * PRICE}
    assert counters(gateway, "org", ORG_ID)["spent"] == 2 * PRICE
    assert audit(gateway) == []


def test_deleting_the_leader_keeps_followers_working(gateway, sandbox):
    sandbox.hold_new_jobs()
    key = gateway.new_key()
    client = gateway.client(key)
    leader = create(gateway, key, SEEDED).json()["id"]
    joined = create(gateway, key, SEEDED)
    assert joined.headers["x-gateway-cache"] == "coalesced"
    follower = joined.json()["id"]
    upstream_id = gateway.job(leader).upstream_id
    client.videos.delete(leader)
    sandbox.finish_now(upstream_id)
    done = client.videos.poll(follower, poll_interval_ms=20)
    assert done.status == "completed"
    assert content(gateway, key, follower)[4:8] == b"ftyp"
