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

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

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
from gateway.store.postgres_db import (
    INSERT_JOB,
    JOB_COLUMNS,
    SELECT_JOB,
    job_assignments,
    job_from_row,
    job_row,
)
from gateway.store.postgres_money import MoneyQueries, apply_settlement, move
from gateway.store.postgres_runner import add_references
from gateway.store.postgres_traffic import enforce_in_flight, enforce_rate, traffic_limits
from gateway.store.postgres_webhooks import emit_video_events

if TYPE_CHECKING:
    from gateway.store.postgres_db import Connection

# The unfinished videos that joined a leader ($1: its id); they end with it.
_FOLLOWERS = f"leader_id = $1 AND cache_result = 'coalesced' AND status NOT IN {TERMINAL_SQL}"
# First key of pg_advisory_xact_lock(int, int) for cache keys ("gw" + 1); the second is the
# key's hash. Unrelated keys that share a hash only wait for each other.
CACHE_KEY_LOCK = 0x67770001


class AdmissionQueries(MoneyQueries):
    async def admit_job(self, plan: AdmissionPlan) -> Admission:
        async with self._transaction() as connection:
            # First, before any other lock: the key's row (shared, so admissions of one key run
            # side by side while a revocation waits for them), then the Idempotency-Key.
            revoked = await connection.fetchrow(
                "SELECT revoked_at FROM api_keys WHERE id = $1 FOR SHARE", plan.job.key_id
            )
            if revoked is None or revoked[0] is not None:
                raise KeyRevoked(plan.job.key_id)
            if plan.idempotency is not None:
                await _bind_idempotency_key(connection, plan.idempotency, plan.now)
            limits = await traffic_limits(connection, plan)
            await enforce_rate(connection, plan, limits)  # every create counts, hits included
            if plan.cache_key is not None and (plan.lookup or plan.register):
                await connection.execute(
                    "SELECT pg_advisory_xact_lock($1, hashtext($2))", CACHE_KEY_LOCK, plan.cache_key
                )
            if plan.cache_key is not None and plan.lookup:
                found = await self._from_cache(connection, plan, plan.cache_key)
                if found is not None:
                    return found
            await enforce_in_flight(connection, plan, limits)  # only jobs going upstream count
            return await self._admit_new(connection, plan)

    async def _admit_new(self, connection: Connection, plan: AdmissionPlan) -> Admission:
        """Reserve the new job's price, register it as in flight when asked, insert it."""
        job = plan.job
        if job.cost_micros > 0:
            await self._check_and_reserve(
                connection, job.id, plan.scopes, job.cost_micros, plan.now
            )
        job = new_record(job, cache_key=plan.cache_key, register=plan.register, now=plan.now)
        if job.cache_result == "miss" and plan.cache_key is not None:
            entry = in_flight_entry(plan.cache_key, job.id, plan.now, plan.cache_ttl_seconds)
            await connection.execute(
                "INSERT INTO cache_entries (key, leader_id, status, created_at, expires_at)"
                " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (key) DO UPDATE SET"
                " leader_id = excluded.leader_id, status = excluded.status,"
                " created_at = excluded.created_at, expires_at = excluded.expires_at",
                entry.key,
                entry.leader_id,
                entry.status,
                entry.created_at,
                entry.expires_at,
            )
        await connection.execute(INSERT_JOB, *job_row(job))
        return Admission(job=job, outcome=job.cache_result or "bypass")

    async def _from_cache(
        self, connection: Connection, plan: AdmissionPlan, cache_key: str
    ) -> Admission | None:
        """A hit (a finished identical video whose asset is still stored) or a join onto the
        running identical job; None when neither exists. The caller holds the key's lock."""
        entry = await _entry(connection, cache_key)
        if entry is None:
            return None
        # Locked before deciding: a leader finishing right now has committed once this returns,
        # and the entry is read again to see what its completion or failure did to it.
        row = await connection.fetchrow(SELECT_JOB + " WHERE id = $1 FOR SHARE", entry.leader_id)
        again = await _entry(connection, cache_key)
        if again is None or again.leader_id != entry.leader_id:
            return None
        leader = job_from_row(row) if row is not None else None
        verdict = lookup(again, leader, plan.now)
        if verdict == "join" and leader is not None:
            job = join_record(plan.job, leader, cache_key)
            await connection.execute(INSERT_JOB, *job_row(job))
            return Admission(job=job, outcome="coalesced")
        if verdict == "hit" and leader is not None:
            return await self._hit(connection, plan, leader, cache_key)
        return None

    async def _hit(
        self, connection: Connection, plan: AdmissionPlan, source: Job, cache_key: str
    ) -> Admission | None:
        keys = hit_asset_keys(source)
        # Locked so that a concurrent release cannot drop the last reference meanwhile.
        stored = [
            Asset(row[0], row[1], row[2])
            for row in await connection.fetch(
                "SELECT key, size, content_type FROM assets WHERE key = ANY($1::text[])"
                " AND refs > 0 ORDER BY key FOR UPDATE",
                sorted(set(keys)),
            )
        ]
        if len(stored) != len(set(keys)):
            return None  # the stored video is gone (deleted or expired): generate afresh
        charged = charges_hit(plan.charge_hits, plan.job.cost_micros)
        if charged:
            await self._check_budget(connection, plan.scopes, plan.job.cost_micros, plan.now)
        job = hit_record(
            plan.job,
            source,
            cache_key=cache_key,
            now=plan.now,
            retention_seconds=plan.retention_seconds,
            charged=charged,
        )
        writes = hit(job, source, plan.scopes, plan.now)
        await connection.execute(INSERT_JOB, *job_row(job))
        by_key = {asset.key: asset for asset in stored}
        await add_references(connection, [by_key[key] for key in keys], int(plan.now))
        for movement in writes.movements():
            await move(connection, movement)
        await emit_video_events(connection, writes.event, [job.id], plan.now)
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
        keys = (_key(video), _key(last_frame))
        async with self._transaction() as connection:
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
            if row is None:
                return None  # the lease was lost: the transaction changes nothing
            job = job_from_row(row)
            end = follower_completion(job, now)
            followers = await _complete_followers(connection, job.id, end, keys)
            ending = completion(job, followers, stored=video is not None, charge=charge, now=now)
            files = [asset for asset in (video, last_frame) if asset is not None]
            await apply_ending(connection, job, ending, now, files * ending.references)
            return await reread(connection, job_id)

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
        end = failure_end(code, message, now, rejected=rejected)
        condition, parameters = (
            (" AND lease_owner = $8", (owner,)) if owner else (" AND status = 'submitting'", ())
        )
        async with self._transaction() as connection:
            job = await end_leader(connection, job_id, end, condition, parameters)
            if job is None:
                return None
            followers = await fail_followers(connection, job.id, follower_failure(end))
            ending = failure(job, followers, charge=charge, rejected=rejected, now=now)
            await apply_ending(connection, job, ending, now)
            return await reread(connection, job_id)


def _key(asset: Asset | None) -> str | None:
    return asset.key if asset is not None else None


async def _entry(connection: Connection, cache_key: str) -> CacheEntry | None:
    row = await connection.fetchrow(
        "SELECT key, leader_id, status, created_at, expires_at FROM cache_entries WHERE key = $1",
        cache_key,
    )
    return CacheEntry(*row) if row is not None else None


async def end_leader(
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
    return job_from_row(row) if row is not None else None


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


async def fail_followers(connection: Connection, leader_id: str, end: FollowerEnd) -> list[str]:
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
        await connection.execute("DELETE FROM idempotency_keys WHERE job_id = $1", job.id)
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


async def reread(connection: Connection, job_id: str) -> Job:
    row = await connection.fetchrow(SELECT_JOB + " WHERE id = $1", job_id)
    assert row is not None  # changed in this very transaction
    return job_from_row(row)


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
