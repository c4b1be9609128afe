"""SQLite transactions that decide a job's fate and money together: admission (cache hit, join a
running identical job, or reserve and register a new one), completion and failure.

Each runs under ``BEGIN IMMEDIATE``, so across processes sharing the file a request is admitted,
completed or failed exactly once, with the counters, the ledger, the followers and the cache
entry moving in the same step. Each is one synchronous function run on the writer's thread (one
hop however many statements it takes).
"""

from __future__ import annotations

import sqlite3
from typing import Any

from gateway.domain.admission import (
    CacheEntry,
    charges_hit,
    hit,
    hit_asset_keys,
    hit_record,
    in_flight_entry,
    join_record,
    lookup,
    new_record,
)
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
)
from gateway.store.base import (
    Admission,
    AdmissionPlan,
    Asset,
    IdempotencyKeyTaken,
    IdempotencyRecord,
    Job,
    JobChanges,
    KeyRevoked,
)
from gateway.store.sqlite_db import (
    INSERT_JOB,
    JOB_COLUMNS,
    SELECT_JOB,
    fetchall,
    fetchone,
    job_from_row,
    job_row,
)
from gateway.store.sqlite_money import (
    MoneyQueries,
    apply_settlement,
    check_and_reserve,
    check_budget,
    move,
)
from gateway.store.sqlite_runner import add_reference, job_assignments
from gateway.store.sqlite_traffic import enforce_in_flight, enforce_rate, traffic_limits
from gateway.store.sqlite_webhooks import emit_video_events

_SELECT_JOB_BY_ID = SELECT_JOB + " WHERE id = ?"


class AdmissionQueries(MoneyQueries):
    async def admit_job(self, plan: AdmissionPlan) -> Admission:
        return await self._write(_admit_job, plan)

    async def complete_job(
        self,
        job_id: str,
        *,
        owner: str,
        changes: JobChanges,
        video: Asset | None,
        last_frame: Asset | None,
        charge: int | None = None,
    ) -> Job | None:
        assignments, values = job_assignments(changes)
        now = float(changes.get("updated_at", 0))
        return await self._write(
            _complete_job, job_id, owner, assignments, values, video, last_frame, charge, now
        )

    async def fail_job(
        self,
        job_id: str,
        *,
        owner: str | None,
        code: str,
        message: str,
        now: float,
        rejected: bool = False,
        charge: int | None = None,
    ) -> Job | None:
        return await self._write(_fail_job, job_id, owner, code, message, now, rejected, charge)


# -- run on the writer's thread, inside BEGIN IMMEDIATE ... COMMIT --------------------------
# Each reads the rows the decision core (gateway/domain/admission.py, outcomes.py) needs and
# writes what it returns.


def _admit_job(connection: sqlite3.Connection, plan: AdmissionPlan) -> Admission:
    job = plan.job
    _check_key_active(connection, job.key_id)
    if plan.idempotency is not None:
        _bind_idempotency_key(connection, plan.idempotency, plan.now)
    limits = traffic_limits(connection, plan)
    enforce_rate(connection, plan, limits)  # every create counts, hits included
    if plan.cache_key is not None and plan.lookup:
        found = _from_cache(connection, plan, plan.cache_key)
        if found is not None:
            return found
    enforce_in_flight(connection, plan, limits)  # only jobs that go upstream count
    if job.cost_micros > 0:
        check_and_reserve(connection, job.id, plan.scopes, job.cost_micros, plan.now)
    job = new_record(job, cache_key=plan.cache_key, register=plan.register, now=plan.now)
    if job.cache_result == "miss" and plan.cache_key is not None:
        entry = in_flight_entry(plan.cache_key, job.id, plan.now, plan.cache_ttl_seconds)
        connection.execute(
            "INSERT INTO cache_entries (key, leader_id, status, created_at, expires_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET"
            " leader_id = excluded.leader_id, status = excluded.status,"
            " created_at = excluded.created_at, expires_at = excluded.expires_at",
            (entry.key, entry.leader_id, entry.status, entry.created_at, entry.expires_at),
        )
    connection.execute(INSERT_JOB, job_row(job))
    return Admission(job=job, outcome=job.cache_result or "bypass")


def _check_key_active(connection: sqlite3.Connection, key_id: str) -> None:
    """A key revoked on another replica (whose lookup cache is stale) pays for nothing more."""
    row = fetchone(connection, "SELECT revoked_at FROM api_keys WHERE id = ?", (key_id,))
    if row is None or row[0] is not None:
        raise KeyRevoked(key_id)


