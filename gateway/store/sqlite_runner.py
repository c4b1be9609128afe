"""SQLite queries of the job runner: leases, conditional updates, stored assets and retention.

A lease is ``lease_owner`` + ``locked_until``; claims run inside ``BEGIN IMMEDIATE`` so two
runners (two processes on one file) never take the same job. Asset reference counts change in
the same transaction as the job that gains or loses them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from gateway.domain.jobs import TERMINAL_SQL
from gateway.domain.media import MediaFacts
from gateway.store.base import UPDATABLE_JOB_FIELDS, Asset, Deletion, Job, JobChanges
from gateway.store.sqlite_db import (
    JOB_COLUMNS,
    SELECT_JOB,
    SqliteDatabase,
    fetchall,
    fetchone,
    job_from_row,
)

_RUNNABLE = "('submitting', 'submit_unknown', 'queued', 'in_progress', 'downloading')"
_KEYS_PER_QUERY = 500
# Failed and rejected jobs that ended before $1, were never charged (a charged one counts in
# usage reports) nor hold money, and lead no job still running.
PURGEABLE = (
    "SELECT id FROM jobs j WHERE status IN ('failed', 'rejected') AND completed_at < ?"
    " AND money_state IN ('none', 'refunded') AND NOT EXISTS (SELECT 1 FROM jobs f WHERE"
    " f.leader_id = j.id AND f.status NOT IN ('failed', 'rejected')) ORDER BY completed_at"
)


def job_assignments(changes: JobChanges) -> tuple[str, tuple[Any, ...]]:
    """``SET`` clause and parameters for ``changes``. mypy checks the keys; at run time only
    the columns of ``JobChanges`` are ever spliced into the SQL."""
    columns: Mapping[str, object] = changes
    forbidden = sorted(set(columns) - UPDATABLE_JOB_FIELDS)
    if forbidden:
        raise ValueError(f"job fields cannot be updated: {', '.join(forbidden)}")
    fields = sorted(columns)  # columns of JobChanges (checked above): safe in the SQL
    return ", ".join(f"{field} = ?" for field in fields), tuple(columns[f] for f in fields)


class RunnerQueries(SqliteDatabase):
    async def _update_job_where(
        self, job_id: str, changes: JobChanges, condition: str, parameters: Sequence[Any]
    ) -> Job | None:
        """``UPDATE jobs`` for one id plus an extra ``condition``; the new row or None."""
        if not changes:
            row = await self._fetch_one(
                SELECT_JOB + " WHERE id = ?" + condition, (job_id, *parameters)
            )
            return job_from_row(row) if row is not None else None
        assignments, values = job_assignments(changes)
        return await self._write(
            _job_or_none,
            f"UPDATE jobs SET {assignments} WHERE id = ?{condition}"  # noqa: S608
            f" RETURNING {JOB_COLUMNS}",
            (*values, job_id, *parameters),
        )

    async def claim_due_jobs(
        self, *, owner: str, now: float, lease_seconds: float, limit: int
    ) -> list[Job]:
        return await self._write(_claim_due_jobs, owner, now, lease_seconds, limit)

    async def extend_lease(self, job_id: str, *, owner: str, until: float) -> bool:
        return await self._write(
            changed_one,
            "UPDATE jobs SET locked_until = ? WHERE id = ? AND lease_owner = ?",
            (until, job_id, owner),
        )

    async def update_leased_job(
        self, job_id: str, *, owner: str, changes: JobChanges
    ) -> Job | None:
        return await self._update_job_where(job_id, changes, " AND lease_owner = ?", (owner,))

    async def update_job_if_status(
        self, job_id: str, *, statuses: Collection[str], changes: JobChanges
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
            "SELECT COUNT(*) FROM jobs WHERE leader_id = ? AND cache_result = 'coalesced'"  # noqa: S608 - constant lists
            f" AND deleted_at IS NULL AND status NOT IN {TERMINAL_SQL}",
            (job_id,),
        )
        return int(row[0]) if row is not None else 0

    async def known_assets(self, keys: Collection[str]) -> set[str]:
        return await self._read(_known_assets, list(keys))

    async def running_chains(self) -> list[str]:
        rows = await self._fetch(
            "SELECT chain_json FROM jobs WHERE chain_json IS NOT NULL"  # noqa: S608 - constant lists
            f" AND status NOT IN {TERMINAL_SQL}"
        )
        return [row[0] for row in rows]

    async def asset_media(self, keys: Collection[str]) -> dict[str, MediaFacts]:
        return await self._read(_asset_media, list(keys))

    async def expire_jobs(self, now: int, limit: int) -> list[Deletion]:
        return await self._write(_expire_jobs, now, limit)

    async def attach_media(self, job_id: str, media: Sequence[Asset], now: int) -> None:
        await self._write(_attach_media, job_id, list(media), now)

    async def purge_ended_jobs(self, before: int, limit: int) -> list[Deletion]:
        return await self._write(_purge_ended_jobs, before, limit)


# -- run on the connection's thread ---------------------------------------------------------


def _job_or_none(connection: sqlite3.Connection, sql: str, parameters: Sequence[Any]) -> Job | None:
    row = fetchone(connection, sql, parameters)
    return job_from_row(row) if row is not None else None


def changed_one(connection: sqlite3.Connection, sql: str, parameters: Sequence[Any]) -> bool:
    return bool(connection.execute(sql, parameters).rowcount == 1)


def _claim_due_jobs(
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


def _asset_media(connection: sqlite3.Connection, keys: list[str]) -> dict[str, MediaFacts]:
    found: dict[str, MediaFacts] = {}
    for start in range(0, len(keys), _KEYS_PER_QUERY):
        chunk = keys[start : start + _KEYS_PER_QUERY]
        marks = ", ".join("?" * len(chunk))
        rows = fetchall(
            connection,
            f"SELECT key, media_json FROM assets WHERE media_json IS NOT NULL AND key IN ({marks})",  # noqa: S608
            chunk,
        )
        found.update((row[0], MediaFacts.from_json(row[1])) for row in rows)
    return found


def _media_json(asset: Asset) -> str | None:
    return asset.media.to_json() if asset.media is not None else None


def _known_assets(connection: sqlite3.Connection, keys: list[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(keys), _KEYS_PER_QUERY):
        chunk = keys[start : start + _KEYS_PER_QUERY]
        marks = ", ".join("?" * len(chunk))
        rows = fetchall(connection, f"SELECT key FROM assets WHERE key IN ({marks})", chunk)  # noqa: S608
        found.update(row[0] for row in rows)
    return found


def _expire_jobs(connection: sqlite3.Connection, now: int, limit: int) -> list[Deletion]:
    rows = fetchall(
        connection,
        "UPDATE jobs SET deleted_at = ? WHERE id IN ("
        " SELECT id FROM jobs WHERE expires_at IS NOT NULL AND expires_at <= ?"
        " AND deleted_at IS NULL LIMIT ?)"
        " RETURNING id, video_asset, last_frame_asset",
        (now, now, limit),
    )
    return [
        Deletion(job_id=job_id, released=release_assets(connection, [video, last_frame]))
        for job_id, video, last_frame in rows
    ]


def _attach_media(
    connection: sqlite3.Connection, job_id: str, media: list[Asset], now: int
) -> None:
    for asset in media:
        if changed_one(
            connection,
            "INSERT INTO job_media (job_id, key) VALUES (?, ?) ON CONFLICT DO NOTHING",
            (job_id, asset.key),
        ):
            add_reference(connection, asset, now)


def _purge_ended_jobs(connection: sqlite3.Connection, before: int, limit: int) -> list[Deletion]:
    rows = fetchall(connection, f"{PURGEABLE} LIMIT ?", (before, limit))
    deletions: list[Deletion] = []
    for (job_id,) in rows:
        keys = [
            row[0]
            for row in fetchall(
                connection, "DELETE FROM job_media WHERE job_id = ? RETURNING key", (job_id,)
            )
        ]
        connection.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
        deletions.append(Deletion(job_id=job_id, released=release_assets(connection, keys)))
    return deletions


def release_assets(connection: sqlite3.Connection, keys: Sequence[str | None]) -> tuple[str, ...]:
    """One reference less for each key; the keys no job refers to any more."""
    released: list[str] = []
    for key in keys:
        if key is None:
            continue
        row = fetchone(
            connection, "UPDATE assets SET refs = refs - 1 WHERE key = ? RETURNING refs", (key,)
        )
        if row is not None and row[0] <= 0:
            connection.execute("DELETE FROM assets WHERE key = ?", (key,))
            released.append(key)
    return tuple(released)


def add_reference(connection: sqlite3.Connection, asset: Asset, now: int) -> None:
    connection.execute(
        "INSERT INTO assets (key, size, content_type, refs, created_at, media_json)"
        " VALUES (?, ?, ?, 1, ?, ?) ON CONFLICT (key) DO UPDATE SET refs = refs + 1,"
        " media_json = COALESCE(assets.media_json, excluded.media_json)",
        (asset.key, asset.size, asset.content_type, now, _media_json(asset)),
    )
