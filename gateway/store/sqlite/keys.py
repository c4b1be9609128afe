"""SQLite: teams and gateway keys (the ``KeyStore`` port). Writes run on the writer's thread,
lookups on the reader; a taken name or hash becomes ``Conflict`` where it is raised."""

from __future__ import annotations

import sqlite3

from gateway.ids import new_id
from gateway.store.base import ApiKey, Team
from gateway.store.sqlite.database import raise_translated
from gateway.store.sqlite.rows import Row, changed_one, fetchall, fetchone

_TEAM_COLUMNS = "id, name, created_at"
_KEY_COLUMNS = "id, team_id, name, prefix, created_at, revoked_at"
# Column lists are constants, never input: S608 (SQL built from strings) does not apply.
_SELECT_TEAM = f"SELECT {_TEAM_COLUMNS} FROM teams"  # noqa: S608
_SELECT_KEY = f"SELECT {_KEY_COLUMNS} FROM api_keys"  # noqa: S608


def create_team(connection: sqlite3.Connection, name: str, now: int) -> Team:
    team = Team(id=new_id("team", now=now), name=name, created_at=now)
    try:
        connection.execute(
            "INSERT INTO teams (id, name, created_at) VALUES (?, ?, ?)",
            (team.id, team.name, team.created_at),
        )
    except sqlite3.IntegrityError as exc:
        raise_translated(exc, taken=f"a team named {name!r} already exists")
    return team


def team_by_name(connection: sqlite3.Connection, name: str) -> Team | None:
    row = fetchone(connection, _SELECT_TEAM + " WHERE name = ?", (name,))
    return _team(row) if row is not None else None


def team_by_id(connection: sqlite3.Connection, team_id: str) -> Team | None:
    row = fetchone(connection, _SELECT_TEAM + " WHERE id = ?", (team_id,))
    return _team(row) if row is not None else None


def list_teams(connection: sqlite3.Connection) -> list[Team]:
    return [_team(row) for row in fetchall(connection, _SELECT_TEAM + " ORDER BY name")]


def create_key(
    connection: sqlite3.Connection, team_id: str, name: str, key_hash: str, prefix: str, now: int
) -> ApiKey:
    key = ApiKey(
        id=new_id("key", now=now), team_id=team_id, name=name, prefix=prefix, created_at=now
    )
    try:
        connection.execute(
            "INSERT INTO api_keys (id, team_id, name, key_hash, prefix, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (key.id, team_id, name, key_hash, prefix, now),
        )
    except sqlite3.IntegrityError as exc:
        raise_translated(
            exc, taken="a key with this hash already exists", missing=f"no team {team_id!r}"
        )
    return key


def key_by_hash(connection: sqlite3.Connection, key_hash: str) -> ApiKey | None:
    row = fetchone(connection, _SELECT_KEY + " WHERE key_hash = ?", (key_hash,))
    return _key(row) if row is not None else None


def list_keys(connection: sqlite3.Connection, team_id: str | None) -> list[ApiKey]:
    if team_id is None:
        rows = fetchall(connection, _SELECT_KEY + " ORDER BY created_at, id")
    else:
        rows = fetchall(
            connection, _SELECT_KEY + " WHERE team_id = ? ORDER BY created_at, id", (team_id,)
        )
    return [_key(row) for row in rows]


def revoke_key(connection: sqlite3.Connection, key_id: str, now: int) -> bool:
    return changed_one(
        connection,
        "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
        (now, key_id),
    )


def _team(row: Row) -> Team:
    return Team(id=row["id"], name=row["name"], created_at=row["created_at"])


def _key(row: Row) -> ApiKey:
    return ApiKey(
        id=row["id"],
        team_id=row["team_id"],
        name=row["name"],
        prefix=row["prefix"],
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
    )
