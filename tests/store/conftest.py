"""Fixtures for the store contract suite: one migrated, empty ``Store`` per adapter.

Every test that takes ``store`` (or ``target``) runs once per entry of ``ADAPTERS``. SQLite gets a
file in ``tmp_path``. PostgreSQL gets a database of its own per test run (``gw_test_<pid>_<hex>``,
created on the server at ``GATEWAY_TEST_POSTGRES_URL``, default the local trust-auth server, and
dropped at the end) and a fresh schema per test, selected with ``?search_path=`` in the URL. An
unreachable PostgreSQL fails those tests; it never skips them (CI's ``.ci/run`` starts it).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sqlite3
from collections.abc import AsyncIterator, Coroutine, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest

from gateway.store.base import ApiKey, Store, Team
from gateway.store.opening import open_store

ADAPTERS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql"),
]

NOW = 1_760_000_000

# The maintenance database of the server the PostgreSQL tests use (never written to).
POSTGRES_URL = os.environ.get(
    "GATEWAY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)

Result = TypeVar("Result")


def run_aside(coroutine: Coroutine[Any, Any, Result]) -> Result:
    """Run ``coroutine`` on a private event loop (session set-up runs outside any test's loop)."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coroutine)
    finally:
        loop.close()


def with_database(url: str, database: str) -> str:
    base, _, _ = url.partition("?")
    return base.rsplit("/", 1)[0] + "/" + database


@dataclass(frozen=True)
class ThrowawayDatabase:
    """The throwaway database of this test run."""

    url: str

    async def new_schema(self) -> str:
        """A fresh, empty schema; the URL that keeps a store's tables in it."""
        schema = f"t_{secrets.token_hex(6)}"
        connection = await asyncpg.connect(self.url)
        try:
            await connection.execute(f"CREATE SCHEMA {schema}")
        finally:
            await connection.close()
        return f"{self.url}?search_path={schema}"


async def _create_database() -> ThrowawayDatabase:
    failure: BaseException | None = None
    try:
        connection = await asyncpg.connect(POSTGRES_URL, timeout=5)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        failure = exc
    if failure is not None:
        pytest.fail(
            f"PostgreSQL is unreachable at {POSTGRES_URL.rsplit('@', 1)[-1]} ({failure!r}): the"
            " store contract suite needs it. Start it (`pg_ctlcluster 15 main start`, as .ci/run"
            " does) or point GATEWAY_TEST_POSTGRES_URL at a server where the user may create"
            " databases.",
            pytrace=False,
        )
    name = f"gw_test_{os.getpid()}_{secrets.token_hex(4)}"
    try:
        await _drop_abandoned(connection)
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return ThrowawayDatabase(with_database(POSTGRES_URL, name))


async def _drop_abandoned(connection: asyncpg.Connection) -> None:
    """Drop the databases of test runs on this machine that died before dropping their own."""
    for (name,) in await connection.fetch(
        "SELECT datname FROM pg_database WHERE datname ~ '^gw_test_[0-9]+_[0-9a-f]+$'"
    ):
        pid = int(name.split("_")[2])
        try:
            os.kill(pid, 0)  # signal 0 sends nothing: it only asks whether the process exists
        except ProcessLookupError:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        except PermissionError:
            pass  # a live process of another user


async def _drop_database(database: ThrowawayDatabase) -> None:
    connection = await asyncpg.connect(POSTGRES_URL, timeout=5)
    try:
        name = database.url.rsplit("/", 1)[-1]
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[ThrowawayDatabase]:
    database = run_aside(_create_database())
    try:
        yield database
    finally:
        run_aside(_drop_database(database))


@dataclass(frozen=True)
class StoreTarget:
    """Where a test's store lives: open more stores on it (other processes, other replicas)
    and look at what the protocol does not show."""

    adapter: str
    url: str
    postgres: ThrowawayDatabase | None = None

    async def open(self, **options: Any) -> Store:
        return await open_store(self.url, **options)

    async def asset_refs(self, key: str) -> int | None:
        """The asset's reference count as stored; None without a row."""
        if self.adapter == "sqlite":
            path = self.url.removeprefix("sqlite:///")
            with closing(sqlite3.connect(path)) as connection:
                row = connection.execute("SELECT refs FROM assets WHERE key = ?", (key,)).fetchone()
            return None if row is None else int(row[0])
        connection = await asyncpg.connect(self.url)
        try:
            value = await connection.fetchval("SELECT refs FROM assets WHERE key = $1", key)
        finally:
            await connection.close()
        return None if value is None else int(value)


@dataclass(frozen=True)
class Adapter:
    name: str
    postgres: ThrowawayDatabase | None = None


@pytest.fixture(params=ADAPTERS)
def adapter(request: pytest.FixtureRequest) -> Adapter:
    """The adapter under test; for PostgreSQL, the run's database (created on first use, in
    this synchronous fixture because its set-up runs a loop of its own)."""
    if request.param == "postgresql":
        return Adapter("postgresql", request.getfixturevalue("postgres_database"))
    return Adapter(str(request.param))


@pytest.fixture
async def target(adapter: Adapter, tmp_path: Path) -> StoreTarget:
    if adapter.name == "sqlite":
        return StoreTarget("sqlite", f"sqlite:///{tmp_path / 'db' / 'gateway.db'}")
    if adapter.postgres is not None:
        return StoreTarget("postgresql", await adapter.postgres.new_schema(), adapter.postgres)
    raise AssertionError(f"no test database for adapter {adapter.name!r}")


@pytest.fixture
async def store(target: StoreTarget) -> AsyncIterator[Store]:
    opened = await target.open()
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
