"""Opening a store: the adapter for a URL's scheme, imported only when its URL names it.

Only ``app.py``, ``cli.py`` and tests call this; services receive an opened ``Store``.
"""

from __future__ import annotations

from gateway.store.base import Store


async def open_store(
    url: str,
    *,
    pool_min_size: int = 1,
    pool_max_size: int = 10,
    busy_timeout_seconds: float = 5.0,
) -> Store:
    """Open the adapter for ``url``'s scheme (not yet migrated: call ``migrate()``).

    ``pool_min_size``/``pool_max_size`` bound a PostgreSQL adapter's connection pool (per
    process); SQLite ignores them (one writer and one reader connection).
    ``busy_timeout_seconds`` is how long SQLite waits for another process's write lock;
    PostgreSQL ignores it (row locks wait as long as they must).
    """
    scheme, sep, _ = url.partition("://")
    if sep and scheme == "sqlite":
        # Imported here so a deployment loads only the driver its URL names.
        from gateway.store.sqlite import SqliteStore

        return await SqliteStore.open(url, busy_timeout_seconds=busy_timeout_seconds)
    if sep and scheme in ("postgresql", "postgres"):
        from gateway.store.postgres import PostgresStore

        return await PostgresStore.open(
            url, pool_min_size=pool_min_size, pool_max_size=pool_max_size
        )
    # Only the scheme is echoed: the rest of a database URL may hold a password.
    shown = f"{scheme}://" if sep else "(no scheme)"
    raise ValueError(
        f"unsupported database URL {shown}: expected"
        " sqlite:///relative.db, sqlite:////absolute.db, sqlite://:memory: or postgresql://..."
    )
