"""``Idempotency-Key`` on POST /v1/videos (issue #13): a retry answers the same video and creates
nothing, a different body is a 409, concurrent requests create one job, and the official SDK's
retries (with the key as an extra header) are safe even when an answer is lost."""

from __future__ import annotations

from typing import Any

import openai

from tests.conftest import FAST_MODEL, GatewayHandle, SandboxHandle, wait_for
from tests.e2e.lost_answers import DroppingProxy
from tests.raw_sql import fetch_rows

BODY = {"model": FAST_MODEL, "prompt": "A paper boat", "seconds": "5"}


def post(gateway: GatewayHandle, key: str, body: dict[str, Any], idem: str | None):
    headers = {"Authorization": f"Bearer {key}"}
    if idem is not None:
        headers["Idempotency-Key"] = idem
    return gateway.http.post("/v1/videos", json=body, headers=headers)


def test_sequential_replay_answers_the_same_video_and_creates_nothing(
    gateway: GatewayHandle, sandbox: SandboxHandle
) -> None:
    key = gateway.new_key("team-idem")
    first = post(gateway, key, BODY, "order-1")
    assert first.status_code == 200
    # The same request spelt differently (an alias, a default made explicit) is the same body.
    again = post(gateway, key, {**BODY, "size": "1280x720"}, "order-1")
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["x-gateway-cost-usd"] == first.headers["x-gateway-cost-usd"]
    assert sandbox.stats()["create"] == 1
    # Scoped to the calling key: another key with the same Idempotency-Key is another request.
    other = post(gateway, gateway.new_key("team-idem"), BODY, "order-1")
    assert other.json()["id"] != first.json()["id"]
    assert sandbox.stats()["create"] == 2
    assert gateway.admin("GET", "/admin/audit").json()["problems"] == []


def test_a_different_body_with_the_same_key_is_refused(
    gateway: GatewayHandle, sandbox: SandboxHandle
) -> None:
    key = gateway.new_key()
    assert post(gateway, key, BODY, "k-2").status_code == 200
    reused = post(gateway, key, {**BODY, "prompt": "Another prompt"}, "k-2")
    assert reused.status_code == 409
    assert reused.headers["x-should-retry"] == "false"
    assert reused.json()["error"]["code"] == "idempotency_key_reused"
    assert sandbox.stats()["create"] == 1


def test_failed_validation_and_refused_budgets_are_not_remembered(
    gateway: GatewayHandle, sandbox: SandboxHandle
) -> None:
    key = gateway.new_key()
    bad = post(gateway, key, {**BODY, "seconds": "99"}, "k-3")
    assert bad.status_code == 400
    assert bad.headers["x-should-retry"] == "false"
    assert post(gateway, key, BODY, "k-3").status_code == 200
    assert post(gateway, key, BODY, "x" * 256).status_code == 400


def test_upstream_refusal_frees_the_key_for_a_retry(
    gateway: GatewayHandle, sandbox: SandboxHandle
) -> None:
    """Nothing was created and nothing charged: the SDK's own retry of a 502 may try again."""
    key = gateway.new_key()
    sandbox.fault(op="create", kind="status", status=503, times=1)
    assert post(gateway, key, BODY, "k-4").status_code == 502
    retried = post(gateway, key, BODY, "k-4")
    assert retried.status_code == 200
    assert sandbox.stats()["create_accepted"] == 1


def test_sdk_retry_after_a_dropped_answer_gets_the_same_video(
    gateway: GatewayHandle, sandbox: SandboxHandle
) -> None:
    """The SDK's own ``idempotency_key=`` sends nothing for OpenAI; the extra header does."""
    key = gateway.new_key("team-sdk")
    port = int(gateway.url.rsplit(":", 1)[1])
    with DroppingProxy(port, drops=1) as proxy:
        client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=key, max_retries=2)
        video = client.videos.create(
            model=FAST_MODEL,
            prompt="A paper boat",
            seconds="5",
            extra_headers={"Idempotency-Key": "sdk-order-7"},
        )
        client.close()
        assert proxy.connections == 2  # the answer was lost once; the SDK retried
    assert sandbox.stats()["create"] == 1
    # The SDK numbered its retry (x-stainless-retry-count: 1): counted and logged.
    metrics = gateway.http.get("/metrics").text
    assert "gateway_create_retries_total 1.0" in metrics
    assert 'gateway_idempotency_keys_total{outcome="replayed"} 1.0' in metrics
    listed = gateway.http.get("/v1/videos", headers={"Authorization": f"Bearer {key}"}).json()
    assert [v["id"] for v in listed["data"]] == [video.id]
    wait_for(
        lambda: gateway.job(video.id).status == "completed",
        timeout=30,
    )
    team = gateway.server.call(gateway.store.team_by_name("team-sdk"))
    rows = gateway.server.call(
        fetch_rows(
            gateway.store,
            "SELECT COUNT(*) FROM ledger WHERE kind = 'charge' AND scope = 'team' AND scope_id = ?",
            team.id,
        )
    )
    assert rows[0][0] == 1
    assert gateway.admin("GET", "/admin/audit").json()["problems"] == []


def test_the_sdk_option_sends_no_idempotency_header() -> None:
    """Why the docs say ``extra_headers``: OpenAI's client sets no idempotency header name."""
    client = openai.OpenAI(api_key="sk-unused", base_url="http://127.0.0.1:9/v1")
    assert client._idempotency_header is None
    client.close()
