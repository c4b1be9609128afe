"""The job runner's pacing: how many upstream polls it keeps in flight (a limit that sizes
itself from how late due jobs are, ``domain/schedule.py`` decides), and how it idles."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from types import TracebackType

from gateway.domain.schedule import grown_poll_limit, shrunk_poll_limit
from gateway.store.base import Job

log = logging.getLogger("gateway.jobs")


class PollLimit:
    """An ``async with`` limit on polls in flight that grows from ``floor`` towards ``ceiling``
    while due jobs wait for a slot, and halves when the upstream says 429 (``floor`` ==
    ``ceiling`` pins it)."""

    def __init__(self, floor: int, ceiling: int, clock: Callable[[], float]) -> None:
        self.floor = max(1, floor)
        self.ceiling = max(self.floor, ceiling)
        self.limit = self.floor
        self._clock = clock
        self._in_use = 0
        self._changed = asyncio.Condition()
        self._grown_at = float("-inf")
        self._waking: set[asyncio.Task[None]] = set()  # referenced until done (asyncio's rule)

    async def __aenter__(self) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self._in_use < self.limit)
            self._in_use += 1

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        async with self._changed:
            self._in_use -= 1
            self._changed.notify()

    def after_claim(self, claimed: Sequence[Job], free: int) -> None:
        """Learn from a claim of up to ``free`` jobs (the oldest due) whether to grow."""
        due = [job.next_check_at for job in claimed if job.next_check_at is not None]
        if not due:
            return
        now = self._clock()
        grown = grown_poll_limit(
            self.limit,
            ceiling=self.ceiling,
            lateness=now - min(due),
            claim_was_full=len(claimed) >= free,
            since_grown=now - self._grown_at,
        )
        if grown != self.limit:
            log.info("poll limit grown", extra={"poll_limit": grown, "was": self.limit})
            self.limit, self._grown_at = grown, now
            task = asyncio.get_running_loop().create_task(self._wake())
            self._waking.add(task)
            task.add_done_callback(self._waking.discard)

    def rate_limited(self) -> None:
        """The upstream answered a poll with 429: poll less at once."""
        shrunk = shrunk_poll_limit(self.limit, floor=self.floor)
        if shrunk != self.limit:
            log.warning("poll limit shrunk", extra={"poll_limit": shrunk, "was": self.limit})
            self.limit = shrunk

    async def _wake(self) -> None:
        async with self._changed:
            self._changed.notify_all()


async def wait_any(stop: asyncio.Event, tasks: set[asyncio.Task[None]], seconds: float) -> None:
    """Sleep until ``stop`` is set, a task finishes, or ``seconds`` pass."""
    stopper = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({stopper, *tasks}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
