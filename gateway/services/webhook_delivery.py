"""The webhook deliverer: claims due deliveries from the outbox (leases, like the job runner, so
any number of replicas share the work and a crashed one's claims are taken over), signs and
sends each, and records the attempt. At least once: a delivery is marked delivered only after a
2xx answer, so a crash between sending and recording sends it again — with the same
``webhook-id``, which receivers use to drop the duplicate.

``run`` is a thin loop around ``step`` (one claimed delivery), which tests drive directly.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable

from gateway.domain.webhooks import gives_up, retry_delay, signature_header
from gateway.metrics_webhooks import WebhookMetrics
from gateway.services.jobs import runner_id
from gateway.services.webhooks import WebhookService
from gateway.settings import WebhookSettings
from gateway.store.webhook_records import (
    EXPIRED,
    AttemptOutcome,
    WebhookAttempt,
    WebhookDelivery,
    WebhookStore,
)
from gateway.upstream.webhook_sender import SendResult, WebhookSender

log = logging.getLogger("gateway.webhooks")


class WebhookDeliverer:
    def __init__(
        self,
        store: WebhookStore,
        service: WebhookService,
        sender: WebhookSender,
        settings: WebhookSettings,
        *,
        metrics: WebhookMetrics | None = None,
        clock: Callable[[], float] = time.time,
        draw: Callable[[], float] = random.random,
        owner: str | None = None,
    ) -> None:
        self._store = store
        self._service = service
        self._sender = sender
        self._settings = settings
        self._metrics = metrics
        self._clock = clock
        self._draw = draw
        self.owner = owner or runner_id()

    async def run(self, stop: asyncio.Event) -> None:
        """Claim and send until ``stop`` is set; then let requests in flight finish (each is
        bounded by ``timeout_seconds``)."""
        in_flight: set[asyncio.Task[None]] = set()
        while not stop.is_set():
            free = self._settings.concurrency - len(in_flight)
            claimed: list[WebhookDelivery] = []
            if free > 0:
                try:
                    claimed = await self._store.claim_deliveries(
                        owner=self.owner,
                        now=self._clock(),
                        lease_seconds=self._settings.lease_seconds,
                        limit=free,
                        per_endpoint=self._settings.concurrency_per_endpoint,
                    )
                except Exception:
                    log.exception("webhook claim failed")
            for delivery in claimed:
                task = asyncio.create_task(self.step(delivery))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
            if not claimed:
                await _wait_any(stop, in_flight, self._settings.idle_seconds)
        if in_flight:
            await asyncio.wait(in_flight, timeout=self._settings.timeout_seconds + 5)

    async def step(self, delivery: WebhookDelivery) -> None:
        """Send one leased delivery and record what happened; never raises."""
        try:
            await self._deliver(delivery)
        except Exception:
            # The lease runs out and the delivery is tried again (by us or another replica).
            log.exception("webhook delivery failed", extra={"delivery_id": delivery.id})

    async def _deliver(self, delivery: WebhookDelivery) -> None:
        settings = self._settings
        max_age = settings.max_age_hours * 3600
        now = self._clock()
        if gives_up(delivery.created_at, now, max_age):
            await self._record(delivery, SendResult(0.0, error=EXPIRED), "failed", None, now)
            return
        endpoint = await self._store.get_endpoint(delivery.endpoint_id)
        if endpoint is None:
            return  # removed meanwhile, with its deliveries
        headers = signature_header(
            self._service.signing_secrets(endpoint, now), delivery.id, int(now), delivery.body
        )
        result = await self._sender.send(endpoint.url, delivery.body, headers)
        if self._metrics is not None:
            self._metrics.attempt_duration.observe(result.duration_seconds)
        if result.delivered:
            await self._record(delivery, result, "delivered", None, now)
            return
        delay = retry_delay(
            delivery.attempts + 1,
            base=settings.retry_base_seconds,
            maximum=settings.retry_max_seconds,
            draw=self._draw(),
        )
        next_at = self._clock() + delay
        outcome: AttemptOutcome = (
            "failed" if gives_up(delivery.created_at, next_at, max_age) else "retry"
        )
        await self._record(delivery, result, outcome, next_at if outcome == "retry" else None, now)

    async def _record(
        self,
        delivery: WebhookDelivery,
        result: SendResult,
        outcome: AttemptOutcome,
        next_at: float | None,
        started: float,
    ) -> None:
        recorded = await self._store.record_attempt(
            WebhookAttempt(
                delivery_id=delivery.id,
                attempt=delivery.attempts + 1,
                started_at=started,
                duration_seconds=result.duration_seconds,
                outcome=outcome,
                status_code=result.status_code,
                error=result.error,
            ),
            owner=self.owner,
            next_attempt_at=next_at,
            disable_after=self._settings.disable_after_failures,
        )
        if recorded is None:
            log.warning("webhook lease lost before recording", extra={"delivery_id": delivery.id})
            return
        self._log_attempt(delivery, result, outcome, next_at, recorded.endpoint_disabled)
        self._count_attempt(outcome, recorded.endpoint_disabled)

    def _log_attempt(
        self,
        delivery: WebhookDelivery,
        result: SendResult,
        outcome: AttemptOutcome,
        next_at: float | None,
        endpoint_disabled: bool,
    ) -> None:
        """One log line per attempt, and an error when it disabled the endpoint."""
        fields = {
            "delivery_id": delivery.id,
            "event_id": delivery.event_id,
            "endpoint_id": delivery.endpoint_id,
            "attempt": delivery.attempts + 1,
            "status_code": result.status_code,
            "error": result.error,
        }
        if outcome == "delivered":
            log.info("webhook delivered", extra=fields)
        elif outcome == "retry":
            log.info("webhook attempt failed; will retry", extra={**fields, "next_at": next_at})
        else:
            log.warning("webhook delivery given up", extra=fields)
        if endpoint_disabled:
            log.error(
                "webhook endpoint disabled after consecutive failures",
                extra={
                    "endpoint_id": delivery.endpoint_id,
                    "failures": self._settings.disable_after_failures,
                },
            )

    def _count_attempt(self, outcome: AttemptOutcome, endpoint_disabled: bool) -> None:
        metrics = self._metrics
        if metrics is None:
            return
        metrics.attempts.labels(outcome).inc()
        if outcome != "retry":
            metrics.deliveries.labels(outcome).inc()
        if endpoint_disabled:
            metrics.endpoints_disabled_total.inc()


async def _wait_any(stop: asyncio.Event, tasks: set[asyncio.Task[None]], seconds: float) -> None:
    """Sleep until ``stop`` is set, a task finishes, or ``seconds`` pass."""
    stopper = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({stopper, *tasks}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
