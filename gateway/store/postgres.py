"""The PostgreSQL adapter of the ``Store`` protocol, on asyncpg: teams, keys and jobs.

The pool, transactions and migrations live in ``postgres_db``; the runner's leases and assets in
``postgres_runner``; money in ``postgres_money``; admission, completion and failure in
``postgres_admission``. Only these modules know the PostgreSQL dialect; services import
``store.base``. Several replicas may share one database: every multi-step change is one
transaction with row locks, so they see the same truth as one process on SQLite.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from gateway.errors import OutageTypes
from gateway.ids import new_id
from gateway.store.base import ApiKey, Deletion, Job, JobChanges, Order, Team
from gateway.store.listing import list_select
from gateway.store.postgres_browse import BrowseQueries
from gateway.store.postgres_db import (
    DEFAULT_POOL_MAX_SIZE,
    DEFAULT_POOL_MIN_SIZE,
    INSERT_JOB,
    JOB_COLUMN_NAMES,
    OUTAGE_ERRORS,
    SELECT_JOB,
    VISIBLE_JOB,
    check_postgres_url,
    job_from_row,
    job_row,
    raise_translated,
)
from gateway.store.postgres_outcomes import OutcomeQueries
from gateway.store.postgres_runner import release_assets
from gateway.store.postgres_traffic import TrafficQueries
from gateway.store.postgres_webhooks import WebhookQueries

__all__ = [
    "DEFAULT_POOL_MAX_SIZE",
    "DEFAULT_POOL_MIN_SIZE",
    "PostgresStore",
    "check_postgres_url",
]

_TEAM_COLUMNS = "id, name, created_at"
_KEY_COLUMNS = "id, team_id, name, prefix, created_at, revoked_at"
# Column lists are constants, never input: S608 (SQL built from strings) does not apply.
_SELECT_TEAM = f"SELECT {_TEAM_COLUMNS} FROM teams"  # noqa: S608
_SELECT_KEY = f"SELECT {_KEY_COLUMNS} FROM api_keys"  # noqa: S608


LIST_JOBS = list_select(JOB_COLUMN_NAMES)


class PostgresStore(OutcomeQueries, TrafficQueries, BrowseQueries, WebhookQueries):
    outage_errors: OutageTypes = OUTAGE_ERRORS

    """``Store`` on one PostgreSQL database; safe for concurrent callers, pools and replicas."""

    async def create_team(self, name: str, now: int) -> Team:
        team = Team(id=new_id("team", now=now), name=name, created_at=now)
        try:
            await self._execute(
                "INSERT INTO teams (id, name, created_at) VALUES ($1, $2, $3)",
                team.id,
                team.name,
                team.created_at,
            )
        except asyncpg.IntegrityConstraintViolationError as exc:
            raise_translated(exc, taken=f"a team named {name!r} already exists")
        return team

    async def team_by_name(self, name: str) -> Team | None:
        row = await self._fetch_one(_SELECT_TEAM + " WHERE name = $1", name)
        return _team(row) if row is not None else None

    async def team_by_id(self, team_id: str) -> Team | None:
        row = await self._fetch_one(_SELECT_TEAM + " WHERE id = $1", team_id)
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
            await self._execute(
                "INSERT INTO api_keys (id, team_id, name, key_hash, prefix, created_at)"
                " VALUES ($1, $2, $3, $4, $5, $6)",
                key.id,
                team_id,
                name,
                key_hash,
                prefix,
                now,
            )
        except asyncpg.IntegrityConstraintViolationError as exc:
            raise_translated(
                exc, taken="a key with this hash already exists", missing=f"no team {team_id!r}"
            )
        return key

    async def key_by_hash(self, key_hash: str) -> ApiKey | None:
        row = await self._fetch_one(_SELECT_KEY + " WHERE key_hash = $1", key_hash)
        return _key(row) if row is not None else None

    async def list_keys(self, team_id: str | None = None) -> list[ApiKey]:
        rows = await self._fetch(
            _SELECT_KEY + " WHERE $1::text IS NULL OR team_id = $1 ORDER BY created_at, id",
            team_id,
        )
        return [_key(row) for row in rows]

    async def revoke_key(self, key_id: str, now: int) -> bool:
        tag = await self._execute(
            "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
            now,
            key_id,
        )
        return tag == "UPDATE 1"

    # -- jobs -----------------------------------------------------------------------------

    async def insert_job(self, job: Job) -> None:
        try:
            await self._execute(INSERT_JOB, *job_row(job))
        except asyncpg.IntegrityConstraintViolationError as exc:
            raise_translated(
                exc,
                taken=f"job {job.id!r} already exists",
                missing=f"job {job.id!r} refers to an unknown team or key",
            )

    async def get_job(
        self, job_id: str, team_id: str | None = None, *, include_deleted: bool = False
    ) -> Job | None:
        sql = SELECT_JOB + " WHERE id = $1 AND ($2::text IS NULL OR team_id = $2)"
        if not include_deleted:
            sql += " AND deleted_at IS NULL"
        row = await self._fetch_one(sql, job_id, team_id)
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
        sql = f"{LIST_JOBS} WHERE team_id = $1 AND {VISIBLE_JOB}"
        parameters: list[Any] = [team_id, limit + 1]
        if after is not None:  # a range on the (team_id, id) index, not a filter
            sql += " AND id < $3" if order == "desc" else " AND id > $3"
            parameters.append(after)
        rows = await self._fetch(sql + f" ORDER BY id {order.upper()} LIMIT $2", *parameters)
        return [job_from_row(row) for row in rows[:limit]], len(rows) > limit

    async def delete_job(self, job_id: str, team_id: str, now: int) -> Deletion | None:
        async with self._transaction() as connection:
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


def _team(row: asyncpg.Record) -> Team:
    return Team(id=row["id"], name=row["name"], created_at=row["created_at"])


def _key(row: asyncpg.Record) -> ApiKey:
    return ApiKey(
        id=row["id"],
        team_id=row["team_id"],
        name=row["name"],
        prefix=row["prefix"],
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
    )
