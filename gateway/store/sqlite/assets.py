"""SQLite: stored assets and retention. Asset reference counts change in the same transaction
as the job that gains or loses them; expiry and the purge release what no job refers to."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from gateway.domain.media import MediaFacts
from gateway.store.base import Asset, Deletion
from gateway.store.sqlite.rows import Row, changed_one, fetchall, fetchone

_KEYS_PER_QUERY = 500
# Failed and rejected jobs that ended before $1, were never charged (a charged one counts in
# usage reports) nor hold money, and lead no job still running.
_PURGEABLE = (
    "SELECT id FROM jobs j WHERE status IN ('failed', 'rejected') AND completed_at < ?"
    " AND money_state IN ('none', 'refunded') AND NOT EXISTS (SELECT 1 FROM jobs f WHERE"
    " f.leader_id = j.id AND f.status NOT IN ('failed', 'rejected')) ORDER BY completed_at"
)


def get_asset(connection: sqlite3.Connection, key: str) -> Asset | None:
    row = fetchone(connection, "SELECT key, size, content_type FROM assets WHERE key = ?", (key,))
    return Asset(key=row[0], size=row[1], content_type=row[2]) if row is not None else None


def asset_media(connection: sqlite3.Connection, keys: list[str]) -> dict[str, MediaFacts]:
    rows = _in_chunks(
        connection, "SELECT key, media_json FROM assets WHERE media_json IS NOT NULL AND", keys
    )
    return {row[0]: MediaFacts.from_json(row[1]) for row in rows}


def known_assets(connection: sqlite3.Connection, keys: list[str]) -> set[str]:
    return {row[0] for row in _in_chunks(connection, "SELECT key FROM assets WHERE", keys)}


def _in_chunks(connection: sqlite3.Connection, select: str, keys: list[str]) -> list[Row]:
    """The rows of ``select ... key IN (...)`` for every key, a bounded number at a time."""
    found: list[Row] = []
    for start in range(0, len(keys), _KEYS_PER_QUERY):
        chunk = keys[start : start + _KEYS_PER_QUERY]
        marks = ", ".join("?" * len(chunk))
        found.extend(fetchall(connection, f"{select} key IN ({marks})", chunk))
    return found


def _media_json(asset: Asset) -> str | None:
    return asset.media.to_json() if asset.media is not None else None


def expire_jobs(connection: sqlite3.Connection, now: int, limit: int) -> list[Deletion]:
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


def attach_media(
    connection: sqlite3.Connection, job_id: str, media: Sequence[Asset], now: int
) -> None:
    for asset in media:
        if changed_one(
            connection,
            "INSERT INTO job_media (job_id, key) VALUES (?, ?) ON CONFLICT DO NOTHING",
            (job_id, asset.key),
        ):
            add_reference(connection, asset, now)


def purge_ended_jobs(connection: sqlite3.Connection, before: int, limit: int) -> list[Deletion]:
    rows = fetchall(connection, f"{_PURGEABLE} LIMIT ?", (before, limit))
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
