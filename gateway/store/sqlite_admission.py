"""SQLite transactions that decide a job's fate and money together: admission (cache hit, join a
running identical job, or reserve and register a new one), completion and failure.

Each runs under ``BEGIN IMMEDIATE``, so across processes sharing the file a request is admitted,
completed or failed exactly once, with the counters, the ledger, the followers and the cache
entry moving in the same step. Each is one synchronous function run on the writer's thread (one
hop however many statements it takes).
"""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from typing import Any

from gateway.domain.webhooks import VIDEO_COMPLETED, VIDEO_FAILED
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
from gateway.store.sqlite_money import MoneyQueries, check_and_reserve, settle
from gateway.store.sqlite_runner import add_reference, job_assignments
from gateway.store.sqlite_traffic import enforce_in_flight, enforce_rate, traffic_limits
from gateway.store.sqlite_webhooks import emit_video_events

_FINISHED = ("completed", "failed", "rejected")
# A job whose submit outcome is unknown may never deliver: new identical requests start afresh.
_UNJOINABLE = (*_FINISHED, "submit_unknown")
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


def _admit_job(connection: sqlite3.Connection, plan: AdmissionPlan) -> Admission:
    job = plan.job
    _check_key_active(connection, job.key_id)
    if plan.idempotency is not None:
        _bind_idempotency_key(connection, plan.idempotency, plan.now)
    limits = traffic_limits(connection, plan)
    enforce_rate(connection, plan, limits)  # every create counts, hits included
    if plan.cache_key is not None and plan.lookup:
        found = _from_cache(connection, plan)
        if found is not None:
            return found
    enforce_in_flight(connection, plan, limits)  # only jobs that go upstream count
    changes: dict[str, Any] = {}
    if job.cost_micros > 0:
        check_and_reserve(connection, job.id, plan.scopes, job.cost_micros, plan.now)
        changes.update(money_state="reserved", reserved_at=plan.now)
    outcome: Any = "bypass"
    if plan.cache_key is not None and plan.register:
        outcome = "miss"
        ttl = plan.cache_ttl_seconds
        connection.execute(
            "INSERT INTO cache_entries (key, leader_id, status, created_at, expires_at)"
            " VALUES (?, ?, 'running', ?, ?) ON CONFLICT (key) DO UPDATE SET"
            " leader_id = excluded.leader_id, status = 'running',"
            " created_at = excluded.created_at, expires_at = excluded.expires_at",
            (plan.cache_key, job.id, plan.now, plan.now + ttl if ttl else None),
        )
    job = replace(job, cache_key=plan.cache_key, cache_result=outcome, **changes)
    connection.execute(INSERT_JOB, job_row(job))
    return Admission(job=job, outcome=outcome)


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


def _from_cache(connection: sqlite3.Connection, plan: AdmissionPlan) -> Admission | None:
    """A hit (a finished identical video whose asset is still stored) or a join onto the
    running identical job; None when neither exists."""
    entry = fetchone(
        connection,
        "SELECT leader_id, status, expires_at FROM cache_entries WHERE key = ?",
        (plan.cache_key,),
    )
    if entry is None:
        return None
    leader_id, status, expires_at = entry
    if expires_at is not None and expires_at <= plan.now:
        return None
    leader_row = fetchone(connection, _SELECT_JOB_BY_ID, (leader_id,))
    if leader_row is None:
        return None
    leader = job_from_row(leader_row)
    if status == "running" and leader.deleted_at is not None:
        return None  # its owner deleted it: start afresh rather than join a video nobody keeps
    if status == "running" and leader.status not in _UNJOINABLE:
        job = replace(
            plan.job,
            status=leader.status if leader.status != "submitting" else "queued",
            progress=leader.progress,
            leader_id=leader.id,
            cache_key=plan.cache_key,
            cache_result="coalesced",
            cost_micros=0,  # the leader's reservation pays for both
            next_check_at=None,
            upstream_id=leader.upstream_id,
        )
        connection.execute(INSERT_JOB, job_row(job))
        return Admission(job=job, outcome="coalesced")
    if status == "completed" and leader.status == "completed":
        return _hit(connection, plan, leader)
    return None


