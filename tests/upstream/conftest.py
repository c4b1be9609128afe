"""Fixtures: the scripted fake AIHubMix behind ``httpx.MockTransport`` and a client over it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from gateway.upstream.client import UpstreamClient
from tests.upstream.fakes import API_KEY, BASE_URL, Script, Sleeps


@pytest.fixture
def script() -> Script:
    return Script()


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
async def http(script: Script) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=BASE_URL, transport=httpx.MockTransport(script)) as c:
        yield c


@pytest.fixture
def make_client(http: httpx.AsyncClient, sleeps: Sleeps) -> Callable[..., UpstreamClient]:
    def make(**overrides: Any) -> UpstreamClient:
        options: dict[str, Any] = {"api_key": API_KEY, "sleep": sleeps, **overrides}
        return UpstreamClient(http, **options)

    return make


@pytest.fixture
def client(make_client: Callable[..., UpstreamClient]) -> UpstreamClient:
    return make_client()
