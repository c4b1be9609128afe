"""SQLite: how a job ends, one ``BEGIN IMMEDIATE`` transaction each: completion, failure, the
settling of an unknown submit outcome, and an upstream id that turned up later.

Each updates the leader's row only while the condition it was decided for holds (its lease, its
status), so a job ends exactly once across processes; then its followers' rows, then what the
decision core (``gateway.domain.outcomes``) returns: money, events, the Idempotency-Key, the
cache entry. One synchronous function on the writer's thread: one hop however many statements.
"""

from __future__ import annotations

import sqlite3
from typing import Any

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
from gateway.store.base import Asset, Job, JobChanges
from gateway.store.sqlite.assets import add_reference
from gateway.store.sqlite.idempotency import forget_idempotency_key
from gateway.store.sqlite.money import apply_settlement
from gateway.store.sqlite.rows import (
    JOB_COLUMNS,
    fetchall,
    fetchone,
    job_assignments,
    job_from_row,
    job_or_none,
    reread,
)
from gateway.store.sqlite.webhooks import emit_video_events


def complete_job(
    connection: sqlite3.Connection,
    job_id: str,
    owner: str,
    changes: JobChanges,
    video: Asset | None,
    last_frame: Asset | None,
    charge: int | None,
) -> Job | None:
    assignments, values = job_assignments(changes)
    now = float(changes.get("updated_at", 0))
    row = fetchone(
        connection,
        # A job deleted while it ran records no assets: nobody could fetch them.
        f"UPDATE jobs SET {assignments},"  # noqa: S608
        " video_asset = CASE WHEN deleted_at IS NULL THEN ? END,"
        " last_frame_asset = CASE WHEN deleted_at IS NULL THEN ? END"
        f" WHERE id = ? AND lease_owner = ? RETURNING {JOB_COLUMNS}",
        (*values, _key(video), _key(last_frame), job_id, owner),
    )
    if row is None:
        return None  # the lease was lost: the transaction changes nothing
    job = job_from_row(row)
    end = follower_completion(job, now)
    followers = _complete_followers(connection, job.id, end, (_key(video), _key(last_frame)))
    ending = completion(job, followers, stored=video is not None, charge=charge, now=now)
    for asset in (video, last_frame):
        for _ in range(ending.references):
            if asset is not None:
                add_reference(connection, asset, int(now))
    apply_ending(connection, job, ending, now)
    return reread(connection, job_id)


def _key(asset: Asset | None) -> str | None:
    return asset.key if asset is not None else None


# The unfinished videos that joined a leader (they end with it).
_FOLLOWERS = f"leader_id = ? AND cache_result = 'coalesced' AND status NOT IN {TERMINAL_SQL}"


def _complete_followers(
    connection: sqlite3.Connection, leader_id: str, end: FollowerEnd, assets: tuple[str | None, ...]
) -> list[tuple[str, bool]]:
    """Complete the videos that joined ``leader_id`` (recording the assets on those not
    deleted); each as (id, deleted)."""
    rows = fetchall(
        connection,
        "UPDATE jobs SET status = ?, progress = 100, completed_at = ?, updated_at = ?,"  # noqa: S608 - constant lists
        " expires_at = ?, delivered_seconds = ?,"
        " video_asset = CASE WHEN deleted_at IS NULL THEN ? END,"
        " last_frame_asset = CASE WHEN deleted_at IS NULL THEN ? END"
        f" WHERE {_FOLLOWERS} RETURNING id, deleted_at",
        (
            end.status,
            end.completed_at,
            end.updated_at,
            end.expires_at,
            end.delivered_seconds,
            *assets,
            leader_id,
        ),
    )
    return [(follower_id, deleted_at is not None) for follower_id, deleted_at in rows]


def _fail_followers(connection: sqlite3.Connection, leader_id: str, end: FollowerEnd) -> list[str]:
    """Fail the videos that joined ``leader_id`` with its error; their ids."""
    rows = fetchall(
        connection,
        "UPDATE jobs SET status = ?, error_code = ?, error_message = ?, completed_at = ?,"  # noqa: S608 - constant lists
        f" updated_at = ? WHERE {_FOLLOWERS} RETURNING id",
        (
            end.status,
            end.error_code,
            end.error_message,
            end.completed_at,
            end.updated_at,
            leader_id,
        ),
    )
    return [row[0] for row in rows]