def _hit(connection: sqlite3.Connection, plan: AdmissionPlan, source: Job) -> Admission | None:
    assets: list[Asset | None] = []
    for key in (source.video_asset, source.last_frame_asset):
        if key is None:
            assets.append(None)
            continue
        row = fetchone(
            connection,
            "SELECT key, size, content_type FROM assets WHERE key = ? AND refs > 0",
            (key,),
        )
        if row is None:
            return None  # the stored video is gone (deleted or expired): generate afresh
        assets.append(Asset(row[0], row[1], row[2]))
    video, last_frame = assets
    if video is None:
        return None
    charge = plan.charge_hits and plan.job.cost_micros > 0
    if charge:
        check_and_reserve(connection, plan.job.id, plan.scopes, plan.job.cost_micros, plan.now)
        money: dict[str, Any] = {"money_state": "reserved", "reserved_at": plan.now}
    else:
        money = {"cost_micros": 0}
    job = replace(
        plan.job,
        status="completed",
        progress=100,
        completed_at=int(plan.now),
        next_check_at=None,
        video_asset=video.key,
        last_frame_asset=last_frame.key if last_frame else None,
        delivered_seconds=source.delivered_seconds,
        expires_at=(int(plan.now + plan.retention_seconds) if plan.retention_seconds else None),
        leader_id=source.id,
        cache_key=plan.cache_key,
        cache_result="hit",
        **money,
    )
    connection.execute(INSERT_JOB, job_row(job))
    for asset in assets:
        if asset is not None:
            add_reference(connection, asset, int(plan.now))
    if charge:
        settle(connection, job, charge=job.cost_micros, now=plan.now)
        job = replace(job, money_state="charged", charged_micros=job.cost_micros)
    emit_video_events(connection, VIDEO_COMPLETED, [job.id], plan.now)
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
        (
            *values,
            video.key if video else None,
            last_frame.key if last_frame else None,
            job_id,
            owner,
        ),
    )
    if row is None:
        return None  # the lease was lost: the transaction changes nothing
    job = job_from_row(row)
    for asset in (video, last_frame):
        if asset is not None and job.deleted_at is None:
            add_reference(connection, asset, int(now))
    settle(connection, job, charge=job.cost_micros if charge is None else charge, now=now)
    followers = _complete_followers(connection, job, video, last_frame, now)
    emit_video_events(connection, VIDEO_COMPLETED, [job.id, *followers], now)
    if job.cache_key is not None and job.video_asset is not None:
        # Servable while both the video is kept and the entry's own TTL lasts.
        connection.execute(
            "UPDATE cache_entries SET status = 'completed', expires_at = CASE"
            " WHEN ? IS NULL THEN expires_at WHEN expires_at IS NULL THEN ?"
            " ELSE MIN(expires_at, ?) END WHERE key = ? AND leader_id = ?",
            (job.expires_at, job.expires_at, job.expires_at, job.cache_key, job.id),
        )
    elif job.cache_key is not None and video is not None and followers:
        # The leader was deleted, but a video that joined it keeps the stored copy: that one
        # serves the next identical request.
        connection.execute(
            "UPDATE cache_entries SET status = 'completed', leader_id = ?"
            " WHERE key = ? AND leader_id = ?",
            (followers[0], job.cache_key, job.id),
        )
    elif job.cache_key is not None:
        _drop_entry(connection, job)
    return _reread(connection, job_id)


def _complete_followers(
    connection: sqlite3.Connection,
    leader: Job,
    video: Asset | None,
    last_frame: Asset | None,
    now: float,
) -> list[str]:
    """Complete the videos waiting for ``leader``; the ids of those not deleted (each takes a
    reference to the assets)."""
    followers = fetchall(
        connection,
        "UPDATE jobs SET status = 'completed', progress = 100, completed_at = ?,"
        " updated_at = ?, expires_at = ?, delivered_seconds = ?,"
        " video_asset = CASE WHEN deleted_at IS NULL THEN ? END,"
        " last_frame_asset = CASE WHEN deleted_at IS NULL THEN ? END"
        " WHERE leader_id = ? AND cache_result = 'coalesced' AND status NOT IN"
        " ('completed', 'failed', 'rejected') RETURNING id, deleted_at",
        (
            int(now),
            int(now),
            leader.expires_at,
            leader.delivered_seconds,
            video.key if video else None,
            last_frame.key if last_frame else None,
            leader.id,
        ),
    )
    live = sorted(follower_id for follower_id, deleted_at in followers if deleted_at is None)
    for _ in live:
        for asset in (video, last_frame):
            if asset is not None:
                add_reference(connection, asset, int(now))
    return live


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
    condition, parameters = (
        (" AND lease_owner = ?", (owner,)) if owner else (" AND status = 'submitting'", ())
    )
    row = fetchone(
        connection,
        "UPDATE jobs SET status = ?, error_code = ?, error_message = ?,"  # noqa: S608
        " completed_at = ?, updated_at = ?, lease_owner = NULL, locked_until = NULL,"
        f" next_check_at = NULL WHERE id = ?{condition} RETURNING {JOB_COLUMNS}",
        (
            "rejected" if rejected else "failed",
            code,
            message,
            int(now),
            int(now),
            job_id,
            *parameters,
        ),
    )
    if row is None:
        return None
    job = job_from_row(row)
    settle(connection, job, charge=charge or None, now=now)
    if rejected:
        # Nothing was created upstream and nothing charged: a retry with the same
        # Idempotency-Key may try again (the SDK retries 5xx answers on its own).
        connection.execute("DELETE FROM idempotency_keys WHERE job_id = ?", (job.id,))
    followers = fetchall(
        connection,
        "UPDATE jobs SET status = 'failed', error_code = ?, error_message = ?,"
        " completed_at = ?, updated_at = ? WHERE leader_id = ?"
        " AND cache_result = 'coalesced' AND status NOT IN ('completed', 'failed', 'rejected')"
        " RETURNING id",
        (code, message, int(now), int(now), job.id),
    )
    emit_video_events(connection, VIDEO_FAILED, [job.id, *sorted(row[0] for row in followers)], now)
    if job.cache_key is not None:
        _drop_entry(connection, job)
    return _reread(connection, job_id)


def _reread(connection: sqlite3.Connection, job_id: str) -> Job:
    row = fetchone(connection, _SELECT_JOB_BY_ID, (job_id,))
    assert row is not None  # changed in this very transaction
    return job_from_row(row)


def _drop_entry(connection: sqlite3.Connection, job: Job) -> None:
    """Forget the in-flight entry this job leads, so the next identical request tries afresh."""
    connection.execute(
        "DELETE FROM cache_entries WHERE key = ? AND leader_id = ?", (job.cache_key, job.id)
    )
