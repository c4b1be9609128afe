"""Webhook wiring for ``app.py`` and ``cli.py``: the settings check, and the service with its
deliverer and sender for one process. Kept apart from ``app.py`` so the two change separately;
like it, this module knows concrete adapters.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AsyncExitStack

from gateway.metrics import Metrics
from gateway.services.webhook_delivery import WebhookDeliverer
from gateway.services.webhook_secrets import SecretBox, SecretKeyError
from gateway.services.webhooks import WebhookService
from gateway.settings import Settings, SettingsError
from gateway.store.base import Store
from gateway.upstream.webhook_sender import WebhookSender


def check_webhook_settings(settings: Settings) -> SecretBox | None:
    """The webhook settings hang together; the secret box when a key is configured."""
    hooks = settings.webhooks
    if hooks.lease_seconds <= hooks.timeout_seconds:
        raise SettingsError(
            f"webhooks.lease_seconds ({hooks.lease_seconds}) must exceed"
            f" webhooks.timeout_seconds ({hooks.timeout_seconds}), or a slow receiver's delivery"
            " could be claimed and sent again while it is still in flight"
        )
    if hooks.concurrency < 1 or hooks.concurrency_per_endpoint < 1:
        raise SettingsError("webhooks.concurrency and concurrency_per_endpoint must be >= 1")
    if hooks.disable_after_failures < 1 or hooks.max_age_hours <= 0:
        raise SettingsError("webhooks.disable_after_failures and max_age_hours must be positive")
    if not settings.webhook_secret_key:
        return None
    try:
        return SecretBox.from_setting(str(settings.webhook_secret_key))
    except SecretKeyError as exc:
        raise SettingsError(str(exc)) from None


def open_webhooks(
    settings: Settings,
    store: Store,
    stack: AsyncExitStack,
    *,
    metrics: Metrics | None = None,
    clock: Callable[[], float] = time.time,
) -> tuple[WebhookService, WebhookDeliverer | None]:
    """The webhook service, and its deliverer when this process delivers (a key is configured
    and ``webhooks.deliver`` is on); the sender's connections close with ``stack``."""
    box = check_webhook_settings(settings)
    hooks = settings.webhooks
    sender = WebhookSender.open(
        timeout=hooks.timeout_seconds,
        allow_private=settings.upstream.allow_private_links,
        max_connections=hooks.concurrency,
    )
    stack.push_async_callback(sender.close)
    service = WebhookService(
        store,
        box,
        hooks,
        allow_private=settings.upstream.allow_private_links,
        sender=sender,
        clock=clock,
    )
    if box is None or not hooks.deliver:
        return service, None
    deliverer = WebhookDeliverer(
        store,
        service,
        sender,
        hooks,
        metrics=metrics.webhooks if metrics is not None else None,
        clock=clock,
    )
    return service, deliverer
