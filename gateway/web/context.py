"""What every route needs, built once by the app's lifespan and reached through ``context()``."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from gateway.blobs.base import BlobStore
from gateway.domain.catalog import Catalog
from gateway.errors import OutageTypes
from gateway.metrics import Metrics
from gateway.services.creation import CreateService
from gateway.services.keys import KeyService, Principal
from gateway.services.videos import VideoService
from gateway.services.webhooks import WebhookService
from gateway.settings import Settings
from gateway.store.base import Store


@dataclass(frozen=True, slots=True)
class AppContext:
    settings: Settings
    catalog: Catalog
    store: Store
    blobs: BlobStore
    keys: KeyService
    creator: CreateService
    videos: VideoService
    metrics: Metrics
    webhooks: WebhookService
    clock: Callable[[], float] = time.time  # the app's injected clock, for use cases

    @property
    def outages(self) -> OutageTypes:
        """The exception types the opened adapters declare as "briefly unavailable"."""
        return self.store.outage_errors + self.blobs.outage_errors


def outages_of(app: Any) -> OutageTypes:
    """The app's adapters' outage types (none before the lifespan opened them)."""
    ctx = getattr(getattr(app, "state", None), "context", None)
    return ctx.outages if isinstance(ctx, AppContext) else ()


def context(request: Request) -> AppContext:
    ctx = request.app.state.context
    assert isinstance(ctx, AppContext)
    return ctx


async def authenticate(request: Request) -> Principal:
    """The caller's principal from the ``Authorization`` header (401 otherwise)."""
    principal = await context(request).keys.authenticate(request.headers.get("authorization"))
    request.state.key_id = principal.key_id  # for the access log: the key's id, never the key
    request.state.team_id = principal.team_id
    return principal
