"""Webhook endpoints as use cases: register, list, change, rotate the secret, test, remove, and
look at or re-send deliveries — for a team (``team_id`` given: OpenAI's ``/v1/webhook_endpoints``)
or for an operator (``team_id`` None: ``/admin/webhooks`` and the CLI).

A signing secret leaves this module in plain text exactly twice: in the answer to a create or a
rotation. It is stored sealed (``SecretBox``) and never logged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from gateway.domain.webhooks import (
    check_event_types,
    check_name,
    check_url_shape,
    event_body,
    secret_hint,
    signature_header,
)
from gateway.errors import Conflict, InvalidRequest, NotFound, ServiceUnavailable
from gateway.ids import new_id
from gateway.services.webhook_secrets import SecretBox, SecretKeyError
from gateway.settings import WebhookSettings
from gateway.store.webhook_records import (
    EndpointStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookStore,
)
from gateway.upstream.outbound import OutboundPolicy, OutboundRefused
from gateway.upstream.webhook_sender import WebhookSender

log = logging.getLogger("gateway.webhooks")
OLD_SECRET_GRACE_SECONDS = 24 * 3600


@dataclass(frozen=True, slots=True)
class TestResult:
    endpoint_id: str
    event_type: str
    status_code: int


class WebhookService:
    def __init__(
        self,
        store: WebhookStore,
        box: SecretBox | None,
        settings: WebhookSettings,
        *,
        allow_private: bool,
        sender: WebhookSender | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._box = box
        self._settings = settings
        self._policy = OutboundPolicy(allow_private=allow_private)
        self._sender = sender
        self._clock = clock

    def _secrets(self) -> SecretBox:
        if self._box is None:
            raise ServiceUnavailable(
                "Webhooks are not configured on this gateway (GATEWAY_WEBHOOK_SECRET_KEY is unset).",
                code="webhooks_not_configured",
            )
        return self._box

    async def _checked_url(self, url: object) -> str:
        checked = check_url_shape(url)
        try:
            await self._policy.check_url(checked)
        except OutboundRefused as exc:
            raise InvalidRequest(
                f"The webhook URL is not allowed: {exc.host} ({exc.reason}).",
                param="url",
                code="url_not_allowed",
            ) from None
        return checked

    async def create(
        self, team_id: str, *, name: object, url: object, event_types: object
    ) -> tuple[WebhookEndpoint, str]:
        box = self._secrets()
        checked_name = check_name(name)
        types = check_event_types(event_types)
        checked_url = await self._checked_url(url)
        limit = self._settings.max_endpoints_per_team
        if await self._store.count_endpoints(team_id) >= limit:
            raise Conflict(
                f"This team already has {limit} webhook endpoints (webhooks.max_endpoints_per_team).",
                code="too_many_endpoints",
            )
        now = self._clock()
        secret = box.new_secret()
        endpoint = WebhookEndpoint(
            id=new_id("we", now=now),
            team_id=team_id,
            name=checked_name,
            url=checked_url,
            event_types=types,
            secret_sealed=box.seal(secret),
            secret_hint=secret_hint(secret),
            created_at=int(now),
            updated_at=int(now),
        )
        await self._store.insert_endpoint(endpoint)
        log.info("webhook endpoint created", extra={"endpoint_id": endpoint.id, "team_id": team_id})
        return endpoint, secret

    async def get(self, endpoint_id: str, team_id: str | None) -> WebhookEndpoint:
        endpoint = await self._store.get_endpoint(endpoint_id, team_id)
        if endpoint is None:
            raise NotFound(f"No webhook endpoint found with id '{endpoint_id}'.")
        return endpoint

    async def list_endpoints(
        self, team_id: str | None, *, after: str | None = None, limit: int = 20
    ) -> tuple[list[WebhookEndpoint], bool]:
        if not 1 <= limit <= 100:
            raise InvalidRequest("'limit' must be between 1 and 100.", param="limit")
        return await self._store.list_endpoints(team_id, after=after, limit=limit)

    async def update(
        self,
        endpoint_id: str,
        team_id: str | None,
        *,
        name: object = None,
        url: object = None,
        event_types: object = None,
        status: object = None,
        reason: str = "operator",
    ) -> WebhookEndpoint:
        current = await self.get(endpoint_id, team_id)
        if status is not None and status not in ("enabled", "disabled"):
            raise InvalidRequest("'status' must be 'enabled' or 'disabled'.", param="status")
        new_status: EndpointStatus | None = "enabled" if status == "enabled" else None
        if status == "disabled":
            new_status = "disabled"
        updated = await self._store.update_endpoint(
            current.id,
            now=int(self._clock()),
            name=check_name(name) if name is not None else None,
            url=await self._checked_url(url) if url is not None else None,
            event_types=check_event_types(event_types) if event_types is not None else None,
            status=new_status,
            disabled_reason=reason if new_status == "disabled" else None,
        )
        if updated is None:
            raise NotFound(f"No webhook endpoint found with id '{endpoint_id}'.")
        if new_status is not None and new_status != current.status:
            log.warning(
                f"webhook endpoint {new_status}",
                extra={"endpoint_id": current.id, "reason": reason},
            )
        return updated

    async def delete(self, endpoint_id: str, team_id: str | None) -> None:
        endpoint = await self.get(endpoint_id, team_id)
        if not await self._store.delete_endpoint(endpoint.id):
            raise NotFound(f"No webhook endpoint found with id '{endpoint_id}'.")
        log.info("webhook endpoint deleted", extra={"endpoint_id": endpoint.id})

    async def rotate_secret(
        self, endpoint_id: str, team_id: str | None, *, keep_old: bool = False
    ) -> tuple[WebhookEndpoint, str]:
        box = self._secrets()
        current = await self.get(endpoint_id, team_id)
        now = self._clock()
        secret = box.new_secret()
        rotated = await self._store.replace_secret(
            current.id,
            sealed=box.seal(secret),
            hint=secret_hint(secret),
            now=int(now),
            previous_sealed=current.secret_sealed if keep_old else None,
            previous_expires_at=now + OLD_SECRET_GRACE_SECONDS if keep_old else None,
        )
        if rotated is None:
            raise NotFound(f"No webhook endpoint found with id '{endpoint_id}'.")
        log.info("webhook secret rotated", extra={"endpoint_id": current.id, "kept_old": keep_old})
        return rotated, secret

    def signing_secrets(self, endpoint: WebhookEndpoint, now: float) -> list[str]:
        """The current secret, plus the previous one while its grace period lasts."""
        box = self._secrets()
        found = [box.open(endpoint.secret_sealed)]
        expires = endpoint.previous_secret_expires_at
        if endpoint.previous_secret_sealed and expires is not None and expires > now:
            found.append(box.open(endpoint.previous_secret_sealed))
        return found

    async def test(self, endpoint_id: str, team_id: str | None, event_type: object) -> TestResult:
        """Send one sample event now (not queued, not retried) and report the answer's status."""
        [checked] = check_event_types([event_type], param="event_type")
        endpoint = await self.get(endpoint_id, team_id)
        if self._sender is None:
            raise ServiceUnavailable("Webhook delivery is not running in this process.")
        now = self._clock()
        event_id = new_id("evt", now=now)
        body = event_body(event_id, checked, int(now), "video_test")
        message_id = new_id("wh", now=now)
        headers = signature_header(self.signing_secrets(endpoint, now), message_id, int(now), body)
        result = await self._sender.send(endpoint.url, body, headers)
        return TestResult(endpoint.id, checked, result.status_code or 0)

    async def deliveries(
        self, endpoint_id: str, team_id: str | None = None, *, limit: int = 100
    ) -> list[tuple[WebhookDelivery, list[WebhookAttempt]]]:
        endpoint = await self.get(endpoint_id, team_id)
        return await self._store.list_deliveries(endpoint.id, limit=limit)

    async def resend(
        self, endpoint_id: str, delivery_id: str, team_id: str | None = None
    ) -> WebhookDelivery:
        endpoint = await self.get(endpoint_id, team_id)
        delivery = await self._store.resend_delivery(endpoint.id, delivery_id, self._clock())
        if delivery is None:
            raise NotFound(
                f"No delivery '{delivery_id}' that can be re-sent on endpoint '{endpoint_id}'"
                " (unknown, or being sent right now)."
            )
        log.info("webhook delivery re-sent", extra={"delivery_id": delivery.id})
        return delivery

    async def reseal_all(self) -> int:
        """Re-encrypt every stored secret with the newest key; how many endpoints were done."""
        box = self._secrets()
        count, after = 0, None
        while True:
            page, more = await self._store.list_endpoints(None, after=after, limit=100)
            for endpoint in page:
                try:
                    sealed = box.reseal(endpoint.secret_sealed)
                    previous = (
                        box.reseal(endpoint.previous_secret_sealed)
                        if endpoint.previous_secret_sealed
                        else None
                    )
                except SecretKeyError as exc:
                    raise SecretKeyError(f"endpoint {endpoint.id}: {exc}") from None
                await self._store.replace_secret(
                    endpoint.id,
                    sealed=sealed,
                    hint=endpoint.secret_hint,
                    now=endpoint.updated_at,
                    previous_sealed=previous,
                    previous_expires_at=endpoint.previous_secret_expires_at,
                )
                count += 1
            if not more or not page:
                return count
            after = page[-1].id
