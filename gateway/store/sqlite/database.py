"""The SQLite connection discipline of the adapter: a thread per connection, group commit.

Each connection belongs to one thread of its own (``SqliteConnection``); coroutines hand it a
whole synchronous function, so a store operation is one hop to that thread however many
statements it runs. Writes run inside ``BEGIN IMMEDIATE`` ... ``COMMIT`` in that one function, so
several processes can share one database file; the writer's thread runs one function at a time,
in the order they were handed over, which serialises writes, and commits the writes queued at
the same moment together (each in its own savepoint: see ``_Worker``). A second, read-only
connection serves lookups without queueing behind writes (WAL readers never block). Also the
URL parsing, migrations and the translation of integrity errors.
"""

from __future__ import annotations

import asyncio
import functools
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from pathlib import Path
from queue import Empty, SimpleQueue
from typing import Any, NoReturn, Self, TypeVar

from gateway.domain.teams import TEAM_NAME_RULE
from gateway.errors import Conflict, InvalidRequest, NotFound
from gateway.store.migrations import Migration, load_migrations
from gateway.store.sqlite.rows import fetchone

DIALECT = "sqlite"
_MEMORY = ":memory:"
BUSY_TIMEOUT_SECONDS = 5.0  # ``PRAGMA busy_timeout`` comes first: the pragmas wait too
_PRAGMAS = ("PRAGMA journal_mode = WAL", "PRAGMA synchronous = NORMAL", "PRAGMA foreign_keys = ON")

T = TypeVar("T")


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


# -- one connection, one thread -----------------------------------------------------------

# (future, work, transactional): ``work`` is a function of no arguments run on the thread.
_Item = tuple["asyncio.Future[Any]", Callable[[], Any], bool]
_Outcome = tuple["asyncio.Future[Any]", bool, Any]
# At most this many queued transactions share one BEGIN IMMEDIATE ... COMMIT.
GROUP_COMMIT_LIMIT = 32


def _deliver(outcomes: Sequence[_Outcome]) -> None:
    """Hand results to their callers' event loops (a no-op for callers that gave up)."""
    for future, ok, value in outcomes:
        with suppress(RuntimeError):  # the caller's event loop is closed: nobody is waiting
            future.get_loop().call_soon_threadsafe(_settle, future, ok, value)


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.done():  # the caller was cancelled meanwhile
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


def _call(future: asyncio.Future[Any], work: Callable[[], Any]) -> _Outcome:
    try:
        return future, True, work()
    except BaseException as exc:
        return future, False, exc


class _Worker:
    """The thread that owns one ``sqlite3`` connection and runs what it is handed, in order.

    Transactional work queued back to back is committed as a group: one ``BEGIN IMMEDIATE`` ...
    ``COMMIT`` around all of it, each piece inside its own ``SAVEPOINT``, so a piece that raises
    is rolled back alone and the others are unaffected; results are handed back only after the
    ``COMMIT``. The commit (locks and WAL writes) is the dearest part of a small transaction,
    and under load it is paid once per group instead of once per request.
    """

    def __init__(self, name: str) -> None:
        self.queue: SimpleQueue[_Item | None] = SimpleQueue()
        self.connection: sqlite3.Connection | None = None
        self.thread = threading.Thread(target=self._serve, name=name, daemon=True)

    def _serve(self) -> None:
        queue = self.queue
        taken: list[_Item | None] = []  # taken from the queue while grouping, runs next
        while True:
            item = taken.pop() if taken else queue.get()
            if item is None:
                return
            if not item[2]:
                _deliver([_call(item[0], item[1])])
                continue
            group = [item]
            while len(group) < GROUP_COMMIT_LIMIT:
                try:
                    following = queue.get_nowait()
                except Empty:
                    break
                if following is None or not following[2]:
                    taken.append(following)  # not transactional: runs after this group
                    break
                group.append(following)
            self._transact(group)

    def _transact(self, group: list[_Item]) -> None:
        connection = self.connection
        assert connection is not None  # transactional work is only queued once connected
        if len(group) == 1:
            future, work, _ = group[0]
            _deliver([_call(future, functools.partial(in_transaction, connection, work))])
            return
        pending = group
        while pending:
            future, work, _ = pending[0]
            try:
                connection.execute("BEGIN IMMEDIATE")
            except BaseException as exc:  # e.g. still locked by another process: this one fails
                _deliver([(future, False, exc)])
                pending = pending[1:]
                continue
            outcomes, pending = _savepoints(connection, pending)
            try:
                connection.execute("COMMIT")
            except BaseException as exc:
                with suppress(sqlite3.Error):
                    connection.rollback()
                outcomes = _void(outcomes, exc)
            _deliver(outcomes)


