"""The application factory. Nothing happens at import: ``create_app`` builds a Starlette app whose
lifespan opens every resource (store, upstream client, the in-process sandbox when no AIHubMix
key is set) and closes them again. Only this module and ``cli.py`` know concrete adapters.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware

from gateway.blobs.base import open_blob_store
from gateway.domain.catalog import default_catalog
from gateway.services.jobs import JobRunner
from gateway.services.keys import KeyService
from gateway.services.videos import VideoService
from gateway.settings import Settings, UpstreamSettings
from gateway.store.base import open_store
from gateway.upstream.client import UpstreamClient
from gateway.web.context import AppContext
from gateway.web.middleware import RequestContextMiddleware
from gateway.web.routes import EXCEPTION_HANDLERS, ROUTES

log = logging.getLogger("gateway")

AIHUBMIX_DEFAULT_URL = UpstreamSettings().base_url
SANDBOX_API_KEY = "sk-sandbox"


def create_app(
    settings: Settings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    clock: Callable[[], float] = time.time,
) -> Starlette:
    """Build the gateway. ``transport`` replaces the upstream network (tests); ``clock`` the time."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            store = await open_store(settings.database.url)
            stack.push_async_callback(store.close)
            await store.migrate()
            base_url = await _upstream_base_url(settings, stack, app)
            http = httpx.AsyncClient(
                base_url=base_url,
                transport=transport,
                timeout=httpx.Timeout(
                    settings.upstream.timeout, connect=settings.upstream.connect_timeout
                ),
                limits=httpx.Limits(
                    max_connections=settings.upstream.max_connections,
                    max_keepalive_connections=settings.upstream.max_connections,
                ),
            )
            stack.push_async_callback(http.aclose)
            upstream = UpstreamClient(
                http,
                api_key=SANDBOX_API_KEY if settings.use_sandbox else str(settings.aihubmix_api_key),
                retries=settings.upstream.retries,
                backoff_base=settings.upstream.backoff_base,
                backoff_max=settings.upstream.backoff_max,
            )
            blobs = open_blob_store(settings.storage.url)
            stack.push_async_callback(blobs.close)
            catalog = default_catalog(settings.requests.model_aliases)
            app.state.context = AppContext(
                settings=settings,
                catalog=catalog,
                store=store,
                blobs=blobs,
                keys=KeyService(store, clock=clock),
                videos=VideoService(store, upstream, blobs, settings.jobs, clock=clock),
            )
            if settings.jobs.runner:
                runner = JobRunner(
                    store,
                    upstream,
                    blobs,
                    settings.jobs,
                    retention_days=settings.storage.retention_days,
                    clock=clock,
                )
                await stack.enter_async_context(running(runner))
            yield

    return Starlette(
        routes=ROUTES,
        middleware=[Middleware(RequestContextMiddleware)],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )


@asynccontextmanager
async def running(runner: JobRunner) -> AsyncIterator[None]:
    """Run the job runner in the background; on exit, stop it and let it drain."""
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop), name="job-runner")
    try:
        yield
    finally:
        stop.set()
        await task


async def _upstream_base_url(settings: Settings, stack: AsyncExitStack, app: Starlette) -> str:
    """Where upstream calls go. In sandbox mode without an explicit URL, start the sandbox here."""
    app.state.sandbox_url = None
    if not settings.use_sandbox:
        return settings.upstream.base_url
    if settings.upstream.base_url != AIHUBMIX_DEFAULT_URL:
        return settings.upstream.base_url  # an external sandbox (tests, benchmarks)
    from gateway.sandbox.config import SandboxConfig
    from gateway.sandbox.server import SandboxServer

    sandbox = SandboxServer(
        SandboxConfig(
            queue_seconds=settings.sandbox.queue_seconds,
            run_seconds=settings.sandbox.run_seconds,
            video_bytes=settings.sandbox.video_bytes,
            link_ttl_seconds=settings.sandbox.link_ttl_seconds,
        ),
        host="127.0.0.1",
        port=settings.sandbox.port,
    )
    port = await sandbox.start()
    stack.push_async_callback(sandbox.stop)
    url = f"http://127.0.0.1:{port}"
    app.state.sandbox_url = url
    log.warning(
        "SANDBOX MODE: no AIHUBMIX_API_KEY is set, so videos come from the built-in fake "
        "upstream at %s. Nothing is sent to AIHubMix and nothing is billed.",
        url,
    )
    return url
