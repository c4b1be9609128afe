"""The official SDK, with its default retries on, sends each answer a retry cannot change
exactly once (issue #13): it obeys ``x-should-retry: false`` before its own rules, which would
retry 409 and 429 and every 5xx."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import openai
import pytest

from gateway.store.base import BudgetLimit
from tests.conftest import FAST_MODEL, GatewayHandle, SandboxHandle

_POSTS = re.compile(
    r'^gateway_http_requests_total\{[^}]*method="POST"[^}]*route="/v1/videos"[^}]*\} (\S+)$', re.M
)


def creates(gateway: GatewayHandle) -> int:
    text = gateway.http.get("/metrics").text
    return int(sum(float(value) for value in _POSTS.findall(text)))


def sdk(gateway: GatewayHandle, key: str) -> openai.OpenAI:
    """The SDK as users run it: its default of two retries on."""
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=2)
    gateway.clients.append(client)
    return client


def over_budget(gateway: GatewayHandle, sandbox: SandboxHandle, key: str) -> Callable[[], Any]:
    team = gateway.server.call(gateway.store.team_by_name("team-retry"))
    gateway.server.call(gateway.store.set_limit(BudgetLimit("team", team.id, "day", 1), 0))
    return lambda: sdk(gateway, key).videos.create(model=FAST_MODEL, prompt="p", seconds="5")


def upstream_quota(gateway: GatewayHandle, sandbox: SandboxHandle, key: str) -> Callable[[], Any]:
    sandbox.fault(op="create", kind="status", status=403)
    return lambda: sdk(gateway, key).videos.create(model=FAST_MODEL, prompt="p", seconds="5")


def invalid(gateway: GatewayHandle, sandbox: SandboxHandle, key: str) -> Callable[[], Any]:
    return lambda: sdk(gateway, key).videos.create(model="no-such-model", prompt="p")


def reused_key(gateway: GatewayHandle, sandbox: SandboxHandle, key: str) -> Callable[[], Any]:
    headers = {"Idempotency-Key": "reused"}
    sdk(gateway, key).videos.create(model=FAST_MODEL, prompt="first", extra_headers=headers)
    return lambda: sdk(gateway, key).videos.create(
        model=FAST_MODEL, prompt="second", extra_headers=headers
    )


@pytest.mark.parametrize(
    ("setup", "status", "code"),
    [
        (over_budget, 429, "budget_exceeded"),
        (upstream_quota, 502, "upstream_quota_error"),
        (invalid, 400, "model_not_found"),
        (reused_key, 409, "idempotency_key_reused"),
    ],
    ids=["budget", "upstream-quota", "validation", "idempotency-reused"],
)
def test_one_request_no_retries(
    gateway: GatewayHandle, sandbox: SandboxHandle, setup: Any, status: int, code: str
) -> None:
    key = gateway.new_key("team-retry")
    call = setup(gateway, sandbox, key)
    before = creates(gateway)
    with pytest.raises(openai.APIStatusError) as info:
        call()
    assert info.value.status_code == status
    assert info.value.response.headers["x-should-retry"] == "false"
    assert info.value.code == code
    assert creates(gateway) == before + 1


def test_a_daily_budget_refusal_carries_retry_after_until_midnight(gateway: GatewayHandle) -> None:
    key = gateway.new_key("team-day")
    team = gateway.server.call(gateway.store.team_by_name("team-day"))
    gateway.server.call(gateway.store.set_limit(BudgetLimit("team", team.id, "day", 1), 0))
    answer = gateway.http.post(
        "/v1/videos",
        json={"model": FAST_MODEL, "prompt": "p"},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert answer.status_code == 429
    assert 1 <= int(answer.headers["retry-after"]) <= 86400
