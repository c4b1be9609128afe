"""The PostgreSQL adapter (asyncpg): ``PostgresStore`` and the modules it delegates to, one per
concern. Only this package imports asyncpg; services import ``gateway.store.base``."""

from __future__ import annotations

from gateway.store.postgres.store import PostgresStore

__all__ = ["PostgresStore"]
