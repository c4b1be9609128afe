"""The SQLite connection discipline shared by every part of the SQLite adapter.

One writer connection serialises writes behind an ``asyncio.Lock``; read-then-write transactions
use ``BEGIN IMMEDIATE`` so several processes can share one database file. A second, read-only
connection serves lookups without queueing behind writes (WAL readers never block). Also the
URL parsing, migrations, and the mapping between job rows and ``Job`` records.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, NoReturn, Self

import aiosqlite
import orjson

from gateway.errors import Conflict, NotFound
from gateway.store.base import Job
from gateway.store.migrations import Migration, latest_version, load_migrations

_DIALECT = "sqlite"
_MEMORY = ":memory:"
_PRAGMAS = (
    "PRAGMA busy_timeout = 5000",  # first, so the others wait for a busy database too
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = NORMAL",
    "PRAGMA foreign_keys = ON",
)

# The jobs columns are the ``Job`` fields, with ``request`` stored as ``request_json``.
JOB_COLUMN_NAMES = tuple(
    "request_json" if field.name == "request" else field.name for field in dataclasses.fields(Job)
)
JOB_COLUMNS = ", ".join(JOB_COLUMN_NAMES)
VISIBLE_JOB = "deleted_at IS NULL AND status != 'rejected'"
# Column lists are constants, never input: S608 (SQL built from strings) does not apply.
SELECT_JOB = f"SELECT {JOB_COLUMNS} FROM jobs"  # noqa: S608
INSERT_JOB = f"INSERT INTO jobs ({JOB_COLUMNS}) VALUES ({', '.join('?' * len(JOB_COLUMN_NAMES))})"  # noqa: S608


def parse_sqlite_url(url: str) -> str:
    """The database path in ``sqlite:///relative.db``, ``sqlite:////abs.db`` or ``sqlite://:memory:``."""
    scheme, sep, rest = url.partition("://")
    if scheme != "sqlite" or not sep:
        raise ValueError(f"not a sqlite:// URL: {url!r}")
    if rest == _MEMORY:
        return _MEMORY
    path = rest[1:] if rest.startswith("/") else ""
    if not path:
        raise ValueError(
            f"bad SQLite URL {url!r}: use sqlite:///relative/path.db, sqlite:////absolute/path.db"
            " or sqlite://:memory:"
        )
    return path


def split_statements(script: str) -> list[str]:
    """Split a SQL script into single statements (``execute`` runs one at a time).

    ``executescript`` cannot be used for migrations: it commits any open transaction first.
    """
    statements: list[str] = []
    buffer = ""
    for piece in script.split(";"):
        buffer += piece + ";"
        if sqlite3.complete_statement(buffer):
            if re.sub(r"--[^\n]*", "", buffer).strip(" \t\r\n;"):
                statements.append(buffer.strip())
            buffer = ""
    if buffer.strip(" \t\r\n;"):
        raise ValueError(f"incomplete SQL statement at the end of the script: {buffer.strip()!r}")
    return statements


