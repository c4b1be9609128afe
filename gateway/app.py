"""The application factory. Nothing happens at import: ``create_app`` builds a Starlette app whose
lifespan opens every resource (store, upstream client, the in-process sandbox when it is asked
for) and closes them again. Only this module and ``cli.py`` know concrete adapters.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import httpx
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.middleware import Middleware

from gateway.app_webhooks import check_webhook_settings, open_webhooks
from gateway.blobs.base import BlobStore, open_blob_store
from gateway.domain.catalog import Catalog, default_catalog
from gateway.domain.pricing import PriceTable, missing_prices, price_table_from_config
from gateway.domain.traffic import MAX_LIMIT_VALUE, TrafficDefaults, TrafficLimits
from gateway.metrics import Metrics
from gateway.services.creation import CreateService
from gateway.services.events import JobEvents
from gateway.services.jobs import JobRunner
from gateway.services.keys import KeyService
from gateway.services.videos import VideoService
from gateway.services.webhook_delivery import WebhookDeliverer
from gateway.services.webhooks import WebhookService
from gateway.settings import Settings, SettingsError, UpstreamSettings
from gateway.store.base import Store
from gateway.store.opening import open_store
from gateway.upstream.client import UpstreamClient
from gateway.upstream.outbound import GuardedTransport, Origin, OutboundPolicy
from gateway.upstream.transport import AiohttpTransport
from gateway.web.context import AppContext
from gateway.web.hosts import ValidHostMiddleware
from gateway.web.middleware import RequestContextMiddleware
from gateway.web.routes import EXCEPTION_HANDLERS, ROUTES

log = logging.getLogger("gateway")

AIHUBMIX_DEFAULT_URL = UpstreamSettings().base_url
SANDBOX_API_KEY = "sk-sandbox"


@dataclass(frozen=True, slots=True)
class Resources:
    """The adapters one process opens: database, upstream client, blob store."""

    store: Store
    upstream: UpstreamClient
    blobs: BlobStore
    sandbox_url: str | None


async def open_configured_store(settings: Settings) -> Store:
    """The store ``database.url`` names, with the configured pool (not yet migrated)."""
    database = settings.database
    return await open_store(
        database.url,
        pool_min_size=database.pool_min_size,
        pool_max_size=database.pool_max_size,
        busy_timeout_seconds=database.busy_timeout_seconds,
    )


async def open_resources(
    settings: Settings,
    stack: AsyncExitStack,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    start_sandbox: bool = True,
    metrics: Metrics | None = None,
) -> Resources:
    """Open every adapter on ``stack`` (closed in reverse order when it exits)."""
    store = await open_configured_store(settings)
    stack.push_async_callback(store.close)
    await store.migrate()
    base_url, sandbox_url = await _upstream_base_url(settings, stack, start_sandbox=start_sandbox)
    policy = outbound_policy(settings, base_url)
    http = httpx.AsyncClient(
        base_url=base_url,
        # aiohttp's pool under httpx's API: about 4x less CPU per upstream call (bench/README.md).
        # It checks the outbound policy at connect time; an injected transport before each hop.
        transport=GuardedTransport(transport, policy)
        if transport is not None
        else AiohttpTransport(max_connections=settings.upstream.max_connections, policy=policy),
        timeout=httpx.Timeout(settings.upstream.timeout, connect=settings.upstream.connect_timeout),
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
        observer=metrics,
        max_answer_bytes=settings.upstream.max_answer_bytes,
    )
    storage = settings.storage
    blobs = open_blob_store(
        storage.url,
        endpoint_url=storage.s3_endpoint_url or None,
        region=storage.s3_region or None,
        path_style=storage.s3_path_style,
    )
    stack.push_async_callback(blobs.close)
    return Resources(store=store, upstream=upstream, blobs=blobs, sandbox_url=sandbox_url)


def outbound_policy(settings: Settings, base_url: str) -> OutboundPolicy:
    """Where upstream traffic may go: the configured API origin, and public addresses (or
    private ones too with ``upstream.allow_private_links``)."""
    return OutboundPolicy(
        allow_private=settings.upstream.allow_private_links,
        trusted=frozenset({Origin.of(base_url)}),
    )


def check_settings(settings: Settings) -> tuple[Catalog, PriceTable]:
    """What start-up needs beyond well-typed settings: a price for everything the catalog
    accepts, and known option values. Raises ``SettingsError`` naming the problem."""
    catalog = default_catalog(settings.requests.model_aliases)
    unknown_aliases = sorted(
        alias for alias, target in catalog.aliases.items() if target not in catalog.models
    )
    if unknown_aliases:
        raise SettingsError(f"requests.model_aliases point at unknown models: {unknown_aliases}")
    try:
        prices = price_table_from_config(settings.prices)
    except ValueError as exc:
        raise SettingsError(f"[prices]: {exc}") from exc
    missing = missing_prices(prices, catalog)
    if missing:
        listed = ", ".join(f"{model} {resolution}" for model, resolution in missing)
        raise SettingsError(f"[prices] has no price for: {listed}")
    if settings.cache.scope not in ("team", "key", "org"):
        raise SettingsError("cache.scope must be 'team', 'key' or 'org'")
    upstream = settings.upstream
    longest_submit = upstream.timeout + upstream.connect_timeout * upstream.retries
    if settings.jobs.submit_grace_seconds <= longest_submit:
        raise SettingsError(
            f"jobs.submit_grace_seconds ({settings.jobs.submit_grace_seconds}) must exceed the"
            f" longest upstream submit ({longest_submit} s: upstream.timeout plus"
            " upstream.connect_timeout per attempt), or in-flight submits would be given up"
        )
    if settings.log.format not in ("json", "text"):
        raise SettingsError("log.format must be 'json' or 'text'")
    if settings.requests.idempotency_hours < 24:
        raise SettingsError("requests.idempotency_hours must be at least 24 (clients retry late)")
    check_ranges(settings)
    check_upstream(settings)
    check_webhook_settings(settings)
    if settings.database.busy_timeout_seconds < 0:
        raise SettingsError("database.busy_timeout_seconds must not be negative")
    return catalog, prices


def check_upstream(settings: Settings) -> None:
    """No silent sandbox: without an AIHubMix key the sandbox must be asked for by name."""
    if not settings.use_sandbox and not settings.aihubmix_api_key:
        raise SettingsError(
            "AIHUBMIX_API_KEY is not set. Either set it to the AIHubMix key (for real videos),"
            " or ask for the built-in sandbox explicitly (fake videos, nothing billed) with"
            " `gateway serve --sandbox` or `upstream.sandbox = true` (GATEWAY_UPSTREAM__SANDBOX=true)."
        )


def check_ranges(settings: Settings) -> None:
    """Limits and ports are whole numbers in range (0 means no limit)."""
    for name, value in dataclasses.asdict(settings.limits).items():
        if not 0 <= value <= MAX_LIMIT_VALUE:
            raise SettingsError(f"limits.{name} must be from 0 (no limit) to {MAX_LIMIT_VALUE}")
    if not 1 <= settings.server.port <= 65535:
        raise SettingsError(f"server.port must be from 1 to 65535, got {settings.server.port}")
    if settings.requests.max_chained_seconds < 1:
        raise SettingsError("requests.max_chained_seconds must be at least 1")


def traffic_defaults(settings: Settings) -> TrafficDefaults:
    """The ``[limits]`` section as the defaults every admission enforces."""
    limits = settings.limits
    return TrafficDefaults(
        team=TrafficLimits(limits.team_max_in_flight_jobs, limits.team_requests_per_minute),
        key=TrafficLimits(limits.key_max_in_flight_jobs, limits.key_requests_per_minute),
    )


def build_runner(
    settings: Settings,
    resources: Resources,
    clock: Callable[[], float] = time.time,
    events: JobEvents | None = None,
) -> JobRunner:
    _, prices = check_settings(settings)
    return JobRunner(
        resources.store,
        resources.upstream,
        resources.blobs,
        settings.jobs,
        storage=settings.storage,
        prices=prices,
        retention_days=settings.storage.retention_days,
        clock=clock,
        events=events,
    )


def create_app(
    settings: Settings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    clock: Callable[[], float] = time.time,
    registry: CollectorRegistry | None = None,
) -> Starlette:
    """Build the gateway. ``transport`` replaces the upstream network (tests), ``clock`` the
    time, ``registry`` where metrics are registered (a fresh one by default)."""
    catalog, prices = check_settings(settings)
    metrics = Metrics(registry or CollectorRegistry(), team_labels=settings.metrics.team_labels)
    events = JobEvents(metrics)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            resources = await open_resources(settings, stack, transport=transport, metrics=metrics)
            log.info(
                "gateway starting",
                extra={"upstream": settings.upstream_name, "upstream_url": _shown_url(settings)},
            )
            app.state.sandbox_url = resources.sandbox_url
            webhooks, deliverer = open_webhooks(
                settings, resources.store, stack, metrics=metrics, clock=clock
            )
            app.state.context = build_context(
                settings,
                resources,
                webhooks,
                catalog=catalog,
                prices=prices,
                metrics=metrics,
                events=events,
                clock=clock,
            )
            if settings.jobs.runner:
                await start_background_work(stack, settings, resources, deliverer, clock, events)
            yield

    return Starlette(
        routes=ROUTES,
        middleware=[
            Middleware(RequestContextMiddleware, metrics=metrics),
            Middleware(ValidHostMiddleware),
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )


async def start_background_work(
    stack: AsyncExitStack,
    settings: Settings,
    resources: Resources,
    deliverer: WebhookDeliverer | None,
    clock: Callable[[], float],
    events: JobEvents,
) -> None:
    """The job runner and the webhook deliverer, drained when ``stack`` closes."""
    await stack.enter_async_context(running(build_runner(settings, resources, clock, events)))
    if deliverer is not None:
        await stack.enter_async_context(running(deliverer, "webhook-deliverer"))


def build_context(
    settings: Settings,
    resources: Resources,
    webhooks: WebhookService,
    *,
    catalog: Catalog,
    prices: PriceTable,
    metrics: Metrics,
    events: JobEvents,
    clock: Callable[[], float],
) -> AppContext:
    """The services the routes use, over the resources the lifespan opened."""
    store = resources.store
    return AppContext(
        settings=settings,
        catalog=catalog,
        store=store,
        blobs=resources.blobs,
        keys=KeyService(store, clock=clock),
        creator=CreateService(
            store,
            resources.upstream,
            prices,
            settings.jobs,
            settings.cache,
            retention_days=settings.storage.retention_days,
            clock=clock,
            events=events,
            idempotency_seconds=settings.requests.idempotency_hours * 3600,
            catalog=catalog,
            traffic=traffic_defaults(settings),
            blobs=resources.blobs,
        ),
        videos=VideoService(store, resources.upstream, resources.blobs, settings.jobs, clock=clock),
        metrics=metrics,
        clock=clock,
        webhooks=webhooks,
    )


async def run_worker(settings: Settings, stop: asyncio.Event) -> None:
    """``gateway worker``: only the job runner, until ``stop`` is set, then drain."""
    async with AsyncExitStack() as stack:
        metrics = Metrics(CollectorRegistry(), team_labels=settings.metrics.team_labels)
        resources = await open_resources(settings, stack, start_sandbox=False, metrics=metrics)
        log.info("job runner started", extra={"upstream": settings.upstream_name})
        _, deliverer = open_webhooks(settings, resources.store, stack, metrics=metrics)
        async with AsyncExitStack() as delivering:
            if deliverer is not None:
                await delivering.enter_async_context(running(deliverer, "webhook-deliverer"))
            await build_runner(settings, resources, events=JobEvents(metrics)).run(stop)


def _shown_url(settings: Settings) -> str:
    """The upstream's address without credentials or query (safe to log)."""
    url = httpx.URL(settings.upstream.base_url)
    return f"{url.scheme}://{url.host}" + (f":{url.port}" if url.port else "")


