"""Raw SELECTs under the store port, for tests that check what was written (counters, ledger
rows) beyond what the port returns. Works on either adapter."""

from __future__ import annotations

from typing import Any

from gateway.store.sqlite import SqliteStore
from gateway.store.sqlite.rows import fetchall


async def fetch_rows(store: Any, sql: str, *parameters: Any) -> list[Any]:
    """The rows of ``sql`` (``?`` placeholders on SQLite, ``$1`` on PostgreSQL)."""
    if isinstance(store, SqliteStore):
        return await store._read(fetchall, sql, parameters)
    return list(await store._pool.fetch(sql, *parameters))