class SqliteDatabase:
    """Connections, transactions and migrations; the query mixins build on this."""

    def __init__(self, writer: aiosqlite.Connection, reader: aiosqlite.Connection) -> None:
        self._writer = writer
        # For ``:memory:`` the reader *is* the writer: reads then take the lock too, so they
        # never see another caller's half-done transaction.
        self._reader = reader
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, url: str) -> Self:
        """Connect to the database named by ``url``, creating its directory when needed."""
        path = parse_sqlite_url(url)
        if path == _MEMORY:
            connection = await _connect(path)
            return cls(connection, connection)
        await asyncio.to_thread(Path(path).parent.mkdir, parents=True, exist_ok=True)
        writer = await _connect(path)
        try:
            reader = await _connect(path, read_only=True)
        except BaseException:
            await writer.close()
            raise
        return cls(writer, reader)

    async def close(self) -> None:
        async with self._lock:
            if self._reader is not self._writer:
                await self._reader.close()
            await self._writer.close()

    # -- connection discipline ------------------------------------------------------------

    @asynccontextmanager
    async def _reading(self) -> AsyncIterator[aiosqlite.Connection]:
        if self._reader is self._writer:
            async with self._lock:
                yield self._reader
        else:
            yield self._reader

    @asynccontextmanager
    async def _writing(self) -> AsyncIterator[aiosqlite.Connection]:
        """The writer, alone, in autocommit mode: for single atomic statements."""
        async with self._lock:
            yield self._writer

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``: takes the database write lock before reading."""
        async with self._lock:
            try:
                await self._writer.execute("BEGIN IMMEDIATE")
                yield self._writer
                await self._writer.execute("COMMIT")
            except BaseException:
                # Queued behind whatever was sent (aiosqlite runs calls in order), and a no-op
                # when no transaction is open: even a cancelled BEGIN never leaves one behind.
                await self._writer.rollback()
                raise

    async def _fetch(self, sql: str, parameters: Sequence[Any] = ()) -> list[sqlite3.Row]:
        async with self._reading() as connection:
            return list(await connection.execute_fetchall(sql, parameters))

    async def _fetch_one(self, sql: str, parameters: Sequence[Any] = ()) -> sqlite3.Row | None:
        rows = await self._fetch(sql, parameters)
        return rows[0] if rows else None

    # -- migrations -----------------------------------------------------------------------

    async def migrate(self) -> int:
        async with self._transaction() as connection:
            await connection.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations"
                " (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)"
            )
        for migration in load_migrations(_DIALECT):
            await self._apply(migration)
        return await self.schema_version()

    async def _apply(self, migration: Migration) -> None:
        async with self._transaction() as connection:
            # Re-checked under the write lock: another process may have just applied it.
            rows = await connection.execute_fetchall(
                "SELECT 1 FROM schema_migrations WHERE version = ?", (migration.version,)
            )
            if list(rows):
                return
            for statement in split_statements(migration.sql):
                await connection.execute(statement)
            await connection.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                (migration.version, int(time.time())),
            )

    async def schema_version(self) -> int:
        exists = await self._fetch_one(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
        )
        if exists is None:
            return 0
        row = await self._fetch_one("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
        return int(row[0]) if row is not None else 0

    async def latest_version(self) -> int:
        return latest_version(_DIALECT)


async def _connect(path: str, *, read_only: bool = False) -> aiosqlite.Connection:
    # isolation_level=None: no implicit transactions; this module issues BEGIN/COMMIT itself.
    connection = await aiosqlite.connect(path, isolation_level=None)
    try:
        connection.row_factory = sqlite3.Row
        for pragma in _PRAGMAS:
            await connection.execute(pragma)
        if read_only:
            await connection.execute("PRAGMA query_only = ON")
    except BaseException:
        await connection.close()
        raise
    return connection


def raise_translated(
    exc: sqlite3.IntegrityError, *, taken: str, missing: str | None = None
) -> NoReturn:
    """A taken unique value becomes ``Conflict``, a missing parent row ``NotFound``."""
    message = str(exc)
    if missing is not None and "FOREIGN KEY" in message:
        raise NotFound(missing) from exc
    if "UNIQUE" in message:
        raise Conflict(taken) from exc
    raise exc


def job_from_row(row: sqlite3.Row) -> Job:
    values = dict(zip(JOB_COLUMN_NAMES, row, strict=True))
    request = orjson.loads(values.pop("request_json"))
    return Job(request=request, **values)


def job_row(job: Job) -> tuple[Any, ...]:
    """The row for ``job``, in ``JOB_COLUMN_NAMES`` order."""
    return tuple(
        orjson.dumps(dict(job.request)).decode() if name == "request_json" else getattr(job, name)
        for name in JOB_COLUMN_NAMES
    )
