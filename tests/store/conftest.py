"""Fixtures for the store contract suite: one migrated, empty ``Store`` per adapter.

To run the suite on another adapter, add a ``pytest.param`` to ``ADAPTERS`` and a branch to
``store_url`` (PostgreSQL: a throwaway database per test, skipped when no server is configured).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.store.base import ApiKey, Store, Team, open_store

ADAPTERS = [pytest.param("sqlite", id="sqlite")]

NOW = 1_760_000_000


def store_url(adapter: str, tmp_path: Path) -> str:
    if adapter == "sqlite":
        return f"sqlite:///{tmp_path / 'db' / 'gateway.db'}"
    raise AssertionError(f"no test database for adapter {adapter!r}")


@pytest.fixture(params=ADAPTERS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    opened = await open_store(store_url(request.param, tmp_path))
    try:
        await opened.migrate()
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def team(store: Store) -> Team:
    return await store.create_team("acme", NOW)


@pytest.fixture
async def other_team(store: Store) -> Team:
    return await store.create_team("globex", NOW)


@pytest.fixture
async def key(store: Store, team: Team) -> ApiKey:
    return await store.create_key(
        team_id=team.id, name="ci", key_hash="hash-acme", prefix="sk-gw-acme", now=NOW
    )


@pytest.fixture
async def other_key(store: Store, other_team: Team) -> ApiKey:
    return await store.create_key(
        team_id=other_team.id, name="ci", key_hash="hash-globex", prefix="sk-gw-glob", now=NOW
    )
