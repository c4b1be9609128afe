"""The PostgreSQL connection discipline of the adapter: the pool, transactions, migrations.

One asyncpg pool per store. A single statement runs on any pooled connection (no ``BEGIN`` round
trip); read-then-write work runs in one ``transaction()`` on one connection and takes row locks
(``FOR UPDATE``, ``FOR SHARE``, ``SKIP LOCKED``) or a transaction-scoped advisory lock where
SQLite takes ``BEGIN IMMEDIATE``. Lock order, in every transaction: the calling key's row, the
Idempotency-Key, rate state rows, the advisory lock of a cache key, job rows, asset rows (by
key), budget counters (by primary key), cache entries. Only ``gateway.store.postgres`` imports
asyncpg.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, NoReturn, TypeAlias

import asyncpg

from gateway.domain.teams import TEAM_NAME_RULE
from gateway.errors import Conflict, InvalidRequest, NotFound, OutageTypes
from gateway.store.migrations import Migration, latest_version, load_migrations

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Pool: TypeAlias = asyncpg.Pool[asyncpg.Record]
    Connection: TypeAlias = PoolConnectionProxy[asyncpg.Record]
    # A single statement runs on the pool; a transaction's statements on its connection.
    Executor: TypeAlias = Pool | Connection

# asyncpg's exceptions for a database that is briefly unavailable (the store's outage_errors).
# A lock not granted within the URL's ``lock_timeout`` is one too, as SQLite's "database is
# locked" after ``busy_timeout`` is: the transaction rolled back, a retry can succeed.
OUTAGE_ERRORS: OutageTypes = (
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.InterfaceError,
    asyncpg.LockNotAvailableError,
)
DIALECT = "postgresql"
_SCHEMES = ("postgresql", "postgres")
# pg_advisory_xact_lock(bigint) key of migrations: "gwmigrat" in ASCII. The other locks use the
# two-int form (a separate key space): cache keys, in-flight counts, delivery claims.
_MIGRATION_LOCK = 0x67776D6967726174
DEFAULT_POOL_MIN_SIZE = 1
DEFAULT_POOL_MAX_SIZE = 10


def check_postgres_url(url: str) -> str:
    """``url`` itself when it is a ``postgresql://`` or ``postgres://`` URL (asyncpg reads it)."""
    scheme, sep, _ = url.partition("://")
    if scheme not in _SCHEMES or not sep:
        raise ValueError(f"not a postgresql:// URL: {scheme}://")
    return url


async def open_pool(url: str, pool_min_size: int, pool_max_size: int) -> Pool:
    """A pool of ``pool_min_size`` to ``pool_max_size`` connections to ``url``.

    Query parameters asyncpg does not know become server settings, e.g.
    ``?search_path=gateway`` keeps the tables in schema ``gateway``.
    """
    check_postgres_url(url)
    if pool_min_size < 0 or pool_max_size < 1 or pool_min_size > pool_max_size:
        raise ValueError(
            "the database pool needs 0 <= pool_min_size <= pool_max_size and"
            f" pool_max_size >= 1, got {pool_min_size} and {pool_max_size}"
        )
    return await asyncpg.create_pool(url, min_size=pool_min_size, max_size=pool_max_size)


@asynccontextmanager
async def transaction(pool: Pool) -> AsyncIterator[Connection]:
    """One pooled connection inside ``BEGIN`` ... ``COMMIT`` (rolled back on any error).

    READ COMMITTED: each statement sees what committed before it started, so a row read after
    its lock was granted is the row as its last writer left it.
    """
    async with pool.acquire() as connection, connection.transaction():
        yield connection


async def migrate(pool: Pool) -> int:
    """Apply every migration not yet applied, each in a transaction of its own; the version."""
    # Under the lock: concurrent CREATE TABLE IF NOT EXISTS can collide in the catalog.
    async with transaction(pool) as connection:
        await connection.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
        await connection.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations"
            " (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)"
        )
    for migration in load_migrations(DIALECT):
        async with transaction(pool) as connection:
            await _apply(connection, migration)
    return await schema_version(pool)


async def _apply(connection: Connection, migration: Migration) -> None:
    # Every replica queues here; the first applies, the others find it applied.
    await connection.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
    applied = await connection.fetchval(
        "SELECT 1 FROM schema_migrations WHERE version = $1", migration.version
    )
    if applied is not None:
        return
    # Without parameters asyncpg sends the script as one simple query: every statement of it
    # runs, inside this transaction.
    await connection.execute(migration.sql)
    await connection.execute(
        "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
        migration.version,
        int(time.time()),
    )


async def schema_version(db: Executor) -> int:
    if not await db.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL"):
        return 0
    version = await db.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
    return int(version or 0)


def shipped_version() -> int:
    """The version the migrations shipped with this code reach."""
    return latest_version(DIALECT)


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
