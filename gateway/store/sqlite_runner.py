"""SQLite queries of the job runner: leases, conditional updates, stored assets and retention.

A lease is ``lease_owner`` + ``locked_until``; claims run inside ``BEGIN IMMEDIATE`` so two
runners (two processes on one file) never take the same job. Asset reference counts change in
the same transaction as the job that gains or loses them.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

import aiosqlite

from gateway.store.base import UPDATABLE_JOB_FIELDS, Asset, Deletion, Job
from gateway.store.sqlite_db import JOB_COLUMNS, SELECT_JOB, SqliteDatabase, job_from_row

_RUNNABLE = "('submitting', 'queued', 'in_progress', 'downloading')"


def job_assignments(changes: Mapping[str, Any]) -> tuple[str, tuple[Any, ...]]:
    """``SET`` clause and parameters for ``changes``, refusing fields that may not change."""
    forbidden = sorted(set(changes) - UPDATABLE_JOB_FIELDS)
    if forbidden:
        raise ValueError(f"job fields cannot be updated: {', '.join(forbidden)}")
    fields = sorted(changes)  # whitelisted above, so safe to splice into the SQL
    return ", ".join(f"{field} = ?" for field in fields), tuple(changes[f] for f in fields)


class RunnerQueries(SqliteDatabase):
    async def _update_job_where(
        self, job_id: str, changes: Mapping[str, Any], condition: str, parameters: Sequence[Any]
    ) -> Job | None:
        """``UPDATE jobs`` for one id plus an extra ``condition``; the new row or None."""
        if not changes:
            job_from = await self._fetch(
                SELECT_JOB + " WHERE id = ?" + condition, (job_id, *parameters)
            )
            return job_from_row(job_from[0]) if job_from else None
        assignments, values = job_assignments(changes)
        async with self._writing() as connection:
            rows = list(
                await connection.execute_fetchall(
                    f"UPDATE jobs SET {assignments} WHERE id = ?{condition}"  # noqa: S608
                    f" RETURNING {JOB_COLUMNS}",
                    (*values, job_id, *parameters),
                )
            )
        return job_from_row(rows[0]) if rows else None

    async def claim_due_jobs(
        self, *, owner: str, now: float, lease_seconds: float, limit: int
    ) -> list[Job]:
        async with self._transaction() as connection:
            rows = await connection.execute_fetchall(
                f"UPDATE jobs SET lease_owner = ?, locked_until = ? WHERE id IN ("  # noqa: S608
                " SELECT id FROM jobs WHERE next_check_at IS NOT NULL AND next_check_at <= ?"
                f" AND status IN {_RUNNABLE}"
                " AND (locked_until IS NULL OR locked_until < ?)"
                " ORDER BY next_check_at LIMIT ?"
                f") RETURNING {JOB_COLUMNS}",
                (owner, now + lease_seconds, now, now, limit),
            )
        return [job_from_row(row) for row in rows]

    async def extend_lease(self, job_id: str, *, owner: str, until: float) -> bool:
        async with self._writing() as connection:
            cursor = await connection.execute(
                "UPDATE jobs SET locked_until = ? WHERE id = ? AND lease_owner = ?",
                (until, job_id, owner),
            )
            return cursor.rowcount == 1

    async def update_leased_job(
        self, job_id: str, *, owner: str, changes: Mapping[str, Any]
    ) -> Job | None:
        return await self._update_job_where(job_id, changes, " AND lease_owner = ?", (owner,))

    async def update_job_if_status(
        self, job_id: str, *, statuses: Collection[str], changes: Mapping[str, Any]
    ) -> Job | None:
        marks = ", ".join("?" * len(statuses))
        return await self._update_job_where(
            job_id, changes, f" AND status IN ({marks}) AND lease_owner IS NULL", tuple(statuses)
        )

    async def get_asset(self, key: str) -> Asset | None:
        row = await self._fetch_one(
            "SELECT key, size, content_type FROM assets WHERE key = ?", (key,)
        )
        return Asset(key=row[0], size=row[1], content_type=row[2]) if row is not None else None

    async def live_followers(self, job_id: str) -> int:
        row = await self._fetch_one(
            "SELECT COUNT(*) FROM jobs WHERE leader_id = ? AND cache_result = 'coalesced'"
            " AND deleted_at IS NULL AND status NOT IN ('completed', 'failed', 'rejected')",
            (job_id,),
        )
        return int(row[0]) if row is not None else 0

    async def known_assets(self, keys: Collection[str]) -> set[str]:
        found: set[str] = set()
        batch = list(keys)
        for start in range(0, len(batch), 500):
            chunk = batch[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            rows = await self._fetch(f"SELECT key FROM assets WHERE key IN ({marks})", chunk)  # noqa: S608
            found.update(row[0] for row in rows)
        return found

    async def expire_jobs(self, now: int, limit: int) -> list[Deletion]:
        deletions: list[Deletion] = []
        async with self._transaction() as connection:
            rows = await connection.execute_fetchall(
                "UPDATE jobs SET deleted_at = ? WHERE id IN ("
                " SELECT id FROM jobs WHERE expires_at IS NOT NULL AND expires_at <= ?"
                " AND deleted_at IS NULL LIMIT ?)"
                " RETURNING id, video_asset, last_frame_asset",
                (now, now, limit),
            )
            for job_id, video, last_frame in rows:
                released = await self._release_assets(connection, [video, last_frame])
                deletions.append(Deletion(job_id=job_id, released=released))
        return deletions

    async def _release_assets(
        self, connection: aiosqlite.Connection, keys: Sequence[str | None]
    ) -> tuple[str, ...]:
        """One reference less for each key; the keys no job refers to any more."""
        released: list[str] = []
        for key in keys:
            if key is None:
                continue
            rows = list(
                await connection.execute_fetchall(
                    "UPDATE assets SET refs = refs - 1 WHERE key = ? RETURNING refs", (key,)
                )
            )
            if rows and rows[0][0] <= 0:
                await connection.execute("DELETE FROM assets WHERE key = ?", (key,))
                released.append(key)
        return tuple(released)


async def add_reference(connection: aiosqlite.Connection, asset: Asset, now: int) -> None:
    await connection.execute(
        "INSERT INTO assets (key, size, content_type, refs, created_at) VALUES (?, ?, ?, 1, ?)"
        " ON CONFLICT (key) DO UPDATE SET refs = refs + 1",
        (asset.key, asset.size, asset.content_type, now),
    )
