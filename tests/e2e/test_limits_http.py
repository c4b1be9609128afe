"""Concurrency and rate limits over HTTP and through the OpenAI SDK: 429 with the limit's code
and Retry-After (the SDK's RateLimitError), cache hits and joins admitted at the limit, the
configured defaults, and the /admin/limits API's validation."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from tests.conftest import FAST_MODEL, GatewayHandle, SandboxHandle, wait_for


def put_limits(gateway: GatewayHandle, **body: Any) -> Any:
    resp = gateway.admin("PUT", "/admin/limits", json=body)
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_hits_and_joins_pass_a_full_team(gateway: GatewayHandle, sandbox: SandboxHandle) -> None:
    client = gateway.client(gateway.new_key("team-full"))
    put_limits(gateway, team="team-full", max_in_flight_jobs=1)
    seeded = {"model": FAST_MODEL, "prompt": "Cached", "extra_body": {"seed": 7}}
    first = client.videos.create(**seeded)
    assert client.videos.poll(first.id, poll_interval_ms=20).status == "completed"
    sandbox.configure(queue_seconds=600)
    running = client.videos.create(model=FAST_MODEL, prompt="Long job", extra_body={"seed": 8})
    with pytest.raises(openai.RateLimitError) as refused:
        client.videos.create(model=FAST_MODEL, prompt="One too many")
    assert refused.value.code == "concurrency_limit_exceeded"
    assert refused.value.response.headers["retry-after"] == "5"
    assert "already has 1 videos in progress" in refused.value.message
    hit = client.videos.with_raw_response.create(**seeded)
    assert hit.headers["x-gateway-cache"] == "hit"
    joined = client.videos.with_raw_response.create(
        model=FAST_MODEL, prompt="Long job", extra_body={"seed": 8}
    )
    assert joined.headers["x-gateway-cache"] == "coalesced"
    assert joined.parse().id != running.id
    assert sandbox.stats()["create_accepted"] == 2


def test_configured_defaults_apply_per_key(gateway_factory: Any, sandbox: SandboxHandle) -> None:
    gateway = gateway_factory(limits={"key_requests_per_minute": 2})
    first, second = (
        gateway.client(gateway.new_key("team-d")),
        gateway.client(gateway.new_key("team-d")),
    )
    for client in (first, second):
        client.videos.create(model=FAST_MODEL, prompt="a")
        client.videos.create(model=FAST_MODEL, prompt="b")
    with pytest.raises(openai.RateLimitError) as refused:
        first.videos.create(model=FAST_MODEL, prompt="c")
    assert refused.value.code == "rate_limit_exceeded"
    assert 1 <= int(refused.value.response.headers["retry-after"]) <= 30
    shown = gateway.admin("GET", "/admin/limits").json()
    assert shown["defaults"]["key"] == {"max_in_flight_jobs": 0, "requests_per_minute": 2}
    assert shown["data"] == []  # no owner has limits of its own
    wait_for(lambda: sandbox.stats()["create_accepted"] == 4)


def test_admin_limits_api(gateway: GatewayHandle) -> None:
    gateway.new_key("team-admin")
    item = put_limits(gateway, team="team-admin", requests_per_minute=30)
    assert item["object"] == "limits"
    assert (item["name"], item["requests_per_minute"], item["max_in_flight_jobs"]) == (
        "team-admin",
        30,
        0,
    )
    assert item["own"] == {"max_in_flight_jobs": None, "requests_per_minute": 30}
    item = put_limits(gateway, team="team-admin", max_in_flight_jobs=3)
    assert item["own"] == {"max_in_flight_jobs": 3, "requests_per_minute": 30}
    listed = gateway.admin("GET", "/admin/limits").json()["data"]
    assert [(i["scope"], i["name"], i["in_flight_jobs"]) for i in listed] == [
        ("team", "team-admin", 0)
    ]
    bad = [
        ({"team": "team-admin", "max_in_flight_jobs": -1}, 400, "max_in_flight_jobs"),
        ({"team": "team-admin", "requests_per_minute": "fast"}, 400, "requests_per_minute"),
        ({"team": "team-admin", "requests_per_minute": True}, 400, "requests_per_minute"),
        ({"team": "team-admin"}, 400, "max_in_flight_jobs"),
        ({"max_in_flight_jobs": 1}, 400, "team"),
        ({"team": "nobody", "max_in_flight_jobs": 1}, 404, "team"),
        ({"key_id": "key_nope", "max_in_flight_jobs": 1}, 404, "key_id"),
        ({"team": "team-admin", "max_inflight": 1}, 400, "max_inflight"),
    ]
    for body, status, param in bad:
        resp = gateway.admin("PUT", "/admin/limits", json=body)
        assert (resp.status_code, resp.json()["error"]["param"]) == (status, param), body
    deleted = gateway.admin("DELETE", "/admin/limits", params={"team": "team-admin"})
    assert deleted.json()["deleted"] is True
    again = gateway.admin("DELETE", "/admin/limits", params={"team": "team-admin"})
    assert again.status_code == 404
    assert gateway.http.get("/admin/limits").status_code == 401
