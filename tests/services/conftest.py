"""Fixtures for the service tests: ``make_world(**options)`` builds a fresh ``World``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest

from tests.services.support import World, build_world

MakeWorld = Callable[..., Awaitable[World]]


@pytest.fixture
async def make_world(tmp_path: Path) -> AsyncIterator[MakeWorld]:
    async with AsyncExitStack() as stack:
        count = 0

        async def make(**options: Any) -> World:
            nonlocal count
            count += 1
            root = tmp_path / f"world-{count}"
            root.mkdir()
            return await build_world(stack, root, **options)

        yield make


@pytest.fixture
async def world(make_world: MakeWorld) -> World:
    return await make_world()
