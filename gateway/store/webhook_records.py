"""The webhook part of the persistence port: endpoint, delivery and attempt records and the
``WebhookStore`` protocol both database adapters implement (``Store`` includes it).

Events themselves are written by the adapters inside the transactions that finish jobs (the
outbox); this protocol covers managing endpoints and delivering what the outbox holds.
Signing secrets appear here only encrypted (``secret_sealed``): the store never sees plain text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

EndpointStatus = Literal["enabled", "disabled"]
DeliveryStatus = Literal["pending", "delivered", "failed"]
AttemptOutcome = Literal["delivered", "retry", "failed"]
# The error of a delivery given up unsent because its window closed: not the receiver's failure.
EXPIRED = "expired"
DISABLED_REASON = "too_many_failures"


@dataclass(frozen=True, slots=True)
class WebhookEndpoint:
    id: str
    team_id: str
    name: str
    url: str
    event_types: tuple[str, ...]
    secret_sealed: str
    secret_hint: str
    created_at: int
    updated_at: int
    status: EndpointStatus = "enabled"
    disabled_reason: str | None = None
    consecutive_failures: int = 0
    # After a rotation that keeps the old secret for a while: deliveries carry both signatures.
    previous_secret_sealed: str | None = None
    previous_secret_expires_at: float | None = None


@dataclass(frozen=True, slots=True)
class WebhookDelivery:
    """One event on its way to one endpoint. ``id`` is the ``webhook-id`` header: the same on
    every retry, so receivers can drop duplicates."""

    id: str
    event_id: str
    endpoint_id: str
    event_type: str
    video_id: str
    body: bytes
    status: DeliveryStatus
    attempts: int
    created_at: float
    next_attempt_at: float | None
    delivered_at: float | None = None
    last_status_code: int | None = None
    last_error: str | None = None
    lease_owner: str | None = None
    locked_until: float | None = None


@dataclass(frozen=True, slots=True)
class WebhookAttempt:
    delivery_id: str
    attempt: int
    started_at: float
    duration_seconds: float
    outcome: AttemptOutcome
    status_code: int | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """What recording an attempt did: the delivery's new state, and whether this attempt's
    failure disabled the endpoint (so it is logged and counted once)."""

    delivery: WebhookDelivery
    endpoint_disabled: bool


@dataclass(frozen=True, slots=True)
class WebhookStats:
    """For the gauges: deliveries waiting (on enabled endpoints), the oldest one's creation time,
    and how many endpoints are disabled."""

    pending: int
    oldest_pending_created_at: float | None
    disabled_endpoints: int


class WebhookStore(Protocol):
    async def insert_endpoint(self, endpoint: WebhookEndpoint) -> None: ...

    async def get_endpoint(
        self, endpoint_id: str, team_id: str | None = None
    ) -> WebhookEndpoint | None: ...

    async def list_endpoints(
        self, team_id: str | None, *, after: str | None = None, limit: int = 100
    ) -> tuple[list[WebhookEndpoint], bool]:
        """A page of endpoints ordered by id (newest last), and whether more follow."""

    async def count_endpoints(self, team_id: str) -> int: ...

    async def update_endpoint(
        self,
        endpoint_id: str,
        *,
        now: int,
        name: str | None = None,
        url: str | None = None,
        event_types: tuple[str, ...] | None = None,
        status: EndpointStatus | None = None,
        disabled_reason: str | None = None,
    ) -> WebhookEndpoint | None:
        """Change what is given; enabling resets the consecutive failure count."""

    async def replace_secret(
        self,
        endpoint_id: str,
        *,
        sealed: str,
        hint: str,
        now: int,
        previous_sealed: str | None,
        previous_expires_at: float | None,
    ) -> WebhookEndpoint | None: ...

    async def delete_endpoint(self, endpoint_id: str) -> bool:
        """Remove the endpoint with its deliveries and their attempts."""

    async def claim_deliveries(
        self, *, owner: str, now: float, lease_seconds: float, limit: int, per_endpoint: int
    ) -> list[WebhookDelivery]:
        """Lease up to ``limit`` due deliveries of enabled endpoints, never more than
        ``per_endpoint`` leased at once per endpoint (across every replica)."""

    async def record_attempt(
        self,
        attempt: WebhookAttempt,
        *,
        owner: str,
        next_attempt_at: float | None,
        disable_after: int,
    ) -> AttemptResult | None:
        """In one transaction, only while ``owner`` holds the lease: log the attempt, move the
        delivery on (delivered, retry at ``next_attempt_at``, or failed for good) and keep the
        endpoint's consecutive failures, disabling it at ``disable_after``. None when the lease
        was lost (the attempt is then not recorded)."""

    async def list_deliveries(
        self, endpoint_id: str, *, limit: int = 100
    ) -> list[tuple[WebhookDelivery, list[WebhookAttempt]]]:
        """The endpoint's newest deliveries with their attempts (oldest attempt first)."""

    async def resend_delivery(
        self, endpoint_id: str, delivery_id: str, now: float
    ) -> WebhookDelivery | None:
        """Queue a delivery again (same event, same ``webhook-id``), due now."""

    async def webhook_stats(self) -> WebhookStats: ...
