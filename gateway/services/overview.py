"""The operator's overview and the jobs that need a person, as use cases for the dashboard.

Read-only: spend today and this month per team against its budgets, the organization's total,
what the cache saved, jobs by state, upstream error rate and p95 time to completion over the
last 24 hours; unfinished jobs close to their deadline and downloads that keep failing.
A ``team_id`` restricts everything to one team (a team lead's view).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from gateway.domain.budgets import ORG_ID, BudgetLine, ScopeRef, Window
from gateway.domain.job_stats import JobStats, hourly, job_stats
from gateway.domain.jobs import UNFINISHED
from gateway.store.base import Job, Store, Team
from gateway.store.browsing import JobFilter

DAY = 86_400.0
RECENT_LIMIT = 5_000  # jobs read for the 24 h stats (a busier day is summarised from these)
UNKNOWN = "submit_unknown"  # issue #13: the upstream may or may not have the job


@dataclass(frozen=True, slots=True)
class Spend:
    """One scope's spend (spent + reserved) in the current day and month, with any limits."""

    ref: ScopeRef
    name: str
    day: BudgetLine
    month: BudgetLine

    def used(self, window: Window) -> int:
        line = self.day if window == "day" else self.month
        return line.spent + line.reserved


@dataclass(frozen=True, slots=True)
class Overview:
    now: float
    teams: list[Spend]
    org: Spend | None  # None in a team lead's view
    last_24h: JobStats
    per_hour: list[tuple[int, int]]  # (created, failed), oldest hour first
    live: dict[str, int]  # queued, running, awaiting_download (whole gateway, or the team's)
    stats_truncated: bool


@dataclass(frozen=True, slots=True)
class NeedsAttention:
    unknown: list[Job]  # outcome unknown upstream: an operator charges or refunds
    failing_downloads: list[Job]
    near_deadline: list[Job]
    expired_links: list[Job]  # failed because the upstream link expired before we stored it


class OverviewService:
    def __init__(
        self,
        store: Store,
        *,
        deadline_seconds: float,
        near_deadline_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._deadline = deadline_seconds
        self._near = near_deadline_seconds
        self._clock = clock

    async def overview(self, team_id: str | None = None) -> Overview:
        now = self._clock()
        teams = await self._teams(team_id)
        refs = tuple(ScopeRef("team", t.id) for t in teams)
        if team_id is None:
            refs += (ScopeRef("org", ORG_ID),)
        lines = {
            (line.scope, line.window): line for line in await self._store.budget_lines(refs, now)
        }
        names = {ScopeRef("team", t.id): t.name for t in teams} | {ScopeRef("org", ORG_ID): "org"}
        spends = [
            Spend(ref, names[ref], lines[(ref, "day")], lines[(ref, "month")]) for ref in refs
        ]
        recent, more = await self._store.find_jobs(
            JobFilter(team_id=team_id, created_from=int(now - DAY)),
            before=None,
            limit=RECENT_LIMIT,
        )
        stats = job_stats(recent)
        if team_id is None:
            live = dict((await self._store.metrics_snapshot(now)).jobs_by_state)
        else:
            live = _live_states(recent)
        return Overview(
            now=now,
            teams=[s for s in spends if s.ref.scope == "team"],
            org=next((s for s in spends if s.ref.scope == "org"), None),
            last_24h=stats,
            per_hour=hourly(recent, now),
            live=live,
            stats_truncated=more,
        )

    async def needs_attention(self, team_id: str | None = None, limit: int = 200) -> NeedsAttention:
        now = self._clock()
        unfinished, _ = await self._store.find_jobs(
            JobFilter(team_id=team_id, statuses=(*UNFINISHED, UNKNOWN)),
            before=None,
            limit=limit,
        )
        expired, _ = await self._store.find_jobs(
            JobFilter(team_id=team_id, statuses=("failed",), created_from=int(now - 7 * DAY)),
            before=None,
            limit=limit,
        )
        cutoff = now - (self._deadline - self._near)
        return NeedsAttention(
            unknown=[j for j in unfinished if str(j.status) == UNKNOWN],
            failing_downloads=[
                j for j in unfinished if j.status == "downloading" and j.attempts > 0
            ],
            near_deadline=[
                j for j in unfinished if j.status in UNFINISHED and j.created_at <= cutoff
            ],
            expired_links=[j for j in expired if j.error_code == "upstream_link_expired"],
        )

    def deadline_of(self, job: Job) -> float:
        return job.created_at + self._deadline

    async def _teams(self, team_id: str | None) -> list[Team]:
        if team_id is None:
            return await self._store.list_teams()
        team = await self._store.team_by_id(team_id)
        return [team] if team is not None else []


def _live_states(jobs: list[Job]) -> dict[str, int]:
    """A team's live jobs by the same states as the gateway-wide gauge."""
    live = {"queued": 0, "running": 0, "awaiting_download": 0}
    for job in jobs:
        if job.status in ("submitting", "queued"):
            live["queued"] += 1
        elif job.status == "in_progress":
            live["running"] += 1
        elif job.status == "downloading":
            live["awaiting_download"] += 1
    return live
