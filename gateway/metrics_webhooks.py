"""The webhook metrics (part of ``Metrics``: ``metrics.webhooks``), kept in their own module so
the delivery code and its gauges read as one piece. Counters count what this process sent; the
gauges (pending deliveries, the oldest one's age, disabled endpoints) are read from the database
at scrape time, so every replica reports the same truth."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from gateway.store.webhook_records import WebhookStats

ATTEMPT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
ATTEMPT_OUTCOMES = ("delivered", "retry", "failed")
DELIVERY_OUTCOMES = ("delivered", "failed")


class WebhookMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.deliveries = Counter(
            "gateway_webhook_deliveries_total",
            "Webhook deliveries finished, by outcome: delivered, or failed (given up).",
            ["outcome"],
            registry=registry,
        )
        self.attempts = Counter(
            "gateway_webhook_attempts_total",
            "Webhook requests made, by outcome: delivered, retry (will be tried again), failed.",
            ["outcome"],
            registry=registry,
        )
        self.attempt_duration = Histogram(
            "gateway_webhook_attempt_duration_seconds",
            "Time a receiver took to answer one webhook request.",
            buckets=ATTEMPT_BUCKETS,
            registry=registry,
        )
        self.endpoints_disabled_total = Counter(
            "gateway_webhook_disablements_total",
            "Endpoints disabled by this process after too many consecutive failures.",
            registry=registry,
        )
        self.pending = Gauge(
            "gateway_webhook_pending",
            "Webhook deliveries waiting to be delivered to enabled endpoints now.",
            registry=registry,
        )
        self.oldest_pending_age = Gauge(
            "gateway_webhook_oldest_pending_age_seconds",
            "Age of the oldest webhook delivery still waiting (0 when none waits).",
            registry=registry,
        )
        self.endpoints_disabled = Gauge(
            "gateway_webhook_endpoints_disabled",
            "Webhook endpoints disabled now (by an operator or after failures).",
            registry=registry,
        )
        for outcome in ATTEMPT_OUTCOMES:
            self.attempts.labels(outcome)
        for outcome in DELIVERY_OUTCOMES:
            self.deliveries.labels(outcome)

    def apply(self, stats: WebhookStats, now: float) -> None:
        """Set the database-derived gauges from a fresh snapshot."""
        self.pending.set(stats.pending)
        oldest = stats.oldest_pending_created_at
        self.oldest_pending_age.set(max(0.0, now - oldest) if oldest is not None else 0.0)
        self.endpoints_disabled.set(stats.disabled_endpoints)
