"""What only the SQLite adapter promises: URLs, pragmas, migrations on disk, several processes
sharing one file, and index-backed hot paths."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Sequence
from contextlib import closing
from pathlib import Path

import pytest

from gateway.domain.video_request import VideoRequest
from gateway.errors import Conflict
from gateway.ids import new_id
from gateway.store.base import Job, Store
from gateway.store.migrations import Migration, latest_version, load_migrations
from gateway.store.opening import open_store
from gateway.store.sqlite import SqliteStore, parse_sqlite_url, split_statements
from gateway.store.sqlite import database as sqlite_db

from .conftest import NOW


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'shared.db'}"


@pytest.fixture
async def pair(db_url: str) -> AsyncIterator[tuple[SqliteStore, SqliteStore]]:
    """Two stores on one file: what two gateway processes look like to SQLite."""
    first = await SqliteStore.open(db_url)
    second = await SqliteStore.open(db_url)
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()


def plain_rows(url: str, sql: str, parameters: Sequence[object] = ()) -> list[tuple[object, ...]]:
    """Read the file with the standard library, as an independent observer."""
    with closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as plain:
        return plain.execute(sql, parameters).fetchall()


async def add_job(store: Store, team_name: str, at: float = NOW) -> Job:
    team = await store.create_team(team_name, NOW)
    key = await store.create_key(
        team_id=team.id, name="k", key_hash=f"hash-{team_name}", prefix="p", now=NOW
    )
    job = Job(
        id=new_id("video", now=at),
        team_id=team.id,
        key_id=key.id,
        model="m",
        request=VideoRequest(model="m", prompt="p"),
        status="queued",
        created_at=NOW,
        updated_at=NOW,
    )
    await store.insert_job(job)
    return job


# -- URLs -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///data/gateway.db", "data/gateway.db"),
        ("sqlite:////var/lib/gateway.db", "/var/lib/gateway.db"),
        ("sqlite://:memory:", ":memory:"),
        ("sqlite:///:memory:", ":memory:"),
    ],
)
def test_parse_sqlite_url(url: str, path: str) -> None:
    assert parse_sqlite_url(url) == path


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///", "sqlite://host/x.db", "file.db"])
def test_parse_sqlite_url_rejects(url: str) -> None:
    with pytest.raises(ValueError):
        parse_sqlite_url(url)


async def test_open_store_rejects_other_schemes() -> None:
    with pytest.raises(ValueError, match="sqlite://") as caught:
        await open_store("mysql://root:secret@db/gateway")
    assert "secret" not in str(caught.value)
    with pytest.raises(ValueError):
        await open_store("gateway.db")


async def test_open_creates_directory_and_sets_wal(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "gateway.db"
    store = await open_store(f"sqlite:///{path}")
    try:
        await store.migrate()
    finally:
        await store.close()
    assert plain_rows(f"sqlite:///{path}", "PRAGMA journal_mode") == [("wal",)]


async def test_relative_url_is_relative_to_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = await open_store("sqlite:///var/gateway.db")
    await store.close()
    assert (tmp_path / "var" / "gateway.db").exists()


async def test_memory_store_works_and_serialises_reads() -> None:
    store = await open_store("sqlite://:memory:")
    try:
        assert await store.migrate() == await store.latest_version()
        jobs = await asyncio.gather(*(add_job(store, f"team-{i}", NOW + i) for i in range(10)))
        found = await asyncio.gather(*(store.get_job(job.id) for job in jobs))
        assert found == jobs
    finally:
        await store.close()


# -- migrations -----------------------------------------------------------------------------


def test_migrations_ship_as_package_data() -> None:
    migrations = load_migrations("sqlite")
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    assert migrations[0].name == "initial"
    assert latest_version("sqlite") == len(migrations)
    with pytest.raises(ValueError, match="no migrations"):
        load_migrations("oracle")


def test_split_statements() -> None:
    script = """
    -- a comment; with a semicolon
    CREATE TABLE a (x TEXT DEFAULT ';');  CREATE TABLE b (y INTEGER);
    CREATE TRIGGER t AFTER INSERT ON a BEGIN
        INSERT INTO b VALUES (1);
        INSERT INTO b VALUES (2);
    END;
    CREATE INDEX b_y ON b (y)
    -- trailing comment
    """
    statements = split_statements(script)
    assert len(statements) == 4
    assert statements[2].startswith("CREATE TRIGGER") and statements[2].endswith("END;")
    db = sqlite3.connect(":memory:")
    for statement in statements:
        db.execute(statement)
    db.execute("INSERT INTO a VALUES ('x')")
    assert db.execute("SELECT count(*) FROM b").fetchone() == (2,)
    db.close()
    with pytest.raises(ValueError, match="incomplete"):
        split_statements("CREATE TRIGGER t AFTER INSERT ON a BEGIN INSERT INTO b VALUES (1);")


async def test_failed_migration_rolls_back(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = Migration(2, "broken", "CREATE TABLE extra (a INTEGER);\nCREATE TABLE nope (;")
    shipped = load_migrations("sqlite")[:1]
    monkeypatch.setattr(sqlite_db, "load_migrations", lambda dialect: (*shipped, broken))
    store = await SqliteStore.open(db_url)
    try:
        with pytest.raises(sqlite3.OperationalError):
            await store.migrate()
        assert await store.schema_version() == 1
        await store.create_team("still-usable", NOW)  # no transaction was left open
        assert await store.team_by_name("still-usable") is not None
    finally:
        await store.close()
    tables = {row[0] for row in plain_rows(db_url, "SELECT name FROM sqlite_master")}
    assert "extra" not in tables


# -- several processes on one file ----------------------------------------------------------


async def test_two_stores_migrate_concurrently_and_share_writes(
    pair: tuple[SqliteStore, SqliteStore],
) -> None:
    first, second = pair
    latest = await first.latest_version()
    assert list(await asyncio.gather(first.migrate(), second.migrate())) == [latest, latest]
    assert await second.schema_version() == latest

    job = await add_job(first, "acme")
    assert await second.get_job(job.id) == job
    team = await second.team_by_name("acme")
    assert team is not None
    with pytest.raises(Conflict):
        await second.create_team("acme", NOW)

    updated = await second.update_job(job.id, {"status": "in_progress", "progress": 40})
    assert await first.get_job(job.id) == updated
    assert await first.delete_job(job.id, team.id, NOW)
    assert await second.get_job(job.id) is None


async def test_many_stores_migrate_and_write_at_once(db_url: str) -> None:
    stores = [await SqliteStore.open(db_url) for _ in range(4)]
    try:
        versions = await asyncio.gather(*(store.migrate() for store in stores))
        assert set(versions) == {await stores[0].latest_version()}
        await asyncio.gather(
            *(add_job(store, f"team-{i}-{n}") for i, store in enumerate(stores) for n in range(10))
        )
        for store in stores:
            assert len(await store.list_teams()) == 40
    finally:
        for store in stores:
            await store.close()
    applied = plain_rows(db_url, "SELECT version FROM schema_migrations ORDER BY version")
    assert [row[0] for row in applied] == list(range(1, latest_version("sqlite") + 1))


# -- hot paths use indexes ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "parameters"),
    [
        ("SELECT * FROM api_keys WHERE key_hash = ?", ("h",)),
        ("SELECT * FROM jobs WHERE id = ? AND deleted_at IS NULL AND team_id = ?", ("v", "t")),
        ("SELECT * FROM teams WHERE name = ?", ("n",)),
        (
            "SELECT * FROM jobs WHERE team_id = ? AND deleted_at IS NULL AND status != 'rejected'"
            " AND id < ? ORDER BY id DESC LIMIT ?",
            ("t", "v", 21),
        ),
        (
            "SELECT * FROM jobs WHERE team_id = ? AND deleted_at IS NULL AND status != 'rejected'"
            " ORDER BY id ASC LIMIT ?",
            ("t", 21),
        ),
    ],
)
async def test_hot_queries_search_an_index(
    db_url: str, query: str, parameters: tuple[object, ...]
) -> None:
    store = await SqliteStore.open(db_url)
    try:
        await store.migrate()
    finally:
        await store.close()
    plan = " | ".join(
        str(row[3]) for row in plain_rows(db_url, f"EXPLAIN QUERY PLAN {query}", parameters)
    )
    assert "SEARCH" in plan
    assert "SCAN" not in plan
    assert "TEMP B-TREE" not in plan


async def test_a_write_whose_caller_gave_up_is_rolled_back_and_releases_the_lock(
    db_url: str,
) -> None:
    """A write runs whole on the writer's thread even when its caller is cancelled; when it
    then fails half-way, nothing of it stays and the file's write lock is free again."""
    store = await SqliteStore.open(db_url)
    other = await SqliteStore.open(db_url)
    entered, go_on = threading.Event(), threading.Event()

    def half_done(connection: sqlite3.Connection) -> None:
        connection.execute("INSERT INTO teams VALUES ('team_x', 'half-done', 1)")
        entered.set()
        go_on.wait(timeout=60)
        raise RuntimeError("stopped half-way")

    try:
        await store.migrate()
        task = asyncio.create_task(store._write(half_done))
        assert await asyncio.to_thread(entered.wait, 60)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        go_on.set()
        await store.create_team("after", NOW)  # queued behind the failed write
        assert await store.team_by_name("half-done") is None
        await other.create_team("from-another-process", NOW)  # the file's write lock is free
        assert {t.name for t in await other.list_teams()} == {"after", "from-another-process"}
    finally:
        go_on.set()
        await store.close()
        await other.close()
