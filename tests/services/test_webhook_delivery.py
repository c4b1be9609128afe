"""The deliverer's one step, on a real SQLite store with a recording fake sender and a fake
clock: success, the retry schedule, giving up at ``max_age_hours`` (unsent when already too
old), a lost lease, signatures with a kept old secret, and the metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from standardwebhooks import Webhook

from gateway.metrics_webhooks import WebhookMetrics
from gateway.services.webhook_delivery import WebhookDeliverer
from gateway.services.webhook_secrets import SecretBox
from gateway.services.webhooks import WebhookService
from gateway.settings import WebhookSettings
from gateway.store.base import Store
from gateway.store.opening import open_store
from gateway.store.webhook_records import WebhookDelivery
from gateway.upstream.webhook_sender import SendResult
from tests.store.test_money_contract import T, admit, run_to_completion

SETTINGS = WebhookSettings(
    retry_base_seconds=10.0, retry_max_seconds=40.0, max_age_hours=1.0, disable_after_failures=50
)


@dataclass
class FakeSender:
    answers: list[SendResult] = field(default_factory=list)
    sent: list[tuple[str, bytes, dict[str, str]]] = field(default_factory=list)

    async def send(self, url: str, body: bytes, headers: Mapping[str, str]) -> SendResult:
        self.sent.append((url, body, dict(headers)))
        return self.answers.pop(0) if self.answers else SendResult(0.01, status_code=200)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Rig:
    store: Store
    service: WebhookService
    sender: FakeSender
    clock: Clock
    deliverer: WebhookDeliverer
    metrics: WebhookMetrics
    registry: CollectorRegistry
    endpoint_id: str
    secret: str

    async def claim(self) -> list[WebhookDelivery]:
        return await self.store.claim_deliveries(
            owner=self.deliverer.owner,
            now=self.clock.now,
            lease_seconds=60,
            limit=10,
            per_endpoint=10,
        )

    def count(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    store = await open_store(f"sqlite:///{tmp_path}/hooks.db")
    await store.migrate()
    clock = Clock(T)
    box = SecretBox([SecretBox.new_key()])
    sender = FakeSender()
    service = WebhookService(
        store,
        box,
        SETTINGS,
        allow_private=True,
        sender=sender,
        clock=clock,  # type: ignore[arg-type]
    )
    registry = CollectorRegistry()
    metrics = WebhookMetrics(registry)
    deliverer = WebhookDeliverer(
        store,
        service,
        sender,
        SETTINGS,
        metrics=metrics,
        clock=clock,
        draw=lambda: 1.0,  # type: ignore[arg-type]
    )
    team = await store.create_team("acme", int(T))
    key = await store.create_key(team_id=team.id, name="k", key_hash="h", prefix="gw-x", now=int(T))
    endpoint, secret = await service.create(
        team.id, name="e", url="http://127.0.0.1:9/h", event_types=["video.completed"]
    )
    admitted = await admit(store, key)
    await run_to_completion(store, admitted.job, now=T + 1)
    clock.now = T + 2  # the event (queued at T + 1) is due
    try:
        yield Rig(store, service, sender, clock, deliverer, metrics, registry, endpoint.id, secret)
    finally:
        await store.close()


async def test_a_delivered_event_is_signed_and_recorded(rig: Rig) -> None:
    [delivery] = await rig.claim()
    await rig.deliverer.step(delivery)
    [(url, body, headers)] = rig.sender.sent
    assert url == "http://127.0.0.1:9/h" and body == delivery.body
    assert headers["webhook-id"] == delivery.id and headers["webhook-timestamp"] == str(int(T + 2))
    [(done, attempts)] = await rig.store.list_deliveries(rig.endpoint_id)
    assert done.status == "delivered" and [a.outcome for a in attempts] == ["delivered"]
    assert rig.count("gateway_webhook_deliveries_total", outcome="delivered") == 1


async def test_failures_follow_the_schedule_then_give_up_at_max_age(rig: Rig) -> None:
    rig.sender.answers = [SendResult(0.01, status_code=503)] * 100
    expected_gaps = [10.0, 20.0, 40.0, 40.0]  # draw=1.0: the top of each jittered delay
    for gap in expected_gaps:
        [delivery] = await rig.claim()
        await rig.deliverer.step(delivery)
        [(current, _)] = await rig.store.list_deliveries(rig.endpoint_id)
        assert current.status == "pending"
        assert current.next_attempt_at == pytest.approx(rig.clock.now + gap)
        rig.clock.now = current.next_attempt_at
    # Jump near the end of the hour: the next try would fall past it, so this one is the last.
    rig.clock.now = T + 1 + 3600 - 5
    [delivery] = await rig.claim()
    await rig.deliverer.step(delivery)
    [(current, attempts)] = await rig.store.list_deliveries(rig.endpoint_id)
    assert current.status == "failed" and current.next_attempt_at is None
    assert [a.outcome for a in attempts] == ["retry"] * 4 + ["failed"]
    assert rig.count("gateway_webhook_attempts_total", outcome="retry") == 4
    assert rig.count("gateway_webhook_deliveries_total", outcome="failed") == 1


async def test_a_delivery_already_past_its_window_is_given_up_unsent(rig: Rig) -> None:
    rig.clock.now = T + 1 + 3600 + 1
    [delivery] = await rig.claim()
    await rig.deliverer.step(delivery)
    assert rig.sender.sent == []
    [(current, [attempt])] = await rig.store.list_deliveries(rig.endpoint_id)
    assert current.status == "failed" and attempt.error == "expired"
    endpoint = await rig.store.get_endpoint(rig.endpoint_id)
    assert endpoint is not None and endpoint.consecutive_failures == 0  # not the receiver's fault


async def test_a_lost_lease_records_nothing(rig: Rig) -> None:
    [delivery] = await rig.claim()
    rig.clock.now += 120  # the lease ran out; another process takes the delivery over
    [taken] = await rig.store.claim_deliveries(
        owner="other", now=rig.clock.now, lease_seconds=60, limit=10, per_endpoint=10
    )
    assert taken.id == delivery.id
    await rig.deliverer.step(delivery)
    [(current, attempts)] = await rig.store.list_deliveries(rig.endpoint_id)
    assert current.status == "pending" and current.lease_owner == "other" and attempts == []


async def test_during_a_kept_rotation_both_secrets_sign(rig: Rig) -> None:
    _, new_secret = await rig.service.rotate_secret(rig.endpoint_id, None, keep_old=True)
    [delivery] = await rig.claim()
    await rig.deliverer.step(delivery)
    [(_, body, headers)] = rig.sender.sent
    assert len(headers["webhook-signature"].split(" ")) == 2
    signatures = set(headers["webhook-signature"].split(" "))
    stamp = datetime.fromtimestamp(int(headers["webhook-timestamp"]), tz=UTC)
    for secret in (rig.secret, new_secret):  # computed by the reference implementation
        assert Webhook(secret).sign(headers["webhook-id"], stamp, body.decode()) in signatures
