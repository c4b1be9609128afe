"""SQLite transactions that decide a job's fate and money together: admission (cache hit, join a
running identical job, or reserve and register a new one), completion and failure.

Each runs under ``BEGIN IMMEDIATE``, so across processes sharing the file a request is admitted,
completed or failed exactly once, with the counters, the ledger, the followers and the cache
entry moving in the same step.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import aiosqlite

from gateway.store.base import Admission, AdmissionPlan, Asset, Job
from gateway.store.sqlite_db import INSERT_JOB, JOB_COLUMNS, SELECT_JOB, job_from_row, job_row
from gateway.store.sqlite_money import MoneyQueries
from gateway.store.sqlite_runner import add_reference, job_assignments

_FINISHED = ("completed", "failed", "rejected")


class AdmissionQueries(MoneyQueries):
    async def admit_job(self, plan: AdmissionPlan) -> Admission:
        job = plan.job
        async with self._transaction() as connection:
            if plan.cache_key is not None and plan.lookup:
                found = await self._from_cache(connection, plan)
                if found is not None:
                    return found
            if job.cost_micros > 0:
                await self._check_and_reserve(
                    connection, job.id, plan.scopes, job.cost_micros, plan.now
                )
                job = replace(job, money_state="reserved", reserved_at=plan.now)
            outcome: Any = "bypass"
            if plan.cache_key is not None and plan.register:
                outcome = "miss"
                ttl = plan.cache_ttl_seconds
                await connection.execute(
                    "INSERT INTO cache_entries (key, leader_id, status, created_at, expires_at)"
                    " VALUES (?, ?, 'running', ?, ?) ON CONFLICT (key) DO UPDATE SET"
                    " leader_id = excluded.leader_id, status = 'running',"
                    " created_at = excluded.created_at, expires_at = excluded.expires_at",
                    (plan.cache_key, job.id, plan.now, plan.now + ttl if ttl else None),
                )
            job = replace(job, cache_key=plan.cache_key, cache_result=outcome)
            await connection.execute(INSERT_JOB, job_row(job))
        return Admission(job=job, outcome=outcome)

    async def _from_cache(
        self, connection: aiosqlite.Connection, plan: AdmissionPlan
    ) -> Admission | None:
        """A hit (a finished identical video whose asset is still stored) or a join onto the
        running identical job; None when neither exists."""
        rows = list(
            await connection.execute_fetchall(
                "SELECT leader_id, status, expires_at FROM cache_entries WHERE key = ?",
                (plan.cache_key,),
            )
        )
        if not rows:
            return None
        leader_id, status, expires_at = rows[0]
        if expires_at is not None and expires_at <= plan.now:
            return None
        leader_rows = list(
            await connection.execute_fetchall(SELECT_JOB + " WHERE id = ?", (leader_id,))
        )
        if not leader_rows:
            return None
        leader = job_from_row(leader_rows[0])
        if status == "running" and leader.status not in _FINISHED:
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
            await connection.execute(INSERT_JOB, job_row(job))
            return Admission(job=job, outcome="coalesced")
        if status == "completed" and leader.status == "completed":
            return await self._hit(connection, plan, leader)
        return None

    async def _hit(
        self, connection: aiosqlite.Connection, plan: AdmissionPlan, source: Job
    ) -> Admission | None:
        assets: list[Asset | None] = []
        for key in (source.video_asset, source.last_frame_asset):
            if key is None:
                assets.append(None)
                continue
            rows = list(
                await connection.execute_fetchall(
                    "SELECT key, size, content_type FROM assets WHERE key = ? AND refs > 0", (key,)
                )
            )
            if not rows:
                return None  # the stored video is gone (deleted or expired): generate afresh
            assets.append(Asset(rows[0][0], rows[0][1], rows[0][2]))
        video, last_frame = assets
        if video is None:
            return None
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
        )
        charge = plan.charge_hits and plan.job.cost_micros > 0
        if charge:
            await self._check_and_reserve(
                connection, job.id, plan.scopes, job.cost_micros, plan.now
            )
            job = replace(job, money_state="reserved", reserved_at=plan.now)
        else:
            job = replace(job, cost_micros=0)
        await connection.execute(INSERT_JOB, job_row(job))
        for asset in assets:
            if asset is not None:
                await add_reference(connection, asset, int(plan.now))
        if charge:
            await self._settle(connection, job, charge=job.cost_micros, now=plan.now)
            job = replace(job, money_state="charged", charged_micros=job.cost_micros)
        return Admission(job=job, outcome="hit")

    async def complete_job(
        self,
        job_id: str,
        *,
        owner: str,
        changes: Mapping[str, Any],
        video: Asset | None,
        last_frame: Asset | None,
        charge: int | None = None,
    ) -> Job | None:
        assignments, values = job_assignments(changes)
        now = float(changes.get("updated_at", 0))
        async with self._transaction() as connection:
            rows = list(
                await connection.execute_fetchall(
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
            )
            if not rows:
                return None  # the lease was lost: the transaction changes nothing
            job = job_from_row(rows[0])
            for asset in (video, last_frame):
                if asset is not None and job.deleted_at is None:
                    await add_reference(connection, asset, int(now))
            await self._settle(
                connection, job, charge=job.cost_micros if charge is None else charge, now=now
            )
            await self._complete_followers(connection, job, video, last_frame, now)
            if job.cache_key is not None and job.video_asset is not None:
                # Servable while both the video is kept and the entry's own TTL lasts.
                await connection.execute(
                    "UPDATE cache_entries SET status = 'completed', expires_at = CASE"
                    " WHEN ? IS NULL THEN expires_at WHEN expires_at IS NULL THEN ?"
                    " ELSE MIN(expires_at, ?) END WHERE key = ? AND leader_id = ?",
                    (job.expires_at, job.expires_at, job.expires_at, job.cache_key, job.id),
                )
            elif job.cache_key is not None:
                await _drop_entry(connection, job)
            rows = list(await connection.execute_fetchall(SELECT_JOB + " WHERE id = ?", (job_id,)))
        return job_from_row(rows[0])

    async def _complete_followers(
        self,
        connection: aiosqlite.Connection,
        leader: Job,
        video: Asset | None,
        last_frame: Asset | None,
        now: float,
    ) -> None:
        followers = list(
            await connection.execute_fetchall(
                "UPDATE jobs SET status = 'completed', progress = 100, completed_at = ?,"
                " updated_at = ?, expires_at = ?, delivered_seconds = ?,"
                " video_asset = CASE WHEN deleted_at IS NULL THEN ? END,"
                " last_frame_asset = CASE WHEN deleted_at IS NULL THEN ? END"
                " WHERE leader_id = ? AND cache_result = 'coalesced' AND status NOT IN"
                " ('completed', 'failed', 'rejected') RETURNING deleted_at",
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
        )
        for (deleted_at,) in followers:
            if deleted_at is None:
                for asset in (video, last_frame):
                    if asset is not None:
                        await add_reference(connection, asset, int(now))

    async def fail_job(
        self,
        job_id: str,
        *,
        owner: str | None,
        code: str,
        message: str,
        now: float,
        rejected: bool = False,
    ) -> Job | None:
        condition, parameters = (
            (" AND lease_owner = ?", (owner,)) if owner else (" AND status = 'submitting'", ())
        )
        async with self._transaction() as connection:
            rows = list(
                await connection.execute_fetchall(
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
            )
            if not rows:
                return None
            job = job_from_row(rows[0])
            await self._settle(connection, job, charge=None, now=now)
            await connection.execute(
                "UPDATE jobs SET status = 'failed', error_code = ?, error_message = ?,"
                " completed_at = ?, updated_at = ? WHERE leader_id = ?"
                " AND cache_result = 'coalesced' AND status NOT IN ('completed', 'failed', 'rejected')",
                (code, message, int(now), int(now), job.id),
            )
            if job.cache_key is not None:
                await _drop_entry(connection, job)
            rows = list(await connection.execute_fetchall(SELECT_JOB + " WHERE id = ?", (job_id,)))
        return job_from_row(rows[0])


async def _drop_entry(connection: aiosqlite.Connection, job: Job) -> None:
    """Forget the in-flight entry this job leads, so the next identical request tries afresh."""
    await connection.execute(
        "DELETE FROM cache_entries WHERE key = ? AND leader_id = ?", (job.cache_key, job.id)
    )
