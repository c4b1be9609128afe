"""Webhook delivery end to end: a real gateway, the sandbox upstream and a real receiver on
127.0.0.1. Every event is verified by the official ``openai`` SDK and by ``standardwebhooks``;
retry timings are shortened by settings and every wait is a condition with a deadline.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from gateway.app import create_app
from gateway.domain.webhooks import signature_header
from tests.conftest import ADMIN_TOKEN, FAST_MODEL, GatewayHandle, SandboxHandle, wait_for
from tests.servers import ServerThread
from tests.webhooks_support import (
    Received,
    Receiver,
    start_receiver,
    stop_receiver,
    verify_both,
    webhook_settings,
)

BOTH = ["video.completed", "video.failed"]


class Setup:
    def __init__(self, tmp_path: Path, sandbox: SandboxHandle) -> None:
        self.tmp_path = tmp_path
        self.sandbox = sandbox
        self.started: list[tuple[Any, Any]] = []

    def gateway(self, **sections: dict[str, Any]) -> GatewayHandle:
        settings = webhook_settings(self.tmp_path, self.sandbox.url, **sections)
        server = ServerThread(create_app(settings)).start()
        handle = GatewayHandle(server, settings)
        self.started.append(("gateway", handle))
        return handle

    def receiver(self, status: int | None = 200) -> tuple[Receiver, str]:
        receiver, server = start_receiver(status)
        self.started.append(("receiver", (receiver, server)))
        return receiver, f"{server.url}/hooks"

    def close(self) -> None:
        for kind, item in reversed(self.started):
            if kind == "gateway":
                item.close()
                item.server.stop()
            else:
                stop_receiver(*item)


@pytest.fixture
def setup(tmp_path: Path, sandbox: SandboxHandle) -> Iterator[Setup]:
    made = Setup(tmp_path, sandbox)
    yield made
    made.close()


def deliveries(gateway: GatewayHandle, endpoint_id: str) -> list[dict[str, Any]]:
    resp = gateway.admin("GET", f"/admin/webhooks/{endpoint_id}/deliveries")
    assert resp.status_code == 200, resp.text
    data: list[dict[str, Any]] = resp.json()["data"]
    return data


def all_delivered(gateway: GatewayHandle, endpoint_id: str, count: int) -> bool:
    found = deliveries(gateway, endpoint_id)
    return len(found) == count and all(d["status"] == "delivered" for d in found)


def metric(gateway: GatewayHandle, line_start: str) -> float:
    text = gateway.http.get("/metrics").text
    for line in text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no metric line {line_start!r}")


def test_completed_failed_and_cache_hit_videos_produce_exactly_their_events(
    setup: Setup, sandbox: SandboxHandle
) -> None:
    gateway = setup.gateway()
    receiver, url = setup.receiver(200)
    client = gateway.client(gateway.new_key("team-hooks"))
    hook = client.webhooks.create(name="main", url=url, event_types=BOTH)

    done = client.videos.create_and_poll(
        model=FAST_MODEL, prompt="Completes", poll_interval_ms=20, extra_body={"seed": 11}
    )
    assert done.status == "completed"
    sandbox.fault(op="create", kind="fail_job", error_code="OutputVideoSensitiveContentDetected")
    failed = client.videos.create_and_poll(model=FAST_MODEL, prompt="Fails", poll_interval_ms=20)
    assert failed.status == "failed"
    hit = client.videos.create(model=FAST_MODEL, prompt="Completes", extra_body={"seed": 11})
    assert hit.status == "completed" and hit.id != done.id

    wait_for(lambda: all_delivered(gateway, hook.id, 3))
    received = receiver.snapshot()
    events = [verify_both(r, hook.signing_secret) for r in received]
    assert sorted((e["type"], e["data"]["id"]) for e in events) == sorted(
        [
            ("video.completed", done.id),
            ("video.failed", failed.id),
            ("video.completed", hit.id),
        ]
    )
    assert len({e["id"] for e in events}) == 3 and all(e["id"].startswith("evt_") for e in events)
    by_event = {d["event_id"]: d for d in deliveries(gateway, hook.id)}
    for request in received:
        assert request.headers["content-type"] == "application/json"
        assert request.headers["webhook-id"] == by_event[request.event["id"]]["id"]
        assert request.headers["user-agent"].startswith("seedance-gateway-webhooks/")
    assert metric(gateway, 'gateway_webhook_deliveries_total{outcome="delivered"}') == 3
    assert metric(gateway, "gateway_webhook_pending") == 0


def test_a_receiver_down_for_a_while_gets_every_event_once_it_recovers(setup: Setup) -> None:
    gateway = setup.gateway()
    receiver, url = setup.receiver(500)
    client = gateway.client(gateway.new_key("team-down"))
    hook = client.webhooks.create(name="flaky", url=url, event_types=BOTH)
    videos = [
        client.videos.create_and_poll(model=FAST_MODEL, prompt=f"Down {n}", poll_interval_ms=20)
        for n in range(2)
    ]

    def failed_thrice() -> bool:
        found = deliveries(gateway, hook.id)
        return len(found) == 2 and all(d["attempts"] >= 3 for d in found)

    wait_for(failed_thrice)
    assert metric(gateway, "gateway_webhook_pending") == 2
    assert metric(gateway, "gateway_webhook_oldest_pending_age_seconds") >= 0
    receiver.status = 200
    wait_for(lambda: all_delivered(gateway, hook.id, 2))

    ok = receiver.answered(200)
    events = [verify_both(r, hook.signing_secret) for r in ok]
    assert sorted(e["data"]["id"] for e in events) == sorted(v.id for v in videos)
    assert len(ok) == 2  # each event succeeded once
    # The failed tries carried the same events, under the same webhook-id.
    for request in receiver.answered(500):
        match = next(r for r in ok if r.event["id"] == request.event["id"])
        assert request.headers["webhook-id"] == match.headers["webhook-id"]
        assert request.body == match.body
    for delivery in deliveries(gateway, hook.id):
        log = delivery["attempt_log"]
        assert [a["outcome"] for a in log[:-1]] == ["retry"] * (len(log) - 1)
        assert log[-1]["outcome"] == "delivered" and log[-1]["status_code"] == 200
        assert all(a["status_code"] == 500 for a in log[:-1])
        starts = [a["started_at"] for a in log]
        gaps = [b - a for a, b in itertools.pairwise(starts)]
        assert all(gap >= 0.025 for gap in gaps)  # never sooner than half the first delay

    # Re-sending a delivered event sends the same event again.
    first = deliveries(gateway, hook.id)[0]
    resent = gateway.admin("POST", f"/admin/webhooks/{hook.id}/deliveries/{first['id']}/resend")
    assert resent.status_code == 200, resent.text
    wait_for(lambda: len(receiver.answered(200)) == 3)
    again = receiver.answered(200)[-1]
    assert verify_both(again, hook.signing_secret)["id"] == first["event_id"]
    assert again.headers["webhook-id"] == first["id"]


def test_a_receiver_that_never_answers_is_disabled_after_the_threshold(setup: Setup) -> None:
    gateway = setup.gateway(
        webhooks={"timeout_seconds": 0.3, "lease_seconds": 5.0, "disable_after_failures": 3}
    )
    receiver, url = setup.receiver(None)
    client = gateway.client(gateway.new_key("team-silent"))
    hook = client.webhooks.create(name="silent", url=url, event_types=BOTH)
    client.videos.create_and_poll(model=FAST_MODEL, prompt="Nobody listens", poll_interval_ms=20)

    def disabled() -> bool:
        return bool(client.webhooks.retrieve(hook.id).to_dict()["status"] == "disabled")

    wait_for(disabled)
    endpoint = client.webhooks.retrieve(hook.id).to_dict()
    assert endpoint["disabled_reason"] == "too_many_failures"
    [delivery] = deliveries(gateway, hook.id)
    assert delivery["status"] == "pending" and delivery["attempts"] == 3
    assert {a["error"] for a in delivery["attempt_log"]} == {"timeout"}
    assert metric(gateway, "gateway_webhook_endpoints_disabled") == 1
    assert metric(gateway, "gateway_webhook_disablements_total") == 1
    assert len(receiver.snapshot()) == 3
    # The team re-enables it (an extra field on update) once its receiver works again.
    receiver.status = 200
    client.webhooks.update(hook.id, extra_body={"status": "enabled"})
    wait_for(lambda: all_delivered(gateway, hook.id, 1))
    verify_both(receiver.answered(200)[0], hook.signing_secret)


def rejected_by_both(request: Received, secret: str) -> None:
    client = openai.OpenAI(api_key="unused", base_url="http://127.0.0.1:9/v1")
    try:
        with pytest.raises(openai.InvalidWebhookSignatureError):
            client.webhooks.unwrap(request.body, request.headers, secret=secret)
    finally:
        client.close()
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(request.body, request.headers)


def test_tampered_body_wrong_secret_and_old_timestamp_fail_verification(setup: Setup) -> None:
    gateway = setup.gateway()
    receiver, url = setup.receiver(200)
    client = gateway.client(gateway.new_key("team-tamper"))
    hook = client.webhooks.create(name="t", url=url, event_types=BOTH)
    other = client.webhooks.create(name="other", url=url, event_types=["video.failed"])
    client.videos.create_and_poll(model=FAST_MODEL, prompt="Sign me", poll_interval_ms=20)
    wait_for(lambda: all_delivered(gateway, hook.id, 1))
    [genuine] = receiver.snapshot()
    verify_both(genuine, hook.signing_secret)

    tampered = Received(
        genuine.body.replace(b"video.completed", b"video.failed"), genuine.headers, 200
    )
    rejected_by_both(tampered, hook.signing_secret)
    rejected_by_both(genuine, other.signing_secret)
    swapped_id = Received(genuine.body, {**genuine.headers, "webhook-id": "wh_other"}, 200)
    rejected_by_both(swapped_id, hook.signing_secret)

    # Correctly signed, but an hour old (a replay): both verifiers refuse it too.
    message_id = genuine.headers["webhook-id"]
    now = int(time.time())
    fresh = signature_header([hook.signing_secret], message_id, now, genuine.body)
    verify_both(Received(genuine.body, fresh, 200), hook.signing_secret)
    stale = signature_header([hook.signing_secret], message_id, now - 3600, genuine.body)
    rejected_by_both(Received(genuine.body, stale, 200), hook.signing_secret)


def test_redirects_are_not_followed(setup: Setup) -> None:
    gateway = setup.gateway(webhooks={"disable_after_failures": 100})
    receiver, url = setup.receiver(307)
    client = gateway.client(gateway.new_key("team-redirect"))
    hook = client.webhooks.create(name="r", url=url, event_types=BOTH)
    client.videos.create_and_poll(model=FAST_MODEL, prompt="Redirected", poll_interval_ms=20)

    def retried() -> bool:
        found = deliveries(gateway, hook.id)
        return len(found) == 1 and found[0]["attempts"] >= 2

    wait_for(retried)
    [delivery] = deliveries(gateway, hook.id)
    assert delivery["status"] == "pending" and delivery["last_status_code"] == 307
    assert all(r.status == 307 for r in receiver.snapshot())


def test_deliveries_are_only_visible_to_the_admin(setup: Setup) -> None:
    gateway = setup.gateway()
    _, url = setup.receiver(200)
    client = gateway.client(gateway.new_key("team-x"))
    hook = client.webhooks.create(name="x", url=url, event_types=BOTH)
    no_token = httpx.get(f"{gateway.url}/admin/webhooks/{hook.id}/deliveries")
    assert no_token.status_code == 401
    assert gateway.admin("GET", "/admin/webhooks/we_missing/deliveries").status_code == 404
    listed = gateway.http.get(
        "/admin/webhooks",
        params={"team": "team-x"},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    ).json()
    assert [e["id"] for e in listed["data"]] == [hook.id]


def test_a_video_joined_to_a_running_identical_one_gets_its_own_event(
    setup: Setup, sandbox: SandboxHandle
) -> None:
    sandbox.configure(queue_seconds=0.5)
    gateway = setup.gateway()
    receiver, url = setup.receiver(200)
    key = gateway.new_key("team-join")
    client = gateway.client(key)
    hook = client.webhooks.create(name="j", url=url, event_types=BOTH)
    body = {"model": FAST_MODEL, "prompt": "Joined", "seed": 77}
    headers = {"Authorization": f"Bearer {key}"}
    leader = gateway.http.post("/v1/videos", json=body, headers=headers)
    follower = gateway.http.post("/v1/videos", json=body, headers=headers)
    assert follower.headers["x-gateway-cache"] == "coalesced"
    wait_for(lambda: all_delivered(gateway, hook.id, 2))
    events = [verify_both(r, hook.signing_secret) for r in receiver.snapshot()]
    assert sorted((e["type"], e["data"]["id"]) for e in events) == sorted(
        ("video.completed", v.json()["id"]) for v in (leader, follower)
    )