@asynccontextmanager
async def running(
    runner: JobRunner | WebhookDeliverer, name: str = "job-runner"
) -> AsyncIterator[None]:
    """Run a background loop (the job runner, the webhook deliverer); on exit, stop it and let
    it drain."""
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop), name=name)
    try:
        yield
    finally:
        stop.set()
        await task


def effective_upstream(settings: Settings) -> tuple[str, str]:
    """Where creates really go, for people: ("sandbox" or "AIHubMix", its URL or how it runs)."""
    if not settings.use_sandbox:
        return "AIHubMix", settings.upstream.base_url
    if settings.upstream.base_url != AIHUBMIX_DEFAULT_URL:
        return "sandbox", settings.upstream.base_url
    where = f"port {settings.sandbox.port}" if settings.sandbox.port else "a free port"
    return "sandbox", f"built in, started by `gateway serve` on http://127.0.0.1 ({where})"


async def _upstream_base_url(
    settings: Settings, stack: AsyncExitStack, *, start_sandbox: bool
) -> tuple[str, str | None]:
    """Where upstream calls go, and the in-process sandbox's URL when one was started for it."""
    if not settings.use_sandbox:
        return settings.upstream.base_url, None
    if settings.upstream.base_url != AIHUBMIX_DEFAULT_URL:
        return settings.upstream.base_url, None  # an external sandbox (tests, benchmarks)
    if not start_sandbox:
        raise ValueError(
            "sandbox mode needs upstream.base_url pointing at a running sandbox here: "
            "a separate worker cannot share the API process's in-process sandbox"
        )
    from gateway.sandbox.config import SandboxConfig
    from gateway.sandbox.server import SandboxServer

    sandbox = SandboxServer(
        SandboxConfig(
            queue_seconds=settings.sandbox.queue_seconds,
            run_seconds=settings.sandbox.run_seconds,
            video_bytes=settings.sandbox.video_bytes,
            link_ttl_seconds=settings.sandbox.link_ttl_seconds,
            frame_short_side=settings.sandbox.frame_short_side,
            frame_rate=settings.sandbox.frame_rate,
        ),
        host="127.0.0.1",
        port=settings.sandbox.port,
    )
    port = await sandbox.start()
    stack.push_async_callback(sandbox.stop)
    url = f"http://127.0.0.1:{port}"
    log.warning(
        "SANDBOX MODE (asked for with upstream.sandbox / --sandbox): videos come from the "
        "built-in fake upstream at %s. Nothing is sent to AIHubMix and nothing is billed.",
        url,
    )
    return url, url
