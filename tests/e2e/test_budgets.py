"""Budgets that hold over real HTTP: exact admission under concurrency, reserve -> charge or
refund for every ending, quotes, and a clean audit after each scenario."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from gateway.domain.budgets import ORG_ID, Window
from gateway.store.base import BudgetLimit
from tests.conftest import FAST_MODEL, GatewayHandle, SandboxHandle, wait_for
from tests.raw_sql import fetch_rows

PRICE = 565_000  # doubao-seedance-2-0-fast-260128, 720p, 5 s: 0.113 USD/s x 5
BODY = {"model": FAST_MODEL, "prompt": "Budgeted"}


def team_id_of(gateway: GatewayHandle, team: str) -> str:
    found = gateway.server.call(gateway.store.team_by_name(team))
    assert found is not None
    return str(found.id)


def set_limit(
    gateway: GatewayHandle, scope: str, scope_id: str, window: Window, micros: int
) -> None:
    limit = BudgetLimit(scope, scope_id, window, micros)  # type: ignore[arg-type]
    gateway.server.call(gateway.store.set_limit(limit, 0))


def counters(
    gateway: GatewayHandle, scope: str, scope_id: str, window: str = "total"
) -> dict[str, int]:
    async def read() -> dict[str, int]:
        rows = await fetch_rows(
            gateway.store,
            "SELECT reserved, spent FROM budget_counters WHERE scope = ? AND scope_id = ?"
            " AND window_kind = ?",
            scope,
            scope_id,
            window,
        )
        return {"reserved": sum(r[0] for r in rows), "spent": sum(r[1] for r in rows)}

    result: dict[str, int] = gateway.server.call(read())
    return result


def audit(gateway: GatewayHandle) -> list[str]:
    problems: list[str] = gateway.server.call(gateway.store.audit())
    return problems


def post(url: str, key: str, body: dict[str, Any]) -> httpx.Response:
    with httpx.Client(timeout=60) as client:
        return client.post(
            f"{url}/v1/videos", json=body, headers={"Authorization": f"Bearer {key}"}
        )


def all_finished(gateway: GatewayHandle, key: str, ids: list[str]) -> bool:
    auth = {"Authorization": f"Bearer {key}"}
    return all(
        gateway.http.get(f"/v1/videos/{i}", headers=auth).json()["status"]
        in ("completed", "failed")
        for i in ids
    )


def test_200_concurrent_creates_admit_exactly_n(gateway: GatewayHandle, sandbox: SandboxHandle):
    key = gateway.new_key("team-budget")
    team = team_id_of(gateway, "team-budget")
    n = 37
    set_limit(gateway, "team", team, "total", n * PRICE)
    bodies = [{**BODY, "prompt": f"Budgeted {i}"} for i in range(200)]  # unseeded: no dedupe
    with ThreadPoolExecutor(max_workers=32) as pool:
        responses = list(pool.map(lambda b: post(gateway.url, key, b), bodies))
    accepted = [r for r in responses if r.status_code == 200]
    rejected = [r for r in responses if r.status_code != 200]
    assert len(accepted) == n
    assert {r.status_code for r in rejected} == {429}
    for resp in rejected:
        error = resp.json()["error"]
        assert error["type"] == "insufficient_quota"
        assert error["code"] == "budget_exceeded"
        assert "team 'team-budget'" in error["message"]
        assert "$0.565" in error["message"]
    assert sandbox.stats()["create_accepted"] == n
    during = counters(gateway, "team", team)
    assert during["reserved"] + during["spent"] <= n * PRICE
    ids = [r.json()["id"] for r in accepted]
    wait_for(lambda: all_finished(gateway, key, ids), timeout=60)
    after = counters(gateway, "team", team)
    assert after == {"reserved": 0, "spent": n * PRICE}
    assert counters(gateway, "org", ORG_ID)["spent"] == n * PRICE
    assert audit(gateway) == []


def test_several_limits_at_once_and_the_tightest_wins(gateway: GatewayHandle):
    key = gateway.new_key("team-multi")
    team = team_id_of(gateway, "team-multi")
    set_limit(gateway, "team", team, "day", 10 * PRICE)
    set_limit(gateway, "team", team, "month", 2 * PRICE)
    results = [post(gateway.url, key, {**BODY, "prompt": f"m{i}"}).status_code for i in range(3)]
    assert results == [200, 200, 429]
    resp = post(gateway.url, key, {**BODY, "prompt": "again"})
    assert "monthly" in resp.json()["error"]["message"]


def test_key_and_org_scopes(gateway: GatewayHandle):
    key = gateway.new_key("team-scopes")
    other = gateway.new_key("team-scopes")
    key_id = gateway.server.call(gateway.store.key_by_hash(_hash(key))).id
    set_limit(gateway, "key", key_id, "total", PRICE)
    assert post(gateway.url, key, BODY).status_code == 200
    assert post(gateway.url, key, {**BODY, "prompt": "x"}).status_code == 429
    assert post(gateway.url, other, {**BODY, "prompt": "y"}).status_code == 200
    set_limit(gateway, "org", ORG_ID, "total", 2 * PRICE)
    resp = post(gateway.url, other, {**BODY, "prompt": "z"})
    assert resp.status_code == 429
    assert "organization" in resp.json()["error"]["message"]


def _hash(key: str) -> str:
    from gateway.domain.api_keys import hash_key

    return hash_key(key)


@pytest.mark.parametrize(
    ("fault", "expected_status"),
    [
        ({"op": "create", "kind": "reject", "message": "the parameter ratio is not valid"}, 400),
        ({"op": "create", "kind": "status", "status": 500}, 502),
        ({"op": "create", "kind": "status", "status": 429, "retry_after": 1}, 429),
    ],
)
def test_rejected_submit_refunds(gateway, sandbox, fault: dict[str, Any], expected_status: int):
    key = gateway.new_key("team-refund")
    team = team_id_of(gateway, "team-refund")
    sandbox.fault(**fault)
    assert post(gateway.url, key, BODY).status_code == expected_status
    assert counters(gateway, "team", team) == {"reserved": 0, "spent": 0}
    assert audit(gateway) == []


def test_failed_job_refunds_and_completed_job_charges(gateway, sandbox):
    key = gateway.new_key("team-life")
    team = team_id_of(gateway, "team-life")
    sandbox.fault(op="create", kind="fail_job", error_code="InternalServiceError")
    client = gateway.client(key)
    failed = client.videos.create_and_poll(model=FAST_MODEL, prompt="fails", poll_interval_ms=20)
    assert failed.status == "failed"
    assert counters(gateway, "team", team) == {"reserved": 0, "spent": 0}
    done = client.videos.create_and_poll(model=FAST_MODEL, prompt="works", poll_interval_ms=20)
    assert done.status == "completed"
    assert (done.model_extra or {})["cost_usd"] == "0.565"
    assert counters(gateway, "team", team) == {"reserved": 0, "spent": PRICE}
    assert audit(gateway) == []


def test_expired_links_and_timeouts_refund(gateway_factory, sandbox):
    gateway = gateway_factory(jobs={"link_ttl_seconds": 0.3, "deadline_seconds": 60})
    key = gateway.new_key("team-expire")
    team = team_id_of(gateway, "team-expire")
    sandbox.fault(op="file", kind="status", status=503, times=0)
    sandbox.fault(op="content", kind="status", status=503, times=0)
    client = gateway.client(key)
    video = client.videos.create_and_poll(model=FAST_MODEL, prompt="expires", poll_interval_ms=20)
    assert video.status == "failed" and video.error is not None
    assert video.error.code == "upstream_link_expired"
    assert counters(gateway, "team", team) == {"reserved": 0, "spent": 0}
    assert audit(gateway) == []


def test_timeout_refunds(gateway_factory, sandbox):
    gateway = gateway_factory(jobs={"deadline_seconds": 0.3})
    sandbox.configure(queue_seconds=60)
    key = gateway.new_key("team-timeout")
    team = team_id_of(gateway, "team-timeout")
    client = gateway.client(key)
    video = client.videos.create_and_poll(model=FAST_MODEL, prompt="slow", poll_interval_ms=20)
    assert video.status == "failed" and video.error is not None
    assert video.error.code == "timeout"
    assert counters(gateway, "team", team) == {"reserved": 0, "spent": 0}
    assert audit(gateway) == []


def test_deleted_while_running_is_still_charged(gateway, sandbox):
    sandbox.hold_new_jobs()  # still queued upstream when it is deleted
    key = gateway.new_key("team-delete")
    team = team_id_of(gateway, "team-delete")
    client = gateway.client(key)
    video = client.videos.create(model=FAST_MODEL, prompt="deleted")
    upstream_id = gateway.job(video.id).upstream_id
    client.videos.delete(video.id)
    sandbox.finish_now(upstream_id)
    wait_for(
        lambda: gateway.job(video.id) is None and counters(gateway, "team", team)["spent"] == PRICE
    )
    assert counters(gateway, "team", team) == {"reserved": 0, "spent": PRICE}
    assert audit(gateway) == []


def test_cost_header_and_dry_run_quote(gateway: GatewayHandle, sandbox: SandboxHandle):
    key = gateway.new_key("team-quote")
    team = team_id_of(gateway, "team-quote")
    set_limit(gateway, "team", team, "day", 800_000)
    auth = {"Authorization": f"Bearer {key}"}
    body = {**BODY, "duration": 8, "resolution": "480p"}
    quote = gateway.http.post(
        "/v1/videos", json=body, headers={**auth, "X-Gateway-Dry-Run": "true"}
    )
    assert quote.status_code == 200
    data = quote.json()
    assert data["object"] == "video.quote"
    assert data["cost_usd"] == "0.44"  # 0.055 USD/s x 8 s
    assert data["cost_micros"] == 440_000
    assert data["fits"] is True
    assert data["budgets"] == [
        {
            "scope": "team",
            "scope_id": team,
            "window": "day",
            "limit_usd": "0.80",
            "spent_usd": "0.00",
            "reserved_usd": "0.00",
            "remaining_usd": "0.80",
            "fits": True,
        }
    ]
    assert sandbox.stats()["create"] == 0
    assert counters(gateway, "team", team) == {"reserved": 0, "spent": 0}
    created = gateway.http.post("/v1/videos", json=body, headers=auth)
    assert created.headers["x-gateway-cost-usd"] == "0.44"
    assert created.json()["cost_usd"] == "0.44"
    second = gateway.http.post("/v1/videos", json=body, headers={**auth, "X-Gateway-Dry-Run": "1"})
    assert second.json()["fits"] is False
    assert second.json()["budgets"][0]["remaining_usd"] == "0.36"
    assert second.json()["budgets"][0]["fits"] is False
