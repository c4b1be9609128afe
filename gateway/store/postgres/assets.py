"""PostgreSQL side of stored assets: reference counts, media facts, and the sweeps that end jobs'
hold on them (retention expiry, the purge of failed jobs).

Reference counts change in the transaction of the job that gains or loses them, with the asset
rows locked in key order, so concurrent releases and new references of one asset serialise (a
cache hit never revives an asset whose last reference just went).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING

from gateway.domain.media import MediaFacts
from gateway.store.records import Asset, Deletion

if TYPE_CHECKING:
    from gateway.store.postgres.database import Connection, Executor

_PURGEABLE = (
    "SELECT id FROM jobs j WHERE status IN ('failed', 'rejected') AND completed_at < $1"
    " AND money_state IN ('none', 'refunded') AND NOT EXISTS (SELECT 1 FROM jobs f WHERE"
    " f.leader_id = j.id AND f.status NOT IN ('failed', 'rejected')) ORDER BY completed_at"
    " LIMIT $2 FOR UPDATE SKIP LOCKED"
)
# SKIP LOCKED: jobs another replica is expiring (or anyone is changing) right now are left for
# the next sweep. Rows are locked as they are now, so the condition holds for each one taken.
_EXPIRE = (
    "WITH due AS MATERIALIZED (SELECT id FROM jobs WHERE expires_at IS NOT NULL"
    " AND expires_at <= $1 AND deleted_at IS NULL ORDER BY expires_at LIMIT $2"
    " FOR UPDATE SKIP LOCKED)"
    " UPDATE jobs SET deleted_at = $1 FROM due WHERE jobs.id = due.id"
    " RETURNING jobs.id, jobs.video_asset, jobs.last_frame_asset"
)


async def add_references(connection: Connection, assets: Sequence[Asset], now: int) -> None:
    """One reference more per occurrence of each asset, creating its row when it is new; rows
    are inserted or locked in key order."""
    counts = Counter(asset.key for asset in assets)
    if not counts:
        return
    first = {asset.key: asset for asset in reversed(assets)}
    ordered = sorted(counts)
    await connection.execute(
        "INSERT INTO assets (key, size, content_type, refs, created_at, media_json)"
        " SELECT key, size, content_type, n, $5, media_json FROM unnest($1::text[],"
        " $2::bigint[], $3::text[], $4::bigint[], $6::text[])"
        " AS d(key, size, content_type, n, media_json) ORDER BY key"
        " ON CONFLICT (key) DO UPDATE SET refs = assets.refs + excluded.refs,"
        " media_json = COALESCE(assets.media_json, excluded.media_json)",
        ordered,
        [first[key].size for key in ordered],
        [first[key].content_type for key in ordered],
        [counts[key] for key in ordered],
        now,
        [_media_json(first[key]) for key in ordered],
    )


def _media_json(asset: Asset) -> str | None:
    return asset.media.to_json() if asset.media is not None else None


async def release_assets(connection: Connection, keys: Sequence[str | None]) -> set[str]:
    """One reference less per occurrence of each key; the keys no job refers to any more. The
    rows are locked in key order first."""
    counts = Counter(key for key in keys if key is not None)
    if not counts:
        return set()
    ordered = sorted(counts)
    await connection.execute(
        "SELECT 1 FROM assets WHERE key = ANY($1::text[]) ORDER BY key FOR UPDATE", ordered
    )
    rows = await connection.fetch(
        "UPDATE assets SET refs = assets.refs - d.n FROM unnest($1::text[], $2::bigint[])"
        " AS d(key, n) WHERE assets.key = d.key RETURNING assets.key, assets.refs",
        ordered,
        [counts[key] for key in ordered],
    )
    gone = sorted(row[0] for row in rows if row[1] <= 0)
    if gone:
        await connection.execute("DELETE FROM assets WHERE key = ANY($1::text[])", gone)
    return set(gone)


async def get_asset(db: Executor, key: str) -> Asset | None:
    row = await db.fetchrow("SELECT key, size, content_type FROM assets WHERE key = $1", key)
    return Asset(key=row[0], size=row[1], content_type=row[2]) if row is not None else None


async def asset_media(db: Executor, keys: Collection[str]) -> dict[str, MediaFacts]:
    rows = await db.fetch(
        "SELECT key, media_json FROM assets WHERE media_json IS NOT NULL AND key = ANY($1::text[])",
        list(keys),
    )
    return {row[0]: MediaFacts.from_json(row[1]) for row in rows}


async def known_assets(db: Executor, keys: Collection[str]) -> set[str]:
    rows = await db.fetch("SELECT key FROM assets WHERE key = ANY($1::text[])", list(keys))
    return {row[0] for row in rows}


async def attach_media(
    connection: Connection, job_id: str, media: Sequence[Asset], now: int
) -> None:
    """Record the job's media (the segments of a chain) once each, with a reference each."""
    rows = await connection.fetch(
        "INSERT INTO job_media (job_id, key) SELECT $1, k FROM unnest($2::text[]) AS k"
        " ON CONFLICT DO NOTHING RETURNING key",
        job_id,
        sorted({asset.key for asset in media}),
    )
    added = {row[0] for row in rows}
    unique = {asset.key: asset for asset in media if asset.key in added}
    await add_references(connection, list(unique.values()), now)


async def purge_ended_jobs(connection: Connection, before: int, limit: int) -> list[Deletion]:
    """Delete failed jobs that hold no money and lead no live follower, with their media."""
    ids = [row[0] for row in await connection.fetch(_PURGEABLE, before, max(limit, 0))]
    media = await connection.fetch(
        "DELETE FROM job_media WHERE job_id = ANY($1::text[]) RETURNING job_id, key", ids
    )
    await connection.execute("DELETE FROM jobs WHERE id = ANY($1::text[])", ids)
    released = await release_assets(connection, [row[1] for row in media])
    owners = {row[1]: row[0] for row in media if row[1] in released}
    return [
        Deletion(job_id, tuple(sorted(k for k, owner in owners.items() if owner == job_id)))
        for job_id in ids
    ]


async def expire_jobs(connection: Connection, now: int, limit: int) -> list[Deletion]:
    """Soft-delete the jobs past their retention; a shared key is released by the last job
    that held it."""
    rows = await connection.fetch(_EXPIRE, now, max(limit, 0))
    jobs = sorted((row[0], [row[1], row[2]]) for row in rows)
    released = await release_assets(connection, [key for _, keys in jobs for key in keys])
    owners: dict[str, str] = {}
    for job_id, keys in jobs:
        for key in keys:
            if key in released:
                owners[key] = job_id
    return [
        Deletion(
            job_id=job_id,
            released=tuple(
                dict.fromkeys(k for k in keys if k is not None and owners.get(k) == job_id)
            ),
        )
        for job_id, keys in jobs
    ]
