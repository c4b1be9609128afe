"""PostgreSQL transactions that decide a job's fate and money together: admission (cache hit, join
a running identical job, or reserve and register a new one), completion and failure.

Admissions of one cache key are serialised across every connection and replica by a
transaction-scoped advisory lock on the key, so exactly one of many concurrent identical
requests registers as the leader and the others see it. A join holds a share lock on the
leader's row until it commits: the leader's completion or failure (which updates that row
first) then waits for it, and so finds every follower. Locks are always taken in the order job
rows, asset rows, budget counters, cache entries, so these transactions never deadlock. An
admission first takes a share lock on the calling key's row (a revocation waits for admissions
in flight; none is admitted after it commits) and then inserts its Idempotency-Key, whose primary
key makes a concurrent admission with the same key wait and then find it bound.
Its rate-limit rows come next, its in-flight lock after the cache-key lock (see
``postgres_traffic``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

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
from gateway.store.postgres_db import (
    INSERT_JOB,
    JOB_COLUMNS,
    SELECT_JOB,
    job_assignments,
    job_from_row,
    job_row,
)
from gateway.store.postgres_money import MoneyQueries
from gateway.store.postgres_runner import add_references
from gateway.store.postgres_traffic import enforce_in_flight, enforce_rate, traffic_limits
from gateway.store.postgres_webhooks import emit_video_events

if TYPE_CHECKING:
    from gateway.store.postgres_db import Connection

_FINISHED = ("completed", "failed", "rejected")
# A job whose submit outcome is unknown may never deliver: new identical requests start afresh.
_UNJOINABLE = (*_FINISHED, "submit_unknown")
# First key of pg_advisory_xact_lock(int, int) for cache keys ("gw" + 1); the second is the
# key's hash. Unrelated keys that share a hash only wait for each other.
CACHE_KEY_LOCK = 0x67770001


class AdmissionQueries(MoneyQueries):
    async def admit_job(self, plan: AdmissionPlan) -> Admission:
        job = plan.job
        async with self._transaction() as connection:
            # First, before any other lock: the key's row (shared, so admissions of one key run
            # side by side while a revocation waits for them), then the Idempotency-Key.
            revoked = await connection.fetchrow(
                "SELECT revoked_at FROM api_keys WHERE id = $1 FOR SHARE", job.key_id
            )
            if revoked is None or revoked[0] is not None:
                raise KeyRevoked(job.key_id)
            if plan.idempotency is not None:
                await _bind_idempotency_key(connection, plan.idempotency, plan.now)
            limits = await traffic_limits(connection, plan)
            await enforce_rate(connection, plan, limits)  # every create counts, hits included
            if plan.cache_key is not None and (plan.lookup or plan.register):
                await connection.execute(
                    "SELECT pg_advisory_xact_lock($1, hashtext($2))", CACHE_KEY_LOCK, plan.cache_key
                )
            if plan.cache_key is not None and plan.lookup:
                found = await self._from_cache(connection, plan)
                if found is not None:
                    return found
            await enforce_in_flight(connection, plan, limits)  # only jobs going upstream count
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
                    " VALUES ($1, $2, 'running', $3, $4) ON CONFLICT (key) DO UPDATE SET"
                    " leader_id = excluded.leader_id, status = 'running',"
                    " created_at = excluded.created_at, expires_at = excluded.expires_at",
                    plan.cache_key,
                    job.id,
                    plan.now,
                    plan.now + ttl if ttl else None,
                )
            job = replace(job, cache_key=plan.cache_key, cache_result=outcome)
            await connection.execute(INSERT_JOB, *job_row(job))
        return Admission(job=job, outcome=outcome)

    async def _from_cache(self, connection: Connection, plan: AdmissionPlan) -> Admission | None:
        """A hit (a finished identical video whose asset is still stored) or a join onto the
        running identical job; None when neither exists. The caller holds the key's lock."""
        entry = await self._entry(connection, plan)
        if entry is None:
            return None
        leader_id = entry[0]
        # Locked before deciding: a leader finishing right now has committed once this returns,
        # and the entry is read again to see what its completion or failure did to it.
        leader_row = await connection.fetchrow(SELECT_JOB + " WHERE id = $1 FOR SHARE", leader_id)
        entry = await self._entry(connection, plan)
        if leader_row is None or entry is None or entry[0] != leader_id:
            return None
        status = entry[1]
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
            await connection.execute(INSERT_JOB, *job_row(job))
            return Admission(job=job, outcome="coalesced")
        if status == "completed" and leader.status == "completed":
            return await self._hit(connection, plan, leader)
        return None

    async def _entry(self, connection: Connection, plan: AdmissionPlan) -> tuple[str, str] | None:
        """The key's live entry as (leader id, status); None when absent or expired."""
        row = await connection.fetchrow(
            "SELECT leader_id, status, expires_at FROM cache_entries WHERE key = $1",
            plan.cache_key,
        )
        if row is None or (row[2] is not None and row[2] <= plan.now):
            return None
        return row[0], row[1]

    async def _hit(
        self, connection: Connection, plan: AdmissionPlan, source: Job
    ) -> Admission | None:
        keys = [key for key in (source.video_asset, source.last_frame_asset) if key is not None]
        # Locked so that a concurrent release cannot drop the last reference meanwhile.
        stored = {
            row[0]: Asset(row[0], row[1], row[2])
            for row in await connection.fetch(
                "SELECT key, size, content_type FROM assets WHERE key = ANY($1::text[])"
                " AND refs > 0 ORDER BY key FOR UPDATE",
                sorted(set(keys)),
            )
        }
        if any(key not in stored for key in keys):
            return None  # the stored video is gone (deleted or expired): generate afresh
        if source.video_asset is None:
            return None
        video = stored[source.video_asset]
        last_frame = stored.get(source.last_frame_asset) if source.last_frame_asset else None
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
        await connection.execute(INSERT_JOB, *job_row(job))
        await add_references(
            connection, [video, *([last_frame] if last_frame else [])], int(plan.now)
        )
        if charge:
            await self._settle(connection, job, charge=job.cost_micros, now=plan.now)
            job = replace(job, money_state="charged", charged_micros=job.cost_micros)
        await emit_video_events(connection, VIDEO_COMPLETED, [job.id], plan.now)
        return Admission(job=job, outcome="hit")

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
        assignments, values = job_assignments(changes, first=5)
        now = float(changes.get("updated_at", 0))
        async with self._transaction() as connection:
            row = await connection.fetchrow(
                # A job deleted while it ran records no assets: nobody could fetch them.
                "UPDATE jobs SET"  # noqa: S608
                f" {assignments + ',' if assignments else ''}"
                " video_asset = CASE WHEN deleted_at IS NULL THEN $1::text END,"
                " last_frame_asset = CASE WHEN deleted_at IS NULL THEN $2::text END"
                f" WHERE id = $3 AND lease_owner = $4 RETURNING {JOB_COLUMNS}",
                video.key if video else None,
                last_frame.key if last_frame else None,
                job_id,
                owner,
                *values,
            )
            if row is None:
                return None  # the lease was lost: the transaction changes nothing
            job = job_from_row(row)
            files = [asset for asset in (video, last_frame) if asset is not None]
            followers = await self._complete_followers(connection, job, video, last_frame, now)
            await emit_video_events(connection, VIDEO_COMPLETED, [job.id, *followers], now)
            live = len(followers)
            references = files * (live + (1 if job.deleted_at is None else 0))
            await add_references(connection, references, int(now))
            await self._settle(
                connection, job, charge=job.cost_micros if charge is None else charge, now=now
            )
            if job.cache_key is not None and job.video_asset is not None:
                # Servable while both the video is kept and the entry's own TTL lasts.
                await connection.execute(
                    "UPDATE cache_entries SET status = 'completed', expires_at = CASE"
                    " WHEN $1::float8 IS NULL THEN expires_at WHEN expires_at IS NULL THEN $1"
                    " ELSE LEAST(expires_at, $1) END WHERE key = $2 AND leader_id = $3",
                    job.expires_at,
                    job.cache_key,
                    job.id,
                )
            elif job.cache_key is not None and video is not None and followers:
                # The leader was deleted, but a video that joined it keeps the stored copy:
                # that one serves the next identical request.
                await connection.execute(
                    "UPDATE cache_entries SET status = 'completed', leader_id = $1"
                    " WHERE key = $2 AND leader_id = $3",
                    followers[0],
                    job.cache_key,
                    job.id,
                )
            elif job.cache_key is not None:
                await _drop_entry(connection, job)
            final = await connection.fetchrow(SELECT_JOB + " WHERE id = $1", job_id)
        assert final is not None  # updated above, in this transaction
        return job_from_row(final)

    async def _complete_followers(
        self,
        connection: Connection,
        leader: Job,
        video: Asset | None,
        last_frame: Asset | None,
        now: float,
    ) -> list[str]:
        """Complete the videos waiting for ``leader``; the ids of those not deleted (each takes
        a reference to the assets)."""
        followers = await connection.fetch(
            "UPDATE jobs SET status = 'completed', progress = 100, completed_at = $1,"
            " updated_at = $1, expires_at = $2, delivered_seconds = $3,"
            " video_asset = CASE WHEN deleted_at IS NULL THEN $4::text END,"
            " last_frame_asset = CASE WHEN deleted_at IS NULL THEN $5::text END"
            " WHERE leader_id = $6 AND cache_result = 'coalesced' AND status NOT IN"
            " ('completed', 'failed', 'rejected') RETURNING id, deleted_at",
            int(now),
            leader.expires_at,
            leader.delivered_seconds,
            video.key if video else None,
            last_frame.key if last_frame else None,
            leader.id,
        )
        return sorted(row[0] for row in followers if row[1] is None)

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
        condition, parameters = (
            (" AND lease_owner = $7", (owner,)) if owner else (" AND status = 'submitting'", ())
        )
        async with self._transaction() as connection:
            row = await connection.fetchrow(
                "UPDATE jobs SET status = $1, error_code = $2, error_message = $3,"  # noqa: S608
                " completed_at = $4, updated_at = $5, lease_owner = NULL, locked_until = NULL,"
                f" next_check_at = NULL WHERE id = $6{condition} RETURNING {JOB_COLUMNS}",
                "rejected" if rejected else "failed",
                code,
                message,
                int(now),
                int(now),
                job_id,
                *parameters,
            )
            if row is None:
                return None
            job = job_from_row(row)
            followers = await connection.fetch(
                "UPDATE jobs SET status = 'failed', error_code = $1, error_message = $2,"
                " completed_at = $3, updated_at = $3 WHERE leader_id = $4"
                " AND cache_result = 'coalesced' AND status NOT IN ('completed', 'failed', 'rejected')"
                " RETURNING id",
                code,
                message,
                int(now),
                job.id,
            )
            await emit_video_events(
                connection, VIDEO_FAILED, [job.id, *sorted(row[0] for row in followers)], now
            )
            await self._settle(connection, job, charge=charge or None, now=now)
            if rejected:
                # Nothing was created upstream and nothing charged: a retry with the same
                # Idempotency-Key may try again (the SDK retries 5xx answers on its own).
                await connection.execute("DELETE FROM idempotency_keys WHERE job_id = $1", job.id)
            if job.cache_key is not None:
                await _drop_entry(connection, job)
            final = await connection.fetchrow(SELECT_JOB + " WHERE id = $1", job_id)
        assert final is not None  # updated above, in this transaction
        return job_from_row(final)