def _savepoints(
    connection: sqlite3.Connection, group: list[_Item]
) -> tuple[list[_Outcome], list[_Item]]:
    """Run ``group`` inside the open transaction, each piece in a savepoint; the outcomes, and
    what is left to run when the transaction itself was lost."""
    outcomes: list[_Outcome] = []
    for index, (future, work, _) in enumerate(group):
        failure: BaseException | None = None
        try:
            connection.execute("SAVEPOINT piece")
            try:
                outcome: _Outcome = (future, True, work())
            except BaseException as exc:
                failure = exc
                outcome = (future, False, exc)
                connection.execute("ROLLBACK TO piece")
            connection.execute("RELEASE piece")
        except BaseException as exc:
            # The transaction is gone (SQLite abandons it after an I/O error, for one): what
            # already ran in it is undone too, so all of that fails with this error.
            with suppress(sqlite3.Error):
                connection.rollback()
            error = failure or exc
            return [*_void(outcomes, error), (future, False, error)], group[index + 1 :]
        outcomes.append(outcome)
    return outcomes, []


def _void(outcomes: list[_Outcome], exc: BaseException) -> list[_Outcome]:
    """What succeeded in a transaction that was then lost fails with ``exc``."""
    return [(f, False, exc) if ok else (f, ok, v) for f, ok, v in outcomes]


