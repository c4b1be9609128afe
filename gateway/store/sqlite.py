"""The SQLite adapter of the ``Store`` protocol, on aiosqlite.

One writer connection serialises writes behind an ``asyncio.Lock``; read-then-write transactions
use ``BEGIN IMMEDIATE`` so several processes can share one database file. A second, read-only
connection serves lookups without queueing behind writes (WAL readers never block).
Only this module knows the SQLite dialect; services import ``store.base``, never this.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, NoReturn

import aiosqlite
import orjson

from gateway.errors import Conflict, NotFound
from gateway.ids import new_id
from gateway.store.base import UPDATABLE_JOB_FIELDS, ApiKey, Job, Order, Team
from gateway.store.migrations import Migration, latest_version, load_migrations

_DIALECT = "sqlite"
_MEMORY = ":memory:"
_PRAGMAS = (
    "PRAGMA busy_timeout = 5000",  # first, so the others wait for a busy database too
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = NORMAL",
    "PRAGMA foreign_keys = ON",
)

_TEAM_COLUMNS = "id, name, created_at"
_KEY_COLUMNS = "id, team_id, name, prefix, created_at, revoked_at"
# The jobs columns are the ``Job`` fields, with ``request`` stored as ``request_json``.
_JOB_COLUMN_NAMES = tuple(
    "request_json" if field.name == "request" else field.name for field in dataclasses.fields(Job)
)
_JOB_COLUMNS = ", ".join(_JOB_COLUMN_NAMES)
_VISIBLE_JOB = "deleted_at IS NULL AND status != 'rejected'"
# Column lists are constants, never input: S608 (SQL built from strings) does not apply.
_SELECT_TEAM = f"SELECT {_TEAM_COLUMNS} FROM teams"  # noqa: S608
_SELECT_KEY = f"SELECT {_KEY_COLUMNS} FROM api_keys"  # noqa: S608
_SELECT_JOB = f"SELECT {_JOB_COLUMNS} FROM jobs"  # noqa: S608
_INSERT_JOB = (
    f"INSERT INTO jobs ({_JOB_COLUMNS}) VALUES ({', '.join('?' * len(_JOB_COLUMN_NAMES))})"  # noqa: S608
)


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


class SqliteStore:
    """``Store`` on one SQLite database; safe for concurrent callers and processes."""

    def __init__(self, writer: aiosqlite.Connection, reader: aiosqlite.Connection) -> None:
        self._writer = writer
        # For ``:memory:`` the reader *is* the writer: reads then take the lock too, so they
        # never see another caller's half-done transaction.
        self._reader = reader
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, url: str) -> SqliteStore:
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

    # -- teams and keys -------------------------------------------------------------------

    async def create_team(self, name: str, now: int) -> Team:
        team = Team(id=new_id("team", now=now), name=name, created_at=now)
        try:
            async with self._writing() as connection:
                await connection.execute(
                    "INSERT INTO teams (id, name, created_at) VALUES (?, ?, ?)",
                    (team.id, team.name, team.created_at),
                )
        except sqlite3.IntegrityError as exc:
            _raise_translated(exc, taken=f"a team named {name!r} already exists")
        return team

    async def team_by_name(self, name: str) -> Team | None:
        row = await self._fetch_one(_SELECT_TEAM + " WHERE name = ?", (name,))
        return _team(row) if row is not None else None

    async def team_by_id(self, team_id: str) -> Team | None:
        row = await self._fetch_one(_SELECT_TEAM + " WHERE id = ?", (team_id,))
        return _team(row) if row is not None else None

    async def list_teams(self) -> list[Team]:
        return [_team(row) for row in await self._fetch(_SELECT_TEAM + " ORDER BY name")]

    async def create_key(
        self, *, team_id: str, name: str, key_hash: str, prefix: str, now: int
    ) -> ApiKey:
        key = ApiKey(
            id=new_id("key", now=now), team_id=team_id, name=name, prefix=prefix, created_at=now
        )
        try:
            async with self._writing() as connection:
                await connection.execute(
                    "INSERT INTO api_keys (id, team_id, name, key_hash, prefix, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (key.id, team_id, name, key_hash, prefix, now),
                )
        except sqlite3.IntegrityError as exc:
            _raise_translated(
                exc, taken="a key with this hash already exists", missing=f"no team {team_id!r}"
            )
        return key

    async def key_by_hash(self, key_hash: str) -> ApiKey | None:
        row = await self._fetch_one(_SELECT_KEY + " WHERE key_hash = ?", (key_hash,))
        return _key(row) if row is not None else None

    async def list_keys(self, team_id: str | None = None) -> list[ApiKey]:
        if team_id is None:
            rows = await self._fetch(_SELECT_KEY + " ORDER BY created_at, id")
        else:
            rows = await self._fetch(
                _SELECT_KEY + " WHERE team_id = ? ORDER BY created_at, id",
                (team_id,),
            )
        return [_key(row) for row in rows]

    async def revoke_key(self, key_id: str, now: int) -> bool:
        async with self._writing() as connection:
            cursor = await connection.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (now, key_id),
            )
            return cursor.rowcount == 1

    # -- jobs -----------------------------------------------------------------------------

    async def insert_job(self, job: Job) -> None:
        try:
            async with self._writing() as connection:
                await connection.execute(_INSERT_JOB, _job_values(job))
        except sqlite3.IntegrityError as exc:
            _raise_translated(
                exc,
                taken=f"job {job.id!r} already exists",
                missing=f"job {job.id!r} refers to an unknown team or key",
            )

    async def get_job(self, job_id: str, team_id: str | None = None) -> Job | None:
        sql = _SELECT_JOB + " WHERE id = ? AND deleted_at IS NULL"
        if team_id is None:
            row = await self._fetch_one(sql, (job_id,))
        else:
            row = await self._fetch_one(sql + " AND team_id = ?", (job_id, team_id))
        return _job(row) if row is not None else None

    async def update_job(self, job_id: str, changes: Mapping[str, Any]) -> Job | None:
        """Apply ``changes``; soft-deleted jobs are updated too (the runner still settles them)."""
        forbidden = sorted(set(changes) - UPDATABLE_JOB_FIELDS)
        if forbidden:
            raise ValueError(f"job fields cannot be updated: {', '.join(forbidden)}")
        if not changes:
            rows = await self._fetch(_SELECT_JOB + " WHERE id = ?", (job_id,))
        else:
            fields = sorted(changes)  # whitelisted above, so safe to splice into the SQL
            assignments = ", ".join(f"{field} = ?" for field in fields)
            async with self._writing() as connection:
                rows = list(
                    await connection.execute_fetchall(
                        f"UPDATE jobs SET {assignments} WHERE id = ? RETURNING {_JOB_COLUMNS}",  # noqa: S608
                        (*(changes[field] for field in fields), job_id),
                    )
                )
        return _job(rows[0]) if rows else None

    async def list_jobs(
        self, team_id: str, *, after: str | None, limit: int, order: Order
    ) -> tuple[list[Job], bool]:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        if order not in ("asc", "desc"):
            raise ValueError(f"order must be 'asc' or 'desc', got {order!r}")
        sql = f"{_SELECT_JOB} WHERE team_id = ? AND {_VISIBLE_JOB}"
        parameters: list[Any] = [team_id]
        if after is not None:
            sql += " AND id < ?" if order == "desc" else " AND id > ?"
            parameters.append(after)
        sql += f" ORDER BY id {order.upper()} LIMIT ?"
        parameters.append(limit + 1)
        rows = await self._fetch(sql, parameters)
        return [_job(row) for row in rows[:limit]], len(rows) > limit

    async def delete_job(self, job_id: str, team_id: str, now: int) -> bool:
        async with self._writing() as connection:
            cursor = await connection.execute(
                f"UPDATE jobs SET deleted_at = ? WHERE id = ? AND team_id = ? AND {_VISIBLE_JOB}",  # noqa: S608
                (now, job_id, team_id),
            )
            return cursor.rowcount == 1


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


def _raise_translated(
    exc: sqlite3.IntegrityError, *, taken: str, missing: str | None = None
) -> NoReturn:
    """A taken unique value becomes ``Conflict``, a missing parent row ``NotFound``."""
    message = str(exc)
    if missing is not None and "FOREIGN KEY" in message:
        raise NotFound(missing) from exc
    if "UNIQUE" in message:
        raise Conflict(taken) from exc
    raise exc


def _team(row: sqlite3.Row) -> Team:
    return Team(id=row["id"], name=row["name"], created_at=row["created_at"])


def _key(row: sqlite3.Row) -> ApiKey:
    return ApiKey(
        id=row["id"],
        team_id=row["team_id"],
        name=row["name"],
        prefix=row["prefix"],
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
    )


def _job(row: sqlite3.Row) -> Job:
    values = dict(zip(_JOB_COLUMN_NAMES, row, strict=True))
    request = orjson.loads(values.pop("request_json"))
    return Job(request=request, **values)


def _job_values(job: Job) -> tuple[Any, ...]:
    """The row for ``job``, in ``_JOB_COLUMN_NAMES`` order."""
    return tuple(
        orjson.dumps(dict(job.request)).decode() if name == "request_json" else getattr(job, name)
        for name in _JOB_COLUMN_NAMES
    )
