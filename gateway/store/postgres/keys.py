"""PostgreSQL side of the ``KeyStore``: teams and gateway keys. Single statements on the pool."""

from __future__ import annotations

from typing import TYPE_CHECKING

import asyncpg

from gateway.ids import new_id
from gateway.store.postgres.database import raise_translated
from gateway.store.postgres.rows import changed_one
from gateway.store.records import ApiKey, Team

if TYPE_CHECKING:
    from gateway.store.postgres.database import Executor

_TEAM_COLUMNS = "id, name, created_at"
_KEY_COLUMNS = "id, team_id, name, prefix, created_at, revoked_at"
# Column lists are constants, never input: S608 (SQL built from strings) does not apply.
_SELECT_TEAM = f"SELECT {_TEAM_COLUMNS} FROM teams"  # noqa: S608
_SELECT_KEY = f"SELECT {_KEY_COLUMNS} FROM api_keys"  # noqa: S608


async def create_team(db: Executor, name: str, now: int) -> Team:
    team = Team(id=new_id("team", now=now), name=name, created_at=now)
    try:
        await db.execute(
            "INSERT INTO teams (id, name, created_at) VALUES ($1, $2, $3)",
            team.id,
            team.name,
            team.created_at,
        )
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise_translated(exc, taken=f"a team named {name!r} already exists")
    return team


async def team_by_name(db: Executor, name: str) -> Team | None:
    row = await db.fetchrow(_SELECT_TEAM + " WHERE name = $1", name)
    return Team(*row) if row is not None else None


async def team_by_id(db: Executor, team_id: str) -> Team | None:
    row = await db.fetchrow(_SELECT_TEAM + " WHERE id = $1", team_id)
    return Team(*row) if row is not None else None


async def list_teams(db: Executor) -> list[Team]:
    return [Team(*row) for row in await db.fetch(_SELECT_TEAM + " ORDER BY name")]


async def create_key(
    db: Executor, *, team_id: str, name: str, key_hash: str, prefix: str, now: int
) -> ApiKey:
    key = ApiKey(
        id=new_id("key", now=now), team_id=team_id, name=name, prefix=prefix, created_at=now
    )
    try:
        await db.execute(
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


async def key_by_hash(db: Executor, key_hash: str) -> ApiKey | None:
    row = await db.fetchrow(_SELECT_KEY + " WHERE key_hash = $1", key_hash)
    return ApiKey(*row) if row is not None else None


async def list_keys(db: Executor, team_id: str | None) -> list[ApiKey]:
    rows = await db.fetch(
        _SELECT_KEY + " WHERE $1::text IS NULL OR team_id = $1 ORDER BY created_at, id", team_id
    )
    return [ApiKey(*row) for row in rows]


async def revoke_key(db: Executor, key_id: str, now: int) -> bool:
    tag = await db.execute(
        "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL", now, key_id
    )
    return changed_one(tag)
