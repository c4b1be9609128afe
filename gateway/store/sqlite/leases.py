"""SQLite: the job runner's leases. A lease is ``lease_owner`` + ``locked_until``; claims run
inside ``BEGIN IMMEDIATE`` so two runners (two processes on one file) never take the same job."""

from __future__ import annotations

import sqlite3

from gateway.domain.jobs import TERMINAL_SQL
from gateway.store.base import Job, JobChanges
from gateway.store.sqlite.jobs import update_job
from gateway.store.sqlite.rows import JOB_COLUMNS, changed_one, fetchall, fetchone, job_from_row

_RUNNABLE = "('submitting', 'submit_unknown', 'queued', 'in_progress', 'downloading')"


def claim_due_jobs(
    connection: sqlite3.Connection, owner: str, now: float, lease_seconds: float, limit: int
) -> list[Job]:
    rows = fetchall(
        connection,
        f"UPDATE jobs SET lease_owner = ?, locked_until = ? WHERE id IN ("  # noqa: S608
        " SELECT id FROM jobs WHERE next_check_at IS NOT NULL AND next_check_at <= ?"
        f" AND status IN {_RUNNABLE}"
        " AND (locked_until IS NULL OR locked_until < ?)"
        " ORDER BY next_check_at LIMIT ?"
        f") RETURNING {JOB_COLUMNS}",
        (owner, now + lease_seconds, now, now, limit),
    )
    return [job_from_row(row) for row in rows]


def extend_lease(connection: sqlite3.Connection, job_id: str, owner: str, until: float) -> bool:
    return changed_one(
        connection,
        "UPDATE jobs SET locked_until = ? WHERE id = ? AND lease_owner = ?",
        (until, job_id, owner),
    )


def update_leased_job(
    connection: sqlite3.Connection, job_id: str, owner: str, changes: JobChanges
) -> Job | None:
    return update_job(connection, job_id, changes, " AND lease_owner = ?", (owner,))


def live_followers(connection: sqlite3.Connection, job_id: str) -> int:
    row = fetchone(
        connection,
        "SELECT COUNT(*) FROM jobs WHERE leader_id = ? AND cache_result = 'coalesced'"  # noqa: S608 - constant lists
        f" AND deleted_at IS NULL AND status NOT IN {TERMINAL_SQL}",
        (job_id,),
    )
    return int(row[0]) if row is not None else 0


def running_chains(connection: sqlite3.Connection) -> list[str]:
    rows = fetchall(
        connection,
        "SELECT chain_json FROM jobs WHERE chain_json IS NOT NULL"  # noqa: S608 - constant lists
        f" AND status NOT IN {TERMINAL_SQL}",
    )
    return [row[0] for row in rows]