def fail_job(
    connection: sqlite3.Connection,
    job_id: str,
    owner: str | None,
    code: str,
    message: str,
    now: float,
    rejected: bool,
    charge: int | None = None,
) -> Job | None:
    end = failure_end(code, message, now, rejected=rejected)
    condition, parameters = (
        (" AND lease_owner = ?", (owner,)) if owner else (" AND status = 'submitting'", ())
    )
    job = _end_leader(connection, job_id, end, condition, parameters)
    if job is None:
        return None
    followers = _fail_followers(connection, job.id, follower_failure(end))
    ending = failure(job, followers, charge=charge, rejected=rejected, now=now)
    apply_ending(connection, job, ending, now)
    return reread(connection, job_id)


def _end_leader(
    connection: sqlite3.Connection,
    job_id: str,
    end: LeaderEnd,
    condition: str,
    parameters: tuple[Any, ...],
    chain_json: str | None = None,
) -> Job | None:
    """End the job as ``end`` says, only while ``condition`` holds; None when it did not."""
    row = fetchone(
        connection,
        "UPDATE jobs SET status = ?, error_code = ?, error_message = ?,"  # noqa: S608
        " completed_at = ?, updated_at = ?, lease_owner = NULL, locked_until = NULL,"
        " next_check_at = NULL, chain_json = COALESCE(?, chain_json)"
        f" WHERE id = ?{condition} RETURNING {JOB_COLUMNS}",
        (
            end.status,
            end.error_code,
            end.error_message,
            end.completed_at,
            end.updated_at,
            chain_json,
            job_id,
            *parameters,
        ),
    )
    return job_from_row(row) if row is not None else None


def apply_ending(connection: sqlite3.Connection, job: Job, ending: Ending, now: float) -> None:
    """Write what the core decided besides the job rows: money, events, idempotency, entry."""
    apply_settlement(connection, ending.settle)
    if ending.forget_idempotency:
        forget_idempotency_key(connection, job.id)
    emit_video_events(connection, ending.event, ending.notify, now)
    if ending.entry == "serve":
        connection.execute(
            "UPDATE cache_entries SET status = 'completed', expires_at = CASE"
            " WHEN ? IS NULL THEN expires_at WHEN expires_at IS NULL THEN ?"
            " ELSE MIN(expires_at, ?) END WHERE key = ? AND leader_id = ?",
            (job.expires_at, job.expires_at, job.expires_at, job.cache_key, job.id),
        )
    elif ending.entry == "hand_over":
        connection.execute(
            "UPDATE cache_entries SET status = 'completed', leader_id = ?"
            " WHERE key = ? AND leader_id = ?",
            (ending.heir, job.cache_key, job.id),
        )
    elif ending.entry == "drop":
        connection.execute(
            "DELETE FROM cache_entries WHERE key = ? AND leader_id = ?", (job.cache_key, job.id)
        )


def resolve_unknown(
    connection: sqlite3.Connection,
    job_id: str,
    charge: bool,
    actor: str,
    reason: str,
    now: float,
    amount: int | None = None,
    chain_json: str | None = None,
    message: str | None = None,
) -> Job | None:
    end = unknown_resolution_end(
        charge=charge, actor=actor, reason=reason, now=now, message=message
    )
    condition = " AND status = 'submit_unknown'"
    job = _end_leader(connection, job_id, end, condition, (), chain_json)
    if job is None:
        return None
    followers = _fail_followers(connection, job.id, follower_failure(end))
    ending = unknown_resolution(
        job, followers, charge=charge, amount=amount, actor=actor, reason=reason, now=now
    )
    apply_ending(connection, job, ending, now)
    return reread(connection, job_id)


def attach_upstream_id(
    connection: sqlite3.Connection, job_id: str, upstream_id: str, now: float
) -> Job | None:
    return job_or_none(
        connection,
        "UPDATE jobs SET upstream_id = ?, status = 'queued', error_code = NULL,"  # noqa: S608
        " error_message = NULL, updated_at = ?, refreshed_at = NULL, next_check_at = ?,"
        " lease_owner = NULL, locked_until = NULL, attempts = 0"
        " WHERE id = ? AND status IN ('submitting', 'submit_unknown')"
        f" RETURNING {JOB_COLUMNS}",
        (upstream_id, int(now), now, job_id),
    )
