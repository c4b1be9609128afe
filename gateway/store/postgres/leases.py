"""PostgreSQL side of the runner's leases: claiming due jobs, extending and using a lease, and
what the runner asks of running jobs (live followers, running chains).

A claim locks its jobs with ``FOR UPDATE SKIP LOCKED`` inside one ``UPDATE ... RETURNING``, so
runners on any number of connections and replicas never take the same job and never wait for
each other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.domain.jobs import TERMINAL_SQL
from gateway.store.postgres.jobs import update_job_where
from gateway.store.postgres.rows import JOB_COLUMNS_OF_JOBS, RUNNABLE, changed_one, job_from_row
from gateway.store.records import Job, JobChanges

if TYPE_CHECKING:
    from gateway.store.postgres.database import Executor

_DUE = (
    "next_check_at IS NOT NULL AND next_check_at <= $3"
    f" AND status IN {RUNNABLE} AND (locked_until IS NULL OR locked_until < $3)"
)
# A CTE runs once: as an IN (...) subquery, the planner may rescan it, and each rescan skips
# the rows this statement already took and locks further ones past the LIMIT.
_CLAIM = (
    f"WITH due AS MATERIALIZED (SELECT id FROM jobs WHERE {_DUE}"  # noqa: S608
    " ORDER BY next_check_at LIMIT $4 FOR UPDATE SKIP LOCKED)"
    " UPDATE jobs SET lease_owner = $1, locked_until = $2 FROM due"
    f" WHERE jobs.id = due.id RETURNING {JOB_COLUMNS_OF_JOBS}"
)


async def claim_due_jobs(
    db: Executor, *, owner: str, now: float, lease_seconds: float, limit: int
) -> list[Job]:
    rows = await db.fetch(_CLAIM, owner, now + lease_seconds, now, max(limit, 0))
    return [job_from_row(row) for row in rows]


async def extend_lease(db: Executor, job_id: str, *, owner: str, until: float) -> bool:
    tag = await db.execute(
        "UPDATE jobs SET locked_until = $1 WHERE id = $2 AND lease_owner = $3",
        until,
        job_id,
        owner,
    )
    return changed_one(tag)


async def update_leased_job(
    db: Executor, job_id: str, *, owner: str, changes: JobChanges
) -> Job | None:
    return await update_job_where(db, job_id, changes, " AND lease_owner = $2", (owner,))


async def live_followers(db: Executor, job_id: str) -> int:
    count = await db.fetchval(
        "SELECT COUNT(*) FROM jobs WHERE leader_id = $1 AND cache_result = 'coalesced'"  # noqa: S608 - constant lists
        f" AND deleted_at IS NULL AND status NOT IN {TERMINAL_SQL}",
        job_id,
    )
    return int(count or 0)


async def running_chains(db: Executor) -> list[str]:
    rows = await db.fetch(
        "SELECT chain_json FROM jobs WHERE chain_json IS NOT NULL"  # noqa: S608 - constant lists
        f" AND status NOT IN {TERMINAL_SQL}"
    )
    return [row[0] for row in rows]
