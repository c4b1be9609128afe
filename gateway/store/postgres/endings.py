"""PostgreSQL side of a job's ending: completion, failure, the resolution of an unknown submit
outcome, and an upstream id that turned up later, as ``gateway.domain.outcomes`` decides.

Each ending is one transaction that first updates the leader's row, conditional on the state it
was decided for (its lease, ``submitting``, ``submit_unknown``): the row lock orders it against a
concurrent completion, failure or join, so it happens exactly once across connections and
replicas. Then it ends the followers, and ``apply_ending`` writes the rest in the lock order job
rows, asset rows, budget counters, cache entries.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from gateway.domain.jobs import TERMINAL_SQL
from gateway.domain.outcomes import (
    Ending,
    FollowerEnd,
    LeaderEnd,
    completion,
    failure,
    failure_end,
    follower_completion,
    follower_failure,
    unknown_resolution,
    unknown_resolution_end,
)
from gateway.store.postgres.assets import add_references
from gateway.store.postgres.idempotency import forget_idempotency_key
from gateway.store.postgres.money import apply_settlement
from gateway.store.postgres.rows import (
    JOB_COLUMNS,
    job_assignments,
    job_or_none,
    reread,
)
from gateway.store.postgres.webhooks import emit_video_events
from gateway.store.records import Asset, Job, JobChanges

if TYPE_CHECKING:
    from gateway.store.postgres.database import Connection, Executor

# The unfinished videos that joined a leader ($1: its id); they end with it.
_FOLLOWERS = f"leader_id = $1 AND cache_result = 'coalesced' AND status NOT IN {TERMINAL_SQL}"


async def complete_job(
    connection: Connection,
    job_id: str,
    owner: str,
    changes: JobChanges,
    video: Asset | None,
    last_frame: Asset | None,
    charge: int | None,
) -> Job | None:
    keys = (_key(video), _key(last_frame))
    job = await _complete_leader(connection, job_id, owner, changes, keys)
    if job is None:
        return None  # the lease was lost: the transaction changes nothing
    now = float(changes.get("updated_at", 0))
    followers = await _complete_followers(connection, job.id, follower_completion(job, now), keys)
    ending = completion(job, followers, stored=video is not None, charge=charge, now=now)
    files = [asset for asset in (video, last_frame) if asset is not None]
    await apply_ending(connection, job, ending, now, files * ending.references)
    return await reread(connection, job_id)


def _key(asset: Asset | None) -> str | None:
    return asset.key if asset is not None else None


async def _complete_leader(
    connection: Connection,
    job_id: str,
    owner: str,
    changes: JobChanges,
    keys: tuple[str | None, str | None],
) -> Job | None:
    """Apply ``changes`` and record the assets while ``owner`` holds the lease."""
    assignments, values = job_assignments(changes, first=5)
    row = await connection.fetchrow(
        # A job deleted while it ran records no assets: nobody could fetch them.
        "UPDATE jobs SET"  # noqa: S608
        f" {assignments + ',' if assignments else ''}"
        " video_asset = CASE WHEN deleted_at IS NULL THEN $1::text END,"
        " last_frame_asset = CASE WHEN deleted_at IS NULL THEN $2::text END"
        f" WHERE id = $3 AND lease_owner = $4 RETURNING {JOB_COLUMNS}",
        *keys,
        job_id,
        owner,
        *values,
    )
    return job_or_none(row)


async def fail_job(
    connection: Connection,
    job_id: str,
    owner: str | None,
    code: str,
    message: str,
    now: float,
    rejected: bool,
    charge: int | None,
) -> Job | None:
    end = failure_end(code, message, now, rejected=rejected)
    condition, parameters = (
        (" AND lease_owner = $8", (owner,)) if owner else (" AND status = 'submitting'", ())
    )
    job = await _end_leader(connection, job_id, end, condition, parameters)
    if job is None:
        return None
    followers = await _fail_followers(connection, job.id, follower_failure(end))
    ending = failure(job, followers, charge=charge, rejected=rejected, now=now)
    await apply_ending(connection, job, ending, now)
    return await reread(connection, job_id)


async def resolve_unknown(
    connection: Connection,
    job_id: str,
    charge: bool,
    actor: str,
    reason: str,
    now: float,
    amount: int | None,
    chain_json: str | None,
    message: str | None,
) -> Job | None:
    end = unknown_resolution_end(
        charge=charge, actor=actor, reason=reason, now=now, message=message
    )
    condition = " AND status = 'submit_unknown'"
    job = await _end_leader(connection, job_id, end, condition, (), chain_json)
    if job is None:
        return None
    followers = await _fail_followers(connection, job.id, follower_failure(end))
    ending = unknown_resolution(
        job, followers, charge=charge, amount=amount, actor=actor, reason=reason, now=now
    )
    await apply_ending(connection, job, ending, now)
    return await reread(connection, job_id)


async def attach_upstream_id(db: Executor, job_id: str, upstream_id: str, now: float) -> Job | None:
    row = await db.fetchrow(
        "UPDATE jobs SET upstream_id = $1, status = 'queued', error_code = NULL,"  # noqa: S608
        " error_message = NULL, updated_at = $2, refreshed_at = NULL, next_check_at = $3,"
        " lease_owner = NULL, locked_until = NULL, attempts = 0"
        " WHERE id = $4 AND status IN ('submitting', 'submit_unknown')"
        f" RETURNING {JOB_COLUMNS}",
        upstream_id,
        int(now),
        now,
        job_id,
    )
    return job_or_none(row)


async def _end_leader(
    connection: Connection,
    job_id: str,
    end: LeaderEnd,
    condition: str,
    parameters: tuple[Any, ...],
    chain_json: str | None = None,
) -> Job | None:
    """End the job as ``end`` says, only while ``condition`` ($8 on) holds; None otherwise."""
    row = await connection.fetchrow(
        "UPDATE jobs SET status = $1, error_code = $2, error_message = $3,"  # noqa: S608
        " completed_at = $4, updated_at = $5, lease_owner = NULL, locked_until = NULL,"
        " next_check_at = NULL, chain_json = COALESCE($6, chain_json)"
        f" WHERE id = $7{condition} RETURNING {JOB_COLUMNS}",
        end.status,
        end.error_code,
        end.error_message,
        end.completed_at,
        end.updated_at,
        chain_json,
        job_id,
        *parameters,
    )
    return job_or_none(row)


async def _complete_followers(
    connection: Connection, leader_id: str, end: FollowerEnd, assets: tuple[str | None, ...]
) -> list[tuple[str, bool]]:
    """Complete the videos that joined ``leader_id`` (recording the assets on those not
    deleted); each as (id, deleted)."""
    rows = await connection.fetch(
        "UPDATE jobs SET status = $2, progress = 100, completed_at = $3, updated_at = $4,"  # noqa: S608 - constant lists
        " expires_at = $5, delivered_seconds = $6,"
        " video_asset = CASE WHEN deleted_at IS NULL THEN $7::text END,"
        " last_frame_asset = CASE WHEN deleted_at IS NULL THEN $8::text END"
        f" WHERE {_FOLLOWERS} RETURNING id, deleted_at",
        leader_id,
        end.status,
        end.completed_at,
        end.updated_at,
        end.expires_at,
        end.delivered_seconds,
        *assets,
    )
    return [(row[0], row[1] is not None) for row in rows]


async def _fail_followers(connection: Connection, leader_id: str, end: FollowerEnd) -> list[str]:
    """Fail the videos that joined ``leader_id`` with its error; their ids."""
    rows = await connection.fetch(
        "UPDATE jobs SET status = $2, error_code = $3, error_message = $4, completed_at = $5,"  # noqa: S608 - constant lists
        f" updated_at = $6 WHERE {_FOLLOWERS} RETURNING id",
        leader_id,
        end.status,
        end.error_code,
        end.error_message,
        end.completed_at,
        end.updated_at,
    )
    return [row[0] for row in rows]


async def apply_ending(
    connection: Connection, job: Job, ending: Ending, now: float, files: Sequence[Asset] = ()
) -> None:
    """Write what the core decided besides the job rows, in the lock order job rows, asset
    rows, budget counters, cache entries: events, references, money, idempotency, entry."""
    await emit_video_events(connection, ending.event, ending.notify, now)
    await add_references(connection, files, int(now))
    await apply_settlement(connection, ending.settle)
    if ending.forget_idempotency:
        await forget_idempotency_key(connection, job.id)
    await _update_entry(connection, job, ending)


async def _update_entry(connection: Connection, job: Job, ending: Ending) -> None:
    """The leader's cache entry: served from now on, handed over to a follower, or dropped."""
    if ending.entry == "serve":
        await connection.execute(
            "UPDATE cache_entries SET status = 'completed', expires_at = CASE"
            " WHEN $1::float8 IS NULL THEN expires_at WHEN expires_at IS NULL THEN $1"
            " ELSE LEAST(expires_at, $1) END WHERE key = $2 AND leader_id = $3",
            job.expires_at,
            job.cache_key,
            job.id,
        )
    elif ending.entry == "hand_over":
        await connection.execute(
            "UPDATE cache_entries SET status = 'completed', leader_id = $1"
            " WHERE key = $2 AND leader_id = $3",
            ending.heir,
            job.cache_key,
            job.id,
        )
    elif ending.entry == "drop":
        await connection.execute(
            "DELETE FROM cache_entries WHERE key = $1 AND leader_id = $2", job.cache_key, job.id
        )
