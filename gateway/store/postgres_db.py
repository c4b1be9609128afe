"""The PostgreSQL connection discipline shared by every part of the PostgreSQL adapter.

One asyncpg pool per store. Single statements run on any pooled connection; read-then-write work
runs in one transaction on one connection and takes row locks (``FOR UPDATE``, ``FOR SHARE``,
``SKIP LOCKED``) or a transaction-scoped advisory lock where SQLite takes ``BEGIN IMMEDIATE``.
Lock order, in every transaction: advisory lock of a cache key, job rows, asset rows (by key),
budget counters (by primary key), cache entries. Also migrations, under an advisory lock, and
the mapping between job rows and ``Job`` records. Only the ``postgres*`` modules import asyncpg.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, NoReturn, Self

import asyncpg
import orjson

from gateway.domain.teams import TEAM_NAME_RULE
from gateway.domain.video_request import VideoRequest
from gateway.errors import Conflict, InvalidRequest, NotFound, OutageTypes
from gateway.store.base import UPDATABLE_JOB_FIELDS, Job, JobChanges
from gateway.store.migrations import Migration, latest_version, load_migrations

# asyncpg's exceptions for a database that is briefly unavailable (the store's outage_errors).
OUTAGE_ERRORS: OutageTypes = (
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.InterfaceError,
)

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Connection = PoolConnectionProxy[asyncpg.Record]

_DIALECT = "postgresql"
_SCHEMES = ("postgresql", "postgres")
# pg_advisory_xact_lock(bigint) key of migrations: "gwmigrat" in ASCII. Cache keys use the
# two-int form (a separate key space, see ``CACHE_KEY_LOCK``).
_MIGRATION_LOCK = 0x67776D6967726174
DEFAULT_POOL_MIN_SIZE = 1
DEFAULT_POOL_MAX_SIZE = 10

# The jobs columns are the ``Job`` fields, with ``request`` stored as ``request_json``.
JOB_COLUMN_NAMES = tuple(
    "request_json" if field.name == "request" else field.name for field in dataclasses.fields(Job)
)
JOB_COLUMNS = ", ".join(JOB_COLUMN_NAMES)
# BIGINT columns: asyncpg would silently truncate a fractional float sent to one.
_WHOLE_COLUMNS = frozenset(
    {
        "progress",
        "created_at",
        "updated_at",
        "completed_at",
        "deleted_at",
        "attempts",
        "expires_at",
        "price_micros",
        "cost_micros",
        "charged_micros",
        "delivered_seconds",
    }
)
VISIBLE_JOB = "deleted_at IS NULL AND status != 'rejected'"
RUNNABLE = "('submitting', 'submit_unknown', 'queued', 'in_progress', 'downloading')"
# Column lists are constants, never input: S608 (SQL built from strings) does not apply.
SELECT_JOB = f"SELECT {JOB_COLUMNS} FROM jobs"  # noqa: S608
INSERT_JOB = (
    f"INSERT INTO jobs ({JOB_COLUMNS}) VALUES"  # noqa: S608
    f" ({', '.join(f'${n}' for n in range(1, len(JOB_COLUMN_NAMES) + 1))})"
)


def check_postgres_url(url: str) -> str:
    """``url`` itself when it is a ``postgresql://`` or ``postgres://`` URL (asyncpg reads it)."""
    scheme, sep, _ = url.partition("://")
    if scheme not in _SCHEMES or not sep:
        raise ValueError(f"not a postgresql:// URL: {scheme}://")
    return url


