"""Fixtures for the sandbox upstream tests: the app on a fake clock and an in-process client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette

from gateway.sandbox import SandboxConfig, SandboxState, create_sandbox_app
from tests.sandbox.support import FakeClock, SleepRecorder


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sleeps() -> SleepRecorder:
    return SleepRecorder()


@pytest.fixture
def config() -> SandboxConfig:
    return SandboxConfig(queue_seconds=1.0, run_seconds=4.0, video_bytes=200_000)


@pytest.fixture
def app(config: SandboxConfig, clock: FakeClock, sleeps: SleepRecorder) -> Starlette:
    return create_sandbox_app(config, clock=clock, sleep=sleeps)


@pytest.fixture
def state(app: Starlette) -> SandboxState:
    sandbox: SandboxState = app.state.sandbox
    return sandbox


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox.test") as c:
        yield c
