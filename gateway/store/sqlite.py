"""The SQLite adapter of the ``Store`` protocol: teams, keys and jobs.

Connection discipline and migrations live in ``sqlite_db``; the runner's leases and assets in
``sqlite_runner``. Only these modules know the SQLite dialect; services import ``store.base``.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from gateway.errors import OutageTypes
from gateway.ids import new_id
from gateway.store.base import ApiKey, Deletion, Job, JobChanges, Order, Team
from gateway.store.listing import list_select
from gateway.store.sqlite_browse import BrowseQueries
from gateway.store.sqlite_db import (
    INSERT_JOB,
    JOB_COLUMN_NAMES,
    SELECT_JOB,
    VISIBLE_JOB,
    fetchall,
    job_from_row,
    job_row,
    parse_sqlite_url,
    raise_translated,
    split_statements,
)
from gateway.store.sqlite_outcomes import OutcomeQueries
from gateway.store.sqlite_runner import changed_one, release_assets
from gateway.store.sqlite_traffic import TrafficQueries
from gateway.store.sqlite_webhooks import WebhookQueries

__all__ = ["SqliteStore", "parse_sqlite_url", "split_statements"]

_TEAM_COLUMNS = "id, name, created_at"
_KEY_COLUMNS = "id, team_id, name, prefix, created_at, revoked_at"
# Column lists are constants, never input: S608 (SQL built from strings) does not apply.
_SELECT_TEAM = f"SELECT {_TEAM_COLUMNS} FROM teams"  # noqa: S608
_SELECT_KEY = f"SELECT {_KEY_COLUMNS} FROM api_keys"  # noqa: S608


LIST_JOBS = list_select(JOB_COLUMN_NAMES)


class SqliteStore(OutcomeQueries, TrafficQueries, BrowseQueries, WebhookQueries):
    outage_errors: OutageTypes = (sqlite3.OperationalError,)  # "database is locked"

    """``Store`` on one SQLite database; safe for concurrent callers and processes."""

    async def create_team(self, name: str, now: int) -> Team:
        team = Team(id=new_id("team", now=now), name=name, created_at=now)
        try:
            await self._write(
                changed_one,
                "INSERT INTO teams (id, name, created_at) VALUES (?, ?, ?)",
                (team.id, team.name, team.created_at),
            )
        except sqlite3.IntegrityError as exc:
            raise_translated(exc, taken=f"a team named {name!r} already exists")
        return team

    async def team_by_name(self, name: str) -> Team | None:
        row = await self._fetch_one(_SELECT_TEAM + " WHERE name = ?", (name,))
        return _team(row) if row is not None else None

    async def team_by_id(self, team_id: str) -> Team | None:
        row = await self._fetch_one(_SELECT_TEAM + " WHERE id = ?", (team_id,))
        return _team(row) if row is not None else None

    async def list_teams(self) -> list[Team]:
        return [_team(row) for row in await self._fetch(_SELECT_TEAM + " ORDER BY name")]

    async def create_key(
        self, *, team_id: str, name: str, key_hash: str, prefix: str, now: int
    ) -> ApiKey:
        key = ApiKey(
            id=new_id("key", now=now), team_id=team_id, name=name, prefix=prefix, created_at=now
        )
        try:
            await self._write(
                changed_one,
                "INSERT INTO api_keys (id, team_id, name, key_hash, prefix, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (key.id, team_id, name, key_hash, prefix, now),
            )
        except sqlite3.IntegrityError as exc:
            raise_translated(
                exc, taken="a key with this hash already exists", missing=f"no team {team_id!r}"
            )
        return key

    async def key_by_hash(self, key_hash: str) -> ApiKey | None:
        row = await self._fetch_one(_SELECT_KEY + " WHERE key_hash = ?", (key_hash,))
        return _key(row) if row is not None else None

    async def list_keys(self, team_id: str | None = None) -> list[ApiKey]:
        if team_id is None:
            rows = await self._fetch(_SELECT_KEY + " ORDER BY created_at, id")
        else:
            rows = await self._fetch(
                _SELECT_KEY + " WHERE team_id = ? ORDER BY created_at, id",
                (team_id,),
            )
        return [_key(row) for row in rows]

    async def revoke_key(self, key_id: str, now: int) -> bool:
        return await self._write(
            changed_one,
            "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
            (now, key_id),
        )

    # -- jobs -----------------------------------------------------------------------------

    async def insert_job(self, job: Job) -> None:
        try:
            await self._write(changed_one, INSERT_JOB, job_row(job))
        except sqlite3.IntegrityError as exc:
            raise_translated(
                exc,
                taken=f"job {job.id!r} already exists",
                missing=f"job {job.id!r} refers to an unknown team or key",
            )

    async def get_job(
        self, job_id: str, team_id: str | None = None, *, include_deleted: bool = False
    ) -> Job | None:
        sql = SELECT_JOB + " WHERE id = ?"
        parameters: list[str] = [job_id]
        if not include_deleted:
            sql += " AND deleted_at IS NULL"
        if team_id is not None:
            sql += " AND team_id = ?"
            parameters.append(team_id)
        row = await self._fetch_one(sql, parameters)
        return job_from_row(row) if row is not None else None

    async def update_job(self, job_id: str, changes: JobChanges) -> Job | None:
        """Apply ``changes``; soft-deleted jobs are updated too (the runner still settles them)."""
        return await self._update_job_where(job_id, changes, "", ())

    async def list_jobs(
        self, team_id: str, *, after: str | None, limit: int, order: Order
    ) -> tuple[list[Job], bool]:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        if order not in ("asc", "desc"):
            raise ValueError(f"order must be 'asc' or 'desc', got {order!r}")
        sql = f"{LIST_JOBS} WHERE team_id = ? AND {VISIBLE_JOB}"
        parameters: list[Any] = [team_id]
        if after is not None:
            sql += " AND id < ?" if order == "desc" else " AND id > ?"
            parameters.append(after)
        sql += f" ORDER BY id {order.upper()} LIMIT ?"
        parameters.append(limit + 1)
        rows = await self._fetch(sql, parameters)
        return [job_from_row(row) for row in rows[:limit]], len(rows) > limit

    async def delete_job(self, job_id: str, team_id: str, now: int) -> Deletion | None:
        return await self._write(_delete_job, job_id, team_id, now)


def _delete_job(
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


def _team(row: sqlite3.Row) -> Team:
    return Team(id=row["id"], name=row["name"], created_at=row["created_at"])


def _key(row: sqlite3.Row) -> ApiKey:
    return ApiKey(
        id=row["id"],
        team_id=row["team_id"],
        name=row["name"],
        prefix=row["prefix"],
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
    )
