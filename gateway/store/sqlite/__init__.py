"""The SQLite adapter of the ``Store`` port: ``sqlite3`` on threads of its own.

``store.SqliteStore`` is a flat class whose methods hand one function each to a connection's
thread (``database``); the functions are grouped by concern: ``keys``, ``jobs``, ``leases``,
``assets``, ``admission``, ``endings``, ``money``, ``idempotency``, ``traffic``, ``webhooks``,
``browse``, ``reports``; ``rows`` is the job row codec. Only this package knows the SQLite
dialect; services import ``store.base``.
"""

from gateway.store.sqlite.database import parse_sqlite_url, split_statements
from gateway.store.sqlite.store import SqliteStore

__all__ = ["SqliteStore", "parse_sqlite_url", "split_statements"]
