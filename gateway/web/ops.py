"""Operational endpoints that need no key: liveness and readiness."""

from __future__ import annotations

import logging
import time

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import Response

from gateway.blobs.base import BlobStore
from gateway.web.context import context
from gateway.web.rendering import JSONResponse

log = logging.getLogger("gateway.web")


async def healthz(request: Request) -> Response:
    """The process is alive and serving."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """The database answers, its schema is current and the blob store takes writes and has
    ``storage.min_free_bytes`` free; otherwise 503 naming the failing check."""
    ctx = context(request)
    store = ctx.store
    checks: dict[str, str] = {}
    try:
        current, latest = await store.schema_version(), await store.latest_version()
        checks["database"] = "ok"
        checks["migrations"] = "ok" if current == latest else f"at {current}, need {latest}"
    except Exception as exc:  # any failure means not ready; say which check
        checks["database"] = f"error: {type(exc).__name__}"
    checks["storage"] = await storage_check(ctx.blobs, ctx.settings.storage.min_free_bytes)
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {
            "status": "ready" if ready else "not_ready",
            "checks": checks,
            "upstream": ctx.settings.upstream_name,
        },
        status_code=200 if ready else 503,
    )


async def storage_check(blobs: BlobStore, min_free_bytes: int) -> str:
    """ "ok", or why the blob store cannot take a video now (unwritable, or too little space
    left for one: a full disk would fail every download)."""
    try:
        await blobs.check_writable()
        free = await blobs.free_bytes()
    except Exception as exc:
        return f"error: {type(exc).__name__}"
    if free is not None and free < min_free_bytes:
        return f"low on space: {free} bytes free, storage.min_free_bytes is {min_free_bytes}"
    return "ok"


async def metrics(request: Request) -> Response:
    """Prometheus text format; the shared gauges are refreshed from the database first."""
    ctx = context(request)
    registry_metrics = ctx.metrics
    try:
        registry_metrics.apply(await ctx.store.metrics_snapshot(time.time()))
        registry_metrics.webhooks.apply(await ctx.store.webhook_stats(), time.time())
    except Exception:  # stale gauges beat no metrics when the database hiccups
        log.exception("could not refresh metrics from the database")
    return Response(generate_latest(registry_metrics.registry), media_type=CONTENT_TYPE_LATEST)