class SqliteConnection:
    """One ``sqlite3`` connection owned by one thread.

    ``run(fn, *args)`` calls ``fn(connection, *args)`` on that thread and awaits the result: any
    number of statements for the price of one hop; ``transact`` does the same inside a
    transaction. Functions run one at a time, in the order they were handed over; a function
    already handed over runs to its end even when its caller is cancelled.
    """

    def __init__(self, name: str) -> None:
        self._worker = _Worker(name)
        self._connection: sqlite3.Connection | None = None
        # Handed to the thread once per event-loop iteration (see ``_submit``).
        self._outbox: list[_Item] = []
        self._outbox_loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    async def open(
        cls, path: str, *, read_only: bool = False, busy_seconds: float = 5.0
    ) -> SqliteConnection:
        self = cls(f"sqlite-{'reader' if read_only else 'writer'}")
        worker = self._worker
        worker.thread.start()
        connect = functools.partial(_connect, path, read_only, busy_seconds)
        try:
            connection = await self._submit(connect, False)
        except BaseException:
            self._hand_over()
            worker.queue.put(None)
            raise
        self._connection = worker.connection = connection
        return self

    def _submit(self, work: Callable[[], T], transactional: bool) -> asyncio.Future[T]:
        """Queue ``work``. Everything submitted during one event-loop iteration reaches the
        thread together at its end, in order: the thread is woken once, not once per request,
        and the writes among it are committed as one group."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        if self._outbox_loop is not loop:
            self._hand_over()  # anything from another loop goes first, as it came first
            self._outbox_loop = loop
            loop.call_soon(self._hand_over)
        self._outbox.append((future, work, transactional))
        return future

    def _hand_over(self) -> None:
        outbox, self._outbox, self._outbox_loop = self._outbox, [], None
        put = self._worker.queue.put
        for item in outbox:
            put(item)

    def _open_connection(self) -> sqlite3.Connection:
        if self._connection is None:
            raise sqlite3.ProgrammingError("Cannot operate on a closed database.")
        return self._connection

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(connection, *args)`` on the connection's thread."""
        return await self._submit(functools.partial(fn, self._open_connection(), *args), False)

    async def transact(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(connection, *args)`` on the connection's thread, atomically: between
        ``BEGIN IMMEDIATE`` and ``COMMIT`` (possibly shared with other transactions queued at
        the same moment, each in its own savepoint); rolled back when it raises."""
        return await self._submit(functools.partial(fn, self._open_connection(), *args), True)

    async def close(self) -> None:
        """Close after everything already handed over has run."""
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            await self._submit(connection.close, False)
        finally:
            self._hand_over()  # the close first, even when the wait for it was cancelled
            self._worker.queue.put(None)


def _connect(path: str, read_only: bool, busy_timeout_seconds: float) -> sqlite3.Connection:
    # isolation_level=None: no implicit transactions; this module issues BEGIN/COMMIT itself.
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        connection.row_factory = sqlite3.Row
        for pragma in (f"PRAGMA busy_timeout = {int(busy_timeout_seconds * 1000)}", *_PRAGMAS):
            connection.execute(pragma)
        if read_only:
            connection.execute("PRAGMA query_only = ON")
    except BaseException:
        connection.close()
        raise
    return connection


def in_transaction(connection: sqlite3.Connection, work: Callable[[], T]) -> T:
    """``work()`` between ``BEGIN IMMEDIATE`` (the database write lock, taken before anything
    is read) and ``COMMIT``; rolled back when anything in it raises."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        result = work()
        connection.execute("COMMIT")
    except BaseException:
        connection.rollback()  # a no-op when no transaction is open any more
        raise
    return result


class Database:
    """The writer and the reader connection of one database; the store runs every operation
    as one function on one of them."""

    def __init__(self, writer: SqliteConnection, reader: SqliteConnection) -> None:
        self._writer = writer
        # For ``:memory:`` the reader *is* the writer: reads are then serialised with writes, so
        # they never see another caller's half-done transaction.
        self._reader = reader

    @classmethod
    async def open(cls, url: str, *, busy_timeout_seconds: float = BUSY_TIMEOUT_SECONDS) -> Self:
        """Connect to ``url``'s database (made if missing); writes wait out a lock, then 503."""
        path = parse_sqlite_url(url)
        if path == _MEMORY:
            connection = await SqliteConnection.open(path)
            return cls(connection, connection)
        await asyncio.to_thread(Path(path).parent.mkdir, parents=True, exist_ok=True)
        writer = await SqliteConnection.open(path, busy_seconds=busy_timeout_seconds)
        try:
            reader = await SqliteConnection.open(
                path, read_only=True, busy_seconds=busy_timeout_seconds
            )
        except BaseException:
            await writer.close()
            raise
        return cls(writer, reader)

    async def close(self) -> None:
        if self._reader is not self._writer:
            await self._reader.close()
        await self._writer.close()

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(connection, *args)`` on the read-only connection."""
        return await self._reader.run(fn, *args)

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(connection, *args)`` on the writer inside ``BEGIN IMMEDIATE`` ... ``COMMIT``,
        in one hop to the writer's thread (see ``_Worker`` for the group commit). No lock is
        needed: the writer's thread runs one function at a time."""
        return await self._writer.transact(fn, *args)

    async def migrate(self) -> int:
        """Apply the migrations not applied yet, each in a transaction of its own."""
        await self.write(_create_migrations_table)
        for migration in load_migrations(DIALECT):
            await self.write(_apply, migration)
        return await self.read(schema_version)


def schema_version(connection: sqlite3.Connection) -> int:
    if not fetchone(
        connection,
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'",
    ):
        return 0
    row = fetchone(connection, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
    return int(row[0]) if row is not None else 0


def _create_migrations_table(connection: sqlite3.Connection) -> None:
    connection.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations"
        " (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)"
    )


def _apply(connection: sqlite3.Connection, migration: Migration) -> None:
    # Re-checked under the write lock: another process may have just applied it.
    if fetchone(
        connection, "SELECT 1 FROM schema_migrations WHERE version = ?", (migration.version,)
    ):
        return
    for statement in split_statements(migration.sql):
        connection.execute(statement)
    connection.execute(
        "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
        (migration.version, int(time.time())),
    )


def raise_translated(
    exc: sqlite3.IntegrityError, *, taken: str, missing: str | None = None
) -> NoReturn:
    """A taken unique value becomes ``Conflict``, a missing parent row ``NotFound``."""
    message = str(exc)
    if missing is not None and "FOREIGN KEY" in message:
        raise NotFound(missing) from exc
    if "UNIQUE" in message:
        raise Conflict(taken) from exc
    if "invalid team name" in message:  # the trigger of migration 0006
        raise InvalidRequest(f"{TEAM_NAME_RULE}.", param="name") from exc
    raise exc
