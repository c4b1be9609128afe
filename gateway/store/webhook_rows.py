"""Webhook rows as both adapters read and write them: column lists and the mapping between
rows and ``webhook_records`` (the SQL differs per dialect; the columns do not)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from gateway.store.webhook_records import (
    DeliveryStatus,
    EndpointStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)

ENDPOINT_COLUMNS = (
    "id, team_id, name, url, event_types, secret_sealed, secret_hint, created_at, updated_at,"
    " status, disabled_reason, consecutive_failures, previous_secret_sealed,"
    " previous_secret_expires_at"
)
DELIVERY_COLUMNS = (
    "d.id, d.event_id, d.endpoint_id, ev.type, ev.video_id, ev.body, d.status, d.attempts,"
    " d.created_at, d.next_attempt_at, d.delivered_at, d.last_status_code, d.last_error,"
    " d.lease_owner, d.locked_until"
)
SELECT_ENDPOINT = f"SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints"  # noqa: S608
SELECT_DELIVERY = (
    f"SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d"  # noqa: S608
    " JOIN webhook_events ev ON ev.id = d.event_id"
)
ATTEMPT_COLUMNS = "delivery_id, attempt, started_at, duration_seconds, outcome, status_code, error"
# What a delivery becomes after an attempt with this outcome.
_DELIVERY_AFTER: dict[str, DeliveryStatus] = {
    "delivered": "delivered",
    "retry": "pending",
    "failed": "failed",
}


def endpoint_from_row(row: Iterable[Any]) -> WebhookEndpoint:
    values = list(row)
    values[4] = tuple(t for t in str(values[4]).split(",") if t)
    return WebhookEndpoint(*values)


def delivery_from_row(row: Iterable[Any]) -> WebhookDelivery:
    values = list(row)
    values[5] = values[5].encode() if isinstance(values[5], str) else bytes(values[5])
    return WebhookDelivery(*values)


def attempt_from_row(row: Iterable[Any]) -> WebhookAttempt:
    return WebhookAttempt(*list(row))


def attempt_row(attempt: WebhookAttempt) -> tuple[Any, ...]:
    """The attempt's row, in ``ATTEMPT_COLUMNS`` order."""
    return (
        attempt.delivery_id,
        attempt.attempt,
        attempt.started_at,
        attempt.duration_seconds,
        attempt.outcome,
        attempt.status_code,
        attempt.error,
    )


def delivery_after(
    attempt: WebhookAttempt, next_attempt_at: float | None
) -> tuple[DeliveryStatus, float | None, float | None]:
    """The delivery's status, next attempt time and delivery time after ``attempt``, for both
    adapters: a retry stays pending until ``next_attempt_at``; a delivered one records when the
    receiver's answer arrived."""
    status = _DELIVERY_AFTER[attempt.outcome]
    finished_at = attempt.started_at + attempt.duration_seconds
    return (
        status,
        next_attempt_at if status == "pending" else None,
        finished_at if status == "delivered" else None,
    )


def endpoint_row(endpoint: WebhookEndpoint) -> tuple[Any, ...]:
    return (
        endpoint.id,
        endpoint.team_id,
        endpoint.name,
        endpoint.url,
        ",".join(endpoint.event_types),
        endpoint.secret_sealed,
        endpoint.secret_hint,
        endpoint.created_at,
        endpoint.updated_at,
        endpoint.status,
        endpoint.disabled_reason,
        endpoint.consecutive_failures,
        endpoint.previous_secret_sealed,
        endpoint.previous_secret_expires_at,
    )


def endpoint_changes(
    *,
    now: int,
    name: str | None,
    url: str | None,
    event_types: tuple[str, ...] | None,
    status: EndpointStatus | None,
    disabled_reason: str | None,
) -> dict[str, Any]:
    """The columns an endpoint update writes, for both adapters: only what is given; a reason
    only while disabled; enabling resets the consecutive failure count."""
    changes: dict[str, Any] = {"updated_at": now}
    if name is not None:
        changes["name"] = name
    if url is not None:
        changes["url"] = url
    if event_types is not None:
        changes["event_types"] = ",".join(event_types)
    if status is not None:
        changes["status"] = status
        changes["disabled_reason"] = disabled_reason if status == "disabled" else None
        if status == "enabled":
            changes["consecutive_failures"] = 0
    return changes