async def _drop_entry(connection: Connection, job: Job) -> None:
    """Forget the in-flight entry this job leads, so the next identical request tries afresh."""
    await connection.execute(
        "DELETE FROM cache_entries WHERE key = $1 AND leader_id = $2", job.cache_key, job.id
    )


async def _bind_idempotency_key(
    connection: Connection, record: IdempotencyRecord, now: float
) -> None:
    """Bind the key to the new video, or raise ``IdempotencyKeyTaken`` (nothing is created).
    A concurrent insert of the same key waits on the primary key until the other transaction
    ends, then sees its row (or, if it rolled back, inserts)."""
    await connection.execute(
        "DELETE FROM idempotency_keys WHERE key_id = $1 AND idempotency_key = $2"
        " AND expires_at <= $3",
        record.key_id,
        record.key,
        now,
    )
    inserted = await connection.fetchval(
        "INSERT INTO idempotency_keys (key_id, idempotency_key, fingerprint, job_id, created_at,"
        " expires_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING 1",
        record.key_id,
        record.key,
        record.fingerprint,
        record.job_id,
        record.created_at,
        record.expires_at,
    )
    if inserted is not None:
        return
    row = await connection.fetchrow(
        "SELECT key_id, idempotency_key, fingerprint, job_id, created_at, expires_at"
        " FROM idempotency_keys WHERE key_id = $1 AND idempotency_key = $2",
        record.key_id,
        record.key,
    )
    if row is None:  # pragma: no cover - expired and deleted in between: vanishingly rare
        raise IdempotencyKeyTaken(record)
    raise IdempotencyKeyTaken(IdempotencyRecord(*row))