class PostgresDatabase:
    """A pool, transactions and migrations; the query mixins build on this."""

    def __init__(self, pool: asyncpg.Pool[asyncpg.Record]) -> None:
        self._pool = pool

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        pool_min_size: int = DEFAULT_POOL_MIN_SIZE,
        pool_max_size: int = DEFAULT_POOL_MAX_SIZE,
    ) -> Self:
        """Connect a pool of ``pool_min_size`` to ``pool_max_size`` connections to ``url``.

        Query parameters asyncpg does not know become server settings, e.g.
        ``?search_path=gateway`` keeps the tables in schema ``gateway``.
        """
        check_postgres_url(url)
        if pool_min_size < 0 or pool_max_size < 1 or pool_min_size > pool_max_size:
            raise ValueError(
                "the database pool needs 0 <= pool_min_size <= pool_max_size and"
                f" pool_max_size >= 1, got {pool_min_size} and {pool_max_size}"
            )
        pool = await asyncpg.create_pool(url, min_size=pool_min_size, max_size=pool_max_size)
        return cls(pool)

    async def close(self) -> None:
        await self._pool.close()

    # -- connection discipline ------------------------------------------------------------

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Connection]:
        """One pooled connection inside ``BEGIN`` ... ``COMMIT`` (rolled back on any error).

        READ COMMITTED: each statement sees what committed before it started, so a row read
        after its lock was granted is the row as its last writer left it.
        """
        async with self._pool.acquire() as connection, connection.transaction():
            yield connection

    async def _fetch(self, sql: str, *parameters: Any) -> list[asyncpg.Record]:
        return await self._pool.fetch(sql, *parameters)

    async def _fetch_one(self, sql: str, *parameters: Any) -> asyncpg.Record | None:
        return await self._pool.fetchrow(sql, *parameters)

    async def _execute(self, sql: str, *parameters: Any) -> str:
        """Run one statement on its own; the command tag (e.g. ``UPDATE 1``)."""
        return await self._pool.execute(sql, *parameters)

    # -- migrations -----------------------------------------------------------------------

    async def migrate(self) -> int:
        # Under the lock: concurrent CREATE TABLE IF NOT EXISTS can collide in the catalog.
        async with self._transaction() as connection:
            await connection.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
            await connection.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations"
                " (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)"
            )
        for migration in load_migrations(_DIALECT):
            await self._apply(migration)
        return await self.schema_version()

    async def _apply(self, migration: Migration) -> None:
        async with self._transaction() as connection:
            # Every replica queues here; the first applies, the others find it applied.
            await connection.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
            applied = await connection.fetchval(
                "SELECT 1 FROM schema_migrations WHERE version = $1", migration.version
            )
            if applied is not None:
                return
            # Without parameters asyncpg sends the script as one simple query: every statement
            # of it runs, inside this transaction.
            await connection.execute(migration.sql)
            await connection.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
                migration.version,
                int(time.time()),
            )

    async def schema_version(self) -> int:
        row = await self._fetch_one("SELECT to_regclass('schema_migrations') IS NOT NULL")
        if row is None or not row[0]:
            return 0
        row = await self._fetch_one("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
        return int(row[0]) if row is not None else 0

    async def latest_version(self) -> int:
        return latest_version(_DIALECT)


def raise_translated(
    exc: asyncpg.IntegrityConstraintViolationError, *, taken: str, missing: str | None = None
) -> NoReturn:
    """A taken unique value becomes ``Conflict``, a missing parent row ``NotFound``."""
    if missing is not None and isinstance(exc, asyncpg.ForeignKeyViolationError):
        raise NotFound(missing) from exc
    if isinstance(exc, asyncpg.UniqueViolationError):
        raise Conflict(taken) from exc
    if isinstance(exc, asyncpg.CheckViolationError) and "teams_name_pattern" in str(exc):
        raise InvalidRequest(f"{TEAM_NAME_RULE}.", param="name") from exc
    raise exc


def column_value(name: str, value: Any) -> Any:
    """``value`` as its column stores it: whole numbers for BIGINT columns (as SQLite does
    with a float like 5.0), never a fraction silently truncated."""
    if name in _WHOLE_COLUMNS and isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"job field {name} must be a whole number, got {value!r}")
        return int(value)
    return value


def job_assignments(changes: JobChanges, first: int = 1) -> tuple[str, list[Any]]:
    """``SET`` clause (placeholders from ``$first``) and parameters for ``changes``. mypy checks
    the keys; at run time only the columns of ``JobChanges`` are ever spliced into the SQL."""
    columns: Mapping[str, object] = changes
    forbidden = sorted(set(columns) - UPDATABLE_JOB_FIELDS)
    if forbidden:
        raise ValueError(f"job fields cannot be updated: {', '.join(forbidden)}")
    fields = sorted(columns)  # columns of JobChanges (checked above): safe in the SQL
    clause = ", ".join(f"{field} = ${n}" for n, field in enumerate(fields, start=first))
    return clause, [column_value(field, columns[field]) for field in fields]


def job_from_row(row: asyncpg.Record) -> Job:
    values = dict(zip(JOB_COLUMN_NAMES, row.values(), strict=True))
    request = VideoRequest.from_json(orjson.loads(values.pop("request_json")))
    return Job(request=request, **values)


def job_row(job: Job) -> list[Any]:
    """The row for ``job``, in ``JOB_COLUMN_NAMES`` order."""
    return [
        orjson.dumps(job.request.to_json()).decode()
        if name == "request_json"
        else column_value(name, getattr(job, name))
        for name in JOB_COLUMN_NAMES
    ]
