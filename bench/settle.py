"""Waiting for the gateway's background work to finish between measured runs.

Every create leaves work for the gateway's job runner (a poll a couple of seconds later, then a
copy of the video into storage). ``Quiescence.wait`` returns once no job is pending in the
gateway's database and both the upstream's call counters and the servers' CPU time stand
still, so each run starts from an idle system; how long that took is the run's drain time.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from bench.servers import ServerProcess

WINDOW_SECONDS = 0.25
IDLE_CPU_FRACTION = 0.1
# Without a readable job table, quiet must last longer than the runner's first poll delay.
BLIND_QUIET_SECONDS = 3.0
TIMEOUT_SECONDS = 180.0
PENDING_SQL = (
    "SELECT COUNT(*) FROM jobs "
    "WHERE status NOT IN ('completed', 'failed', 'rejected') AND deleted_at IS NULL"
)


class Quiescence:
    """Knows where to look: the gateway's SQLite file (None: no gateway is running), the
    server processes, the upstream counters."""

    def __init__(
        self,
        database: Path | None,
        processes: list[ServerProcess],
        counters: Callable[[], dict[str, int]],
        log: Callable[[str], None] = print,
    ) -> None:
        self.database = database
        self.processes = processes
        self.counters = counters
        self.log = log
        self._use_database = database is not None

    def pending_jobs(self) -> int | None:
        """Unfinished jobs in the gateway's database; None when it cannot be read."""
        if self.database is None:
            return 0  # no gateway, no background work
        if not self._use_database:
            return None
        try:
            uri = f"file:{self.database}?mode=ro"
            with sqlite3.connect(uri, uri=True, timeout=1.0) as db:
                row = db.execute(PENDING_SQL).fetchone()
        except sqlite3.Error as exc:
            self.log(f"  settle: cannot read pending jobs ({exc}); waiting for quiet instead")
            self._use_database = False
            return None
        return int(row[0])

    def _activity(self) -> tuple[int, float]:
        try:
            calls = sum(self.counters().values())
        except httpx.HTTPError:
            calls = -1  # the sandbox is gone; the runs will say so
        cpu = 0.0
        for process in self.processes:
            with contextlib.suppress(OSError):
                cpu += process.cpu_seconds()
        return calls, cpu

    def wait(self, timeout: float = TIMEOUT_SECONDS) -> float:
        """Block until idle (or ``timeout``); return the seconds waited."""
        started = time.monotonic()
        quiet_since: float | None = None
        calls, cpu = self._activity()
        while time.monotonic() - started < timeout:
            time.sleep(WINDOW_SECONDS)
            now_calls, now_cpu = self._activity()
            idle = now_calls == calls and now_cpu - cpu < WINDOW_SECONDS * IDLE_CPU_FRACTION * len(
                self.processes
            )
            calls, cpu = now_calls, now_cpu
            if not idle:
                quiet_since = None
                continue
            quiet_since = quiet_since if quiet_since is not None else time.monotonic()
            pending = self.pending_jobs()
            if pending == 0 or (
                pending is None and time.monotonic() - quiet_since >= BLIND_QUIET_SECONDS
            ):
                return time.monotonic() - started
        self.log(f"  settle: still busy after {timeout:.0f} s; measuring anyway")
        self._use_database = False  # a job that never finishes must not stall every run
        return time.monotonic() - started
