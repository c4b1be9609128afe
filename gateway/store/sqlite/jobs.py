"""SQLite: a job's own row: insert, get, update (plain or conditional), list and delete."""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Sequence
from typing import Any

from gateway.store.base import Deletion, Job, JobChanges, Order
from gateway.store.listing import check_page
from gateway.store.sqlite.assets import release_assets
from gateway.store.sqlite.database import raise_translated
from gateway.store.sqlite.rows import (
    INSERT_JOB,
    JOB_COLUMNS,
    LIST_JOBS,
    SELECT_JOB,
    VISIBLE_JOB,
    fetchall,
    job_assignments,
    job_from_row,
    job_or_none,
    job_row,
)


def insert_job(connection: sqlite3.Connection, job: Job) -> None:
    try:
        connection.execute(INSERT_JOB, job_row(job))
    except sqlite3.IntegrityError as exc:
        raise_translated(
            exc,
            taken=f"job {job.id!r} already exists",
            missing=f"job {job.id!r} refers to an unknown team or key",
        )


def get_job(
    connection: sqlite3.Connection, job_id: str, team_id: str | None, include_deleted: bool
) -> Job | None:
    sql = SELECT_JOB + " WHERE id = ?"
    parameters: list[str] = [job_id]
    if not include_deleted:
        sql += " AND deleted_at IS NULL"
    if team_id is not None:
        sql += " AND team_id = ?"
        parameters.append(team_id)
    return job_or_none(connection, sql, parameters)


def update_job(
    connection: sqlite3.Connection,
    job_id: str,
    changes: JobChanges,
    condition: str = "",
    parameters: Sequence[Any] = (),
) -> Job | None:
    """``UPDATE jobs`` for one id plus an extra ``condition``; the new row or None. Without
    changes only a read (the store then runs it on the reader)."""
    if not changes:
        return job_or_none(
            connection, SELECT_JOB + " WHERE id = ?" + condition, (job_id, *parameters)
        )
    assignments, values = job_assignments(changes)
    return job_or_none(
        connection,
        f"UPDATE jobs SET {assignments} WHERE id = ?{condition}"  # noqa: S608
        f" RETURNING {JOB_COLUMNS}",
        (*values, job_id, *parameters),
    )


def update_job_if_status(
    connection: sqlite3.Connection, job_id: str, statuses: Collection[str], changes: JobChanges
) -> Job | None:
    marks = ", ".join("?" * len(statuses))
    condition = f" AND status IN ({marks}) AND lease_owner IS NULL"
    return update_job(connection, job_id, changes, condition, tuple(statuses))


def list_jobs(
    connection: sqlite3.Connection, team_id: str, after: str | None, limit: int, order: Order
) -> tuple[list[Job], bool]:
    check_page(limit, order)
    sql = f"{LIST_JOBS} WHERE team_id = ? AND {VISIBLE_JOB}"
    parameters: list[Any] = [team_id]
    if after is not None:
        sql += " AND id < ?" if order == "desc" else " AND id > ?"
        parameters.append(after)
    sql += f" ORDER BY id {order.upper()} LIMIT ?"
    parameters.append(limit + 1)
    rows = fetchall(connection, sql, parameters)
    return [job_from_row(row) for row in rows[:limit]], len(rows) > limit


def delete_job(
    connection: sqlite3.Connection, job_id: str, team_id: str, now: int
) -> Deletion | None:
    rows = fetchall(
        connection,
        f"UPDATE jobs SET deleted_at = ? WHERE id = ? AND team_id = ? AND {VISIBLE_JOB}"  # noqa: S608
        " RETURNING video_asset, last_frame_asset",
        (now, job_id, team_id),
    )
    if not rows:
        return None
    return Deletion(job_id=job_id, released=release_assets(connection, [rows[0][0], rows[0][1]]))
