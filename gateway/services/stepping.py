"""The jobs one runner process is stepping right now, so that no job runs two steps at once.

A claim takes every due job whose lease has expired, its own included: a step that outlasts
its lease (a slow poll, a chained segment's submit) is claimed again by the same runner, under
the same owner name, so a second step would pass every lease check the first one passes. The
runner asks ``Stepping`` which claimed jobs are really new; the others belong to a step that is
still running (the claim merely renewed its lease) or that ended while the claim ran (the
claimed row may predate that step's last write).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from gateway.store.base import Job

Step = Callable[[Job], Coroutine[Any, Any, None]]


class Stepping:
    def __init__(self) -> None:
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def running(self) -> frozenset[str]:
        """The ids of the jobs being stepped now; taken before a claim, for ``sort``."""
        return frozenset(self._tasks)

    def sort(self, claimed: Sequence[Job], before: frozenset[str]) -> tuple[list[Job], list[Job]]:
        """Split a claim into the jobs to step and the jobs whose step ended while it ran.

        A job still being stepped is in neither list: its step owns the row and writes its
        outcome (next check, lease given back) when it ends. A job whose step ended during the
        claim was claimed before or after that step's last write; the runner gives its lease
        back rather than step it from a row that may be stale."""
        fresh: list[Job] = []
        ended: list[Job] = []
        for job in claimed:
            if job.id in self._tasks:
                continue
            (ended if job.id in before else fresh).append(job)
        return fresh, ended

    def start(self, job: Job, step: Step) -> asyncio.Task[None]:
        """Step ``job`` in a task; the job counts as running until the step returns."""
        task = asyncio.create_task(self._stepped(job, step))
        self._tasks[job.id] = task
        # Also forgets a task cancelled before it ever ran (its ``finally`` never runs).
        task.add_done_callback(lambda done: self._forget(job.id, done))
        return task

    async def _stepped(self, job: Job, step: Step) -> None:
        try:
            await step(job)
        finally:
            # Now, not in the done callback a loop iteration later: a claim returning in
            # between would take the ended step for a running one and keep its fresh lease.
            self._forget(job.id, asyncio.current_task())

    def _forget(self, job_id: str, task: asyncio.Task[Any] | None) -> None:
        if self._tasks.get(job_id) is task:
            del self._tasks[job_id]
