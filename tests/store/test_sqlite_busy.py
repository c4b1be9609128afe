"""``database.busy_timeout_seconds``: how long a SQLite write waits for the write lock another
process holds before it fails ("database is locked", which the web layer answers with a 503)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from gateway.store.opening import open_store
from gateway.store.sqlite.database import BUSY_TIMEOUT_SECONDS

from .conftest import NOW


@pytest.fixture
def database(tmp_path: Path) -> Path:
    return tmp_path / "gateway.db"


@pytest.fixture
def other_process(database: Path) -> Iterator[sqlite3.Connection]:
    """A second connection to the file, as another gateway process would hold one."""
    with closing(sqlite3.connect(database, isolation_level=None)) as connection:
        yield connection


async def test_a_write_fails_once_the_busy_timeout_passes(
    database: Path, other_process: sqlite3.Connection
) -> None:
    store = await open_store(f"sqlite:///{database}", busy_timeout_seconds=0.05)
    try:
        await store.migrate()
        other_process.execute("BEGIN IMMEDIATE")  # ... and never lets go
        try:
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                await store.create_team("acme", NOW)
        finally:
            other_process.execute("ROLLBACK")
        assert await store.team_by_name("acme") is None
    finally:
        await store.close()


async def test_a_write_waits_for_the_lock_within_the_busy_timeout(
    database: Path, other_process: sqlite3.Connection
) -> None:
    store = await open_store(f"sqlite:///{database}", busy_timeout_seconds=600)
    try:
        await store.migrate()
        other_process.execute("BEGIN IMMEDIATE")
        # Held past the default timeout, which would have failed the write (the one test that
        # takes a few seconds on purpose).
        release_after = BUSY_TIMEOUT_SECONDS + 1
        asyncio.get_running_loop().call_later(release_after, other_process.execute, "ROLLBACK")
        team = await store.create_team("acme", NOW)
        assert await store.team_by_name("acme") == team
    finally:
        await store.close()
