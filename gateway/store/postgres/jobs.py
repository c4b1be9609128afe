"""PostgreSQL side of the jobs: insert, read, update (plain or conditional), list, delete.

A conditional update is one ``UPDATE ... WHERE`` whose condition PostgreSQL re-checks on the
row's latest version once its lock is granted, so it holds at the moment of the update.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any

import asyncpg

from gateway.store.listing import check_page, list_select
from gateway.store.postgres.assets import release_assets
from gateway.store.postgres.database import raise_translated
from gateway.store.postgres.rows import (
    INSERT_JOB,
    JOB_COLUMN_NAMES,
    JOB_COLUMNS,
    SELECT_JOB,
    VISIBLE_JOB,
    job_assignments,
    job_from_row,
    job_or_none,
    job_row,
)
from gateway.store.records import Deletion, Job, JobChanges, Order

if TYPE_CHECKING:
    from gateway.store.postgres.database import Connection, Executor

_LIST_JOBS = list_select(JOB_COLUMN_NAMES)


async def insert_job(db: Executor, job: Job) -> None:
    try:
        await db.execute(INSERT_JOB, *job_row(job))
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise_translated(
            exc,
            taken=f"job {job.id!r} already exists",
            missing=f"job {job.id!r} refers to an unknown team or key",
        )


async def get_job(
    db: Executor, job_id: str, team_id: str | None, *, include_deleted: bool
) -> Job | None:
    sql = SELECT_JOB + " WHERE id = $1 AND ($2::text IS NULL OR team_id = $2)"
    if not include_deleted:
        sql += " AND deleted_at IS NULL"
    return job_or_none(await db.fetchrow(sql, job_id, team_id))


async def update_job(db: Executor, job_id: str, changes: JobChanges) -> Job | None:
    """Apply ``changes``; soft-deleted jobs are updated too (the runner still settles them)."""
    return await update_job_where(db, job_id, changes, "", ())


async def update_job_if_status(
    db: Executor, job_id: str, statuses: Collection[str], changes: JobChanges
) -> Job | None:
    condition = " AND status = ANY($2::text[]) AND lease_owner IS NULL"
    return await update_job_where(db, job_id, changes, condition, (list(statuses),))


async def update_job_where(
    db: Executor, job_id: str, changes: JobChanges, condition: str, parameters: Sequence[Any]
) -> Job | None:
    """``UPDATE jobs`` for one id plus an extra ``condition`` whose placeholders start at
    ``$2``; the new row or None (no changes: the row if the condition holds)."""
    if not changes:
        sql = SELECT_JOB + " WHERE id = $1" + condition
        return job_or_none(await db.fetchrow(sql, job_id, *parameters))
    assignments, values = job_assignments(changes, first=2 + len(parameters))
    row = await db.fetchrow(
        f"UPDATE jobs SET {assignments} WHERE id = $1{condition} RETURNING {JOB_COLUMNS}",  # noqa: S608
        job_id,
        *parameters,
        *values,
    )
    return job_or_none(row)


async def list_jobs(
    db: Executor, team_id: str, *, after: str | None, limit: int, order: Order
) -> tuple[list[Job], bool]:
    check_page(limit, order)
    sql = f"{_LIST_JOBS} WHERE team_id = $1 AND {VISIBLE_JOB}"
    parameters: list[Any] = [team_id, limit + 1]
    if after is not None:  # a range on the (team_id, id) index, not a filter
        sql += " AND id < $3" if order == "desc" else " AND id > $3"
        parameters.append(after)
    rows = await db.fetch(sql + f" ORDER BY id {order.upper()} LIMIT $2", *parameters)
    return [job_from_row(row) for row in rows[:limit]], len(rows) > limit


async def delete_job(
    connection: Connection, job_id: str, team_id: str, now: int
) -> Deletion | None:
    """Soft-delete a visible job and release its assets; the keys no job refers to any more."""
    row = await connection.fetchrow(
        f"UPDATE jobs SET deleted_at = $1 WHERE id = $2 AND team_id = $3 AND {VISIBLE_JOB}"  # noqa: S608
        " RETURNING video_asset, last_frame_asset",
        now,
        job_id,
        team_id,
    )
    if row is None:
        return None
    keys = [row[0], row[1]]
    released = await release_assets(connection, keys)
    ordered = dict.fromkeys(key for key in keys if key is not None and key in released)
    return Deletion(job_id=job_id, released=tuple(ordered))