def _bind_idempotency_key(
    connection: sqlite3.Connection, record: IdempotencyRecord, now: float
) -> None:
    """Bind the key to the new video, or raise ``IdempotencyKeyTaken`` (nothing is created).
    ``BEGIN IMMEDIATE`` serialises this against every other writer of the file."""
    connection.execute(
        "DELETE FROM idempotency_keys WHERE key_id = ? AND idempotency_key = ? AND expires_at <= ?",
        (record.key_id, record.key, now),
    )
    row = fetchone(
        connection,
        "SELECT key_id, idempotency_key, fingerprint, job_id, created_at, expires_at"
        " FROM idempotency_keys WHERE key_id = ? AND idempotency_key = ?",
        (record.key_id, record.key),
    )
    if row is not None:
        raise IdempotencyKeyTaken(IdempotencyRecord(*row))
    connection.execute(
        "INSERT INTO idempotency_keys (key_id, idempotency_key, fingerprint, job_id, created_at,"
        " expires_at) VALUES (?, ?, ?, ?, ?, ?)",
        (
            record.key_id,
            record.key,
            record.fingerprint,
            record.job_id,
            record.created_at,
            record.expires_at,
        ),
    )


def _from_cache(
    connection: sqlite3.Connection, plan: AdmissionPlan, cache_key: str
) -> Admission | None:
    """A hit (a finished identical video whose asset is still stored) or a join onto the
    running identical job; None when neither exists."""
    row = fetchone(
        connection,
        "SELECT key, leader_id, status, created_at, expires_at FROM cache_entries WHERE key = ?",
        (cache_key,),
    )
    entry = CacheEntry(*row) if row is not None else None
    leader_row = fetchone(connection, _SELECT_JOB_BY_ID, (entry.leader_id,)) if entry else None
    leader = job_from_row(leader_row) if leader_row is not None else None
    verdict = lookup(entry, leader, plan.now)
    if verdict == "join" and leader is not None:
        job = join_record(plan.job, leader, cache_key)
        connection.execute(INSERT_JOB, job_row(job))
        return Admission(job=job, outcome="coalesced")
    if verdict == "hit" and leader is not None:
        return _hit(connection, plan, leader, cache_key)
    return None


def _hit(
    connection: sqlite3.Connection, plan: AdmissionPlan, source: Job, cache_key: str
) -> Admission | None:
    assets = []
    for key in hit_asset_keys(source):
        row = fetchone(
            connection,
            "SELECT key, size, content_type FROM assets WHERE key = ? AND refs > 0",
            (key,),
        )
        if row is None:
            return None  # the stored video is gone (deleted or expired): generate afresh
        assets.append(Asset(row[0], row[1], row[2]))
    charged = charges_hit(plan.charge_hits, plan.job.cost_micros)
    if charged:
        check_budget(connection, plan.scopes, plan.job.cost_micros, plan.now)
    job = hit_record(
        plan.job,
        source,
        cache_key=cache_key,
        now=plan.now,
        retention_seconds=plan.retention_seconds,
        charged=charged,
    )
    writes = hit(job, source, plan.scopes, plan.now)
    connection.execute(INSERT_JOB, job_row(job))
    for asset in assets:
        add_reference(connection, asset, int(plan.now))
    for movement in writes.movements():
        move(connection, movement)
    emit_video_events(connection, writes.event, [job.id], plan.now)
    return Admission(job=job, outcome="hit")


def _complete_job(
    connection: sqlite3.Connection,
    job_id: str,
    owner: str,
    assignments: str,
    values: tuple[Any, ...],
    video: Asset | None,
    last_frame: Asset | None,
    charge: int | None,
    now: float,
) -> Job | None:
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


def fail_followers(connection: sqlite3.Connection, leader_id: str, end: FollowerEnd) -> list[str]:
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


def _fail_job(
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
    job = end_leader(connection, job_id, end, condition, parameters)
    if job is None:
        return None
    followers = fail_followers(connection, job.id, follower_failure(end))
    ending = failure(job, followers, charge=charge, rejected=rejected, now=now)
    apply_ending(connection, job, ending, now)
    return reread(connection, job_id)


def end_leader(
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
        connection.execute("DELETE FROM idempotency_keys WHERE job_id = ?", (job.id,))
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


def reread(connection: sqlite3.Connection, job_id: str) -> Job:
    row = fetchone(connection, _SELECT_JOB_BY_ID, (job_id,))
    assert row is not None  # changed in this very transaction
    return job_from_row(row)
