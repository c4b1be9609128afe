"""PostgreSQL queries of the job runner: leases, conditional updates, stored assets and retention.

A claim locks its jobs with ``FOR UPDATE SKIP LOCKED`` inside one ``UPDATE ... RETURNING``, so
runners on any number of connections and replicas never take the same job and never wait for
each other. Asset reference counts change in the transaction of the job that gains or loses
them, with the asset rows locked in key order.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any

from gateway.domain.jobs import TERMINAL_SQL
from gateway.domain.media import MediaFacts
from gateway.store.base import Asset, Deletion, Job, JobChanges
from gateway.store.postgres_db import (
    JOB_COLUMNS,
    RUNNABLE,
    SELECT_JOB,
    PostgresDatabase,
    job_assignments,
    job_from_row,
)

if TYPE_CHECKING:
    from gateway.store.postgres_db import Connection


# The job columns qualified, for statements that join ``jobs`` with another relation.
_JOB_COLUMNS_OF_JOBS = ", ".join(f"jobs.{column}" for column in JOB_COLUMNS.split(", "))


class RunnerQueries(PostgresDatabase):
    async def _update_job_where(
        self, job_id: str, changes: JobChanges, condition: str, parameters: Sequence[Any]
    ) -> Job | None:
        """``UPDATE jobs`` for one id plus an extra ``condition`` whose placeholders start at
        ``$2``; the new row or None. The condition is re-checked on the row's latest version
        once its lock is granted, so it holds at the moment of the update."""
        if not changes:
            row = await self._fetch_one(
                SELECT_JOB + " WHERE id = $1" + condition, job_id, *parameters
            )
            return job_from_row(row) if row is not None else None
        assignments, values = job_assignments(changes, first=2 + len(parameters))
        row = await self._fetch_one(
            f"UPDATE jobs SET {assignments} WHERE id = $1{condition}"  # noqa: S608
            f" RETURNING {JOB_COLUMNS}",
            job_id,
            *parameters,
            *values,
        )
        return job_from_row(row) if row is not None else None

    async def claim_due_jobs(
        self, *, owner: str, now: float, lease_seconds: float, limit: int
    ) -> list[Job]:
        due = (
            "next_check_at IS NOT NULL AND next_check_at <= $3"
            f" AND status IN {RUNNABLE} AND (locked_until IS NULL OR locked_until < $3)"
        )
        # A CTE runs once: as an IN (...) subquery, the planner may rescan it, and each rescan
        # skips the rows this statement already took and locks further ones past the LIMIT.
        rows = await self._fetch(
            f"WITH due AS MATERIALIZED (SELECT id FROM jobs WHERE {due}"  # noqa: S608
            " ORDER BY next_check_at LIMIT $4 FOR UPDATE SKIP LOCKED)"
            " UPDATE jobs SET lease_owner = $1, locked_until = $2 FROM due"
            f" WHERE jobs.id = due.id RETURNING {_JOB_COLUMNS_OF_JOBS}",
            owner,
            now + lease_seconds,
            now,
            max(limit, 0),
        )
        return [job_from_row(row) for row in rows]

    async def extend_lease(self, job_id: str, *, owner: str, until: float) -> bool:
        tag = await self._execute(
            "UPDATE jobs SET locked_until = $1 WHERE id = $2 AND lease_owner = $3",
            until,
            job_id,
            owner,
        )
        return tag == "UPDATE 1"

    async def update_leased_job(
        self, job_id: str, *, owner: str, changes: JobChanges
    ) -> Job | None:
        return await self._update_job_where(job_id, changes, " AND lease_owner = $2", (owner,))

    async def update_job_if_status(
        self, job_id: str, *, statuses: Collection[str], changes: JobChanges
    ) -> Job | None:
        return await self._update_job_where(
            job_id,
            changes,
            " AND status = ANY($2::text[]) AND lease_owner IS NULL",
            (list(statuses),),
        )

    async def get_asset(self, key: str) -> Asset | None:
        row = await self._fetch_one(
            "SELECT key, size, content_type FROM assets WHERE key = $1", key
        )
        return Asset(key=row[0], size=row[1], content_type=row[2]) if row is not None else None

    async def live_followers(self, job_id: str) -> int:
        row = await self._fetch_one(
            "SELECT COUNT(*) FROM jobs WHERE leader_id = $1 AND cache_result = 'coalesced'"  # noqa: S608 - constant lists
            f" AND deleted_at IS NULL AND status NOT IN {TERMINAL_SQL}",
            job_id,
        )
        return int(row[0]) if row is not None else 0

    async def known_assets(self, keys: Collection[str]) -> set[str]:
        rows = await self._fetch("SELECT key FROM assets WHERE key = ANY($1::text[])", list(keys))
        return {row[0] for row in rows}

    async def running_chains(self) -> list[str]:
        rows = await self._fetch(
            "SELECT chain_json FROM jobs WHERE chain_json IS NOT NULL"  # noqa: S608 - constant lists
            f" AND status NOT IN {TERMINAL_SQL}"
        )
        return [row[0] for row in rows]

    async def asset_media(self, keys: Collection[str]) -> dict[str, MediaFacts]:
        rows = await self._fetch(
            "SELECT key, media_json FROM assets"
            " WHERE media_json IS NOT NULL AND key = ANY($1::text[])",
            list(keys),
        )
        return {row[0]: MediaFacts.from_json(row[1]) for row in rows}

    async def attach_media(self, job_id: str, media: Sequence[Asset], now: int) -> None:
        async with self._transaction() as connection:
            rows = await connection.fetch(
                "INSERT INTO job_media (job_id, key) SELECT $1, k FROM unnest($2::text[]) AS k"
                " ON CONFLICT DO NOTHING RETURNING key",
                job_id,
                sorted({asset.key for asset in media}),
            )
            added = {row[0] for row in rows}
            unique = {asset.key: asset for asset in media if asset.key in added}
            await add_references(connection, list(unique.values()), now)

    async def purge_ended_jobs(self, before: int, limit: int) -> list[Deletion]:
        async with self._transaction() as connection:
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

    async def expire_jobs(self, now: int, limit: int) -> list[Deletion]:
        due = "expires_at IS NOT NULL AND expires_at <= $1 AND deleted_at IS NULL"
        async with self._transaction() as connection:
            # SKIP LOCKED: jobs another replica is expiring (or anyone is changing) right now
            # are left for the next sweep. Rows are locked as they are now, so the condition
            # holds for each one taken.
            rows = await connection.fetch(
                f"WITH due AS MATERIALIZED (SELECT id FROM jobs WHERE {due}"  # noqa: S608
                " ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED)"
                " UPDATE jobs SET deleted_at = $1 FROM due WHERE jobs.id = due.id"
                " RETURNING jobs.id, jobs.video_asset, jobs.last_frame_asset",
                now,
                max(limit, 0),
            )
            jobs = sorted((row[0], [row[1], row[2]]) for row in rows)
            released = await release_assets(connection, [key for _, keys in jobs for key in keys])
        deletions: list[Deletion] = []
        owners: dict[str, str] = {}
        for job_id, keys in jobs:  # a shared key is released by the last job that held it
            for key in keys:
                if key in released:
                    owners[key] = job_id
        for job_id, keys in jobs:
            mine = tuple(
                dict.fromkeys(k for k in keys if k is not None and owners.get(k) == job_id)
            )
            deletions.append(Deletion(job_id=job_id, released=mine))
        return deletions


_PURGEABLE = (
    "SELECT id FROM jobs j WHERE status IN ('failed', 'rejected') AND completed_at < $1"
    " AND money_state IN ('none', 'refunded') AND NOT EXISTS (SELECT 1 FROM jobs f WHERE"
    " f.leader_id = j.id AND f.status NOT IN ('failed', 'rejected')) ORDER BY completed_at"
    " LIMIT $2 FOR UPDATE SKIP LOCKED"
)


async def release_assets(connection: Connection, keys: Sequence[str | None]) -> set[str]:
    """One reference less per occurrence of each key; the keys no job refers to any more.

    The rows are locked in key order first, so concurrent releases and new references of one
    asset serialise (a cache hit never revives an asset whose last reference just went).
    """
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


def _media_json(asset: Asset) -> str | None:
    return asset.media.to_json() if asset.media is not None else None


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
