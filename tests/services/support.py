"""The world the service tests drive: a ``JobRunner`` over a real SQLite file and blob directory,
talking to the sandbox upstream in process (``httpx.ASGITransport``), all on one hand-moved clock.

Nothing here sleeps for real: the upstream client's back-off and the sandbox's latency faults
go through recorders; only the ``run()`` tests use a short real loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from gateway.blobs.filesystem import FilesystemBlobStore
from gateway.domain.pricing import default_price_table
from gateway.domain.video_request import VideoRequest
from gateway.sandbox import Job as SandboxJob
from gateway.sandbox import SandboxConfig, SandboxState, create_sandbox_app
from gateway.services.creation import CreateService
from gateway.services.events import JobEvents
from gateway.services.jobs import JobRunner
from gateway.services.keys import Principal
from gateway.services.videos import VideoService
from gateway.settings import CacheSettings, JobSettings
from gateway.store.base import TERMINAL_STATUSES, Job
from gateway.store.sqlite import SqliteStore
from gateway.upstream.client import UpstreamClient

T0 = 1_800_000_000.0
FAST_MODEL = "doubao-seedance-2-0-fast-260128"
API_KEY = "sk-test-gateway"
# Jobs are created at T0; the sandbox queues them 1 s and runs them 4 s.
SANDBOX = SandboxConfig(queue_seconds=1.0, run_seconds=4.0, video_bytes=100_000)


class FakeClock:
    """A clock tests move by hand (the runner, the videos service and the sandbox share it)."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def set(self, now: float) -> None:
        self.now = now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Sleeps(list[float]):
    """The upstream client's ``sleep``: records each back-off, never waits."""

    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


class Gate:
    """The sandbox's ``sleep`` (latency and timeout faults): records the delay, then holds the
    request while the gate is closed. Open by default, so faults cost no time."""

    def __init__(self) -> None:
        self.calls: list[float] = []
        self.entered = asyncio.Event()
        self._open = asyncio.Event()
        self._open.set()

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        self.entered.set()
        await self._open.wait()

    def close(self) -> None:
        self._open.clear()

    def open(self) -> None:
        self._open.set()


@dataclass
class World:
    clock: FakeClock
    settings: JobSettings
    store: SqliteStore
    blobs: FilesystemBlobStore
    sandbox: SandboxState
    gate: Gate
    client_sleeps: Sleeps
    upstream: UpstreamClient
    runner: JobRunner
    videos: VideoService
    creator: CreateService
    principal: Principal
    retention_days: int

    def runner_for(self, owner: str, **changes: Any) -> JobRunner:
        """Another runner (another process) over the same store, blobs and upstream."""
        settings = dataclasses.replace(self.settings, **changes)
        return JobRunner(
            self.store,
            self.upstream,
            self.blobs,
            settings,
            retention_days=self.retention_days,
            clock=self.clock,
            owner=owner,
        )

    async def create(self, **request: Any) -> Job:
        """``POST /v1/videos`` as the web layer does it: through ``CreateService.create``."""
        fields: dict[str, Any] = {"model": FAST_MODEL, "prompt": "a cat on a skateboard"}
        admission = await self.creator.create(self.principal, VideoRequest(**(fields | request)))
        return admission.job

    async def job(self, job_id: str) -> Job:
        """The stored row, deleted or not."""
        job = await self.store.update_job(job_id, {})
        assert job is not None
        return job

    def upstream_job(self, job: Job) -> SandboxJob:
        assert job.upstream_id is not None
        return self.sandbox.jobs[job.upstream_id]

    async def tick(self, job_id: str, runner: JobRunner | None = None) -> Job:
        """Move the clock to the job's next check (never backwards) and run one step."""
        job = await self.job(job_id)
        assert job.next_check_at is not None, f"job is not scheduled: {job.status}"
        self.clock.set(max(self.clock(), job.next_check_at))
        assert await (runner or self.runner).run_once() >= 1
        return await self.job(job_id)

    async def settle(self, job_id: str, runner: JobRunner | None = None, steps: int = 50) -> Job:
        """Tick until the job is finished."""
        job = await self.job(job_id)
        for _ in range(steps):
            if job.status in TERMINAL_STATUSES:
                return job
            job = await self.tick(job_id, runner)
        raise AssertionError(f"job still {job.status} after {steps} steps")

    def temporary_files(self) -> list[Path]:
        return sorted(self.blobs.tmp.iterdir())

    def object_files(self) -> list[Path]:
        return sorted(p for p in self.blobs.objects.rglob("*") if p.is_file())

    def stored_bytes(self, key: str | None) -> bytes:
        assert key is not None
        return self.blobs.path_for(key).read_bytes()


async def build_world(
    stack: AsyncExitStack,
    root: Path,
    *,
    sandbox: SandboxConfig = SANDBOX,
    retention_days: int = 0,
    raise_app_exceptions: bool = True,
    cdn_host: str | None = None,
    blob_store: type[FilesystemBlobStore] = FilesystemBlobStore,
    events: JobEvents | None = None,
    **settings: Any,
) -> World:
    """Everything wired like ``gateway.app`` wires it, with the network replaced by the sandbox.

    ``cdn_host`` makes the sandbox's signed links name another host than the API's (as
    AIHubMix's CDN links do), so a refused link reads as expired rather than as an API error.
    """
    clock = FakeClock()
    job_settings = JobSettings(**settings)
    store = await SqliteStore.open(f"sqlite:///{root / 'gateway.db'}")
    stack.push_async_callback(store.close)
    await store.migrate()
    blobs = blob_store(root / "blobs")
    gate = Gate()
    app = create_sandbox_app(sandbox, clock=clock, sleep=gate)
    http = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions),
        base_url="http://sandbox",
        headers={"Host": cdn_host} if cdn_host else None,
    )
    stack.push_async_callback(http.aclose)
    client_sleeps = Sleeps()
    upstream = UpstreamClient(http, api_key=API_KEY, sleep=client_sleeps)
    team = await store.create_team("acme", int(T0))
    key = await store.create_key(
        team_id=team.id, name="ci", key_hash="hash-acme", prefix="gw-acme", now=int(T0)
    )
    runner = JobRunner(
        store,
        upstream,
        blobs,
        job_settings,
        retention_days=retention_days,
        clock=clock,
        owner="runner-a",
        events=events,
    )
    return World(
        clock=clock,
        settings=job_settings,
        store=store,
        blobs=blobs,
        sandbox=app.state.sandbox,
        gate=gate,
        client_sleeps=client_sleeps,
        upstream=upstream,
        runner=runner,
        videos=VideoService(store, upstream, blobs, job_settings, clock=clock),
        creator=CreateService(
            store,
            upstream,
            default_price_table(),
            job_settings,
            CacheSettings(),
            retention_days=retention_days,
            clock=clock,
        ),
        principal=Principal(key_id=key.id, team_id=team.id),
        retention_days=retention_days,
    )


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def eventually(
    condition: Callable[[], Awaitable[bool]], *, timeout: float = 5.0, interval: float = 0.005
) -> None:
    """Await ``condition`` until it holds (for the real-loop tests); fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)
