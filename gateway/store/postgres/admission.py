"""PostgreSQL side of a create: the admission transaction (cache hit, join a running identical
job, or reserve and register a new one), as ``gateway.domain.admission`` decides.

Admissions of one cache key are serialised across every connection and replica by a
transaction-scoped advisory lock on the key, so exactly one of many concurrent identical requests
registers as the leader and the others see it. A join holds a share lock on the leader's row
until it commits: the leader's completion or failure (which updates that row first) then waits
for it, and so finds every follower. An admission first takes a share lock on the calling key's
row (a revocation waits for admissions in flight; none is admitted after it commits), then binds
its Idempotency-Key (whose primary key makes a concurrent admission with the same key wait and
then find it bound), then its rate-limit rows, the cache-key lock, its in-flight lock (see
``traffic``), and then job rows, asset rows, budget counters, cache entries, in that order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

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
from gateway.store.postgres.assets import add_references
from gateway.store.postgres.idempotency import bind_idempotency_key
from gateway.store.postgres.money import check_and_reserve, check_budget, move
from gateway.store.postgres.rows import INSERT_JOB, SELECT_JOB, job_or_none, job_row
from gateway.store.postgres.traffic import enforce_in_flight, enforce_rate, traffic_limits
from gateway.store.postgres.webhooks import emit_video_events
from gateway.store.records import Admission, AdmissionPlan, Asset, Job, KeyRevoked

if TYPE_CHECKING:
    from gateway.store.postgres.database import Connection

# First key of pg_advisory_xact_lock(int, int) for cache keys ("gw" + 1); the second is the
# key's hash. Unrelated keys that share a hash only wait for each other.
CACHE_KEY_LOCK = 0x67770001


async def admit_job(connection: Connection, plan: AdmissionPlan) -> Admission:
    await _check_key_active(connection, plan.job.key_id)
    if plan.idempotency is not None:
        await bind_idempotency_key(connection, plan.idempotency, plan.now)
    limits = await traffic_limits(connection, plan)
    await enforce_rate(connection, plan, limits)  # every create counts, hits included
    if plan.cache_key is not None and (plan.lookup or plan.register):
        await connection.execute(
            "SELECT pg_advisory_xact_lock($1, hashtext($2))", CACHE_KEY_LOCK, plan.cache_key
        )
    if plan.cache_key is not None and plan.lookup:
        found = await _from_cache(connection, plan, plan.cache_key)
        if found is not None:
            return found
    await enforce_in_flight(connection, plan, limits)  # only jobs going upstream count
    return await _admit_new(connection, plan)


async def _check_key_active(connection: Connection, key_id: str) -> None:
    """First, before any other lock: the key's row, shared, so admissions of one key run side
    by side while a revocation waits for them."""
    revoked = await connection.fetchrow(
        "SELECT revoked_at FROM api_keys WHERE id = $1 FOR SHARE", key_id
    )
    if revoked is None or revoked[0] is not None:
        raise KeyRevoked(key_id)


async def _admit_new(connection: Connection, plan: AdmissionPlan) -> Admission:
    """Reserve the new job's price, register it as in flight when asked, insert it."""
    job = plan.job
    if job.cost_micros > 0:
        await check_and_reserve(connection, job.id, plan.scopes, job.cost_micros, plan.now)
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
    connection: Connection, plan: AdmissionPlan, cache_key: str
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
    leader = job_or_none(row)
    verdict = lookup(again, leader, plan.now)
    if verdict == "join" and leader is not None:
        job = join_record(plan.job, leader, cache_key)
        await connection.execute(INSERT_JOB, *job_row(job))
        return Admission(job=job, outcome="coalesced")
    if verdict == "hit" and leader is not None:
        return await _hit(connection, plan, leader, cache_key)
    return None


async def _entry(connection: Connection, cache_key: str) -> CacheEntry | None:
    row = await connection.fetchrow(
        "SELECT key, leader_id, status, created_at, expires_at FROM cache_entries WHERE key = $1",
        cache_key,
    )
    return CacheEntry(*row) if row is not None else None


async def _hit(
    connection: Connection, plan: AdmissionPlan, source: Job, cache_key: str
) -> Admission | None:
    keys = hit_asset_keys(source)
    # Locked so that a concurrent release cannot drop the last reference meanwhile.
    rows = await connection.fetch(
        "SELECT key, size, content_type FROM assets WHERE key = ANY($1::text[])"
        " AND refs > 0 ORDER BY key FOR UPDATE",
        sorted(set(keys)),
    )
    stored = {row[0]: Asset(row[0], row[1], row[2]) for row in rows}
    if len(stored) != len(set(keys)):
        return None  # the stored video is gone (deleted or expired): generate afresh
    charged = charges_hit(plan.charge_hits, plan.job.cost_micros)
    if charged:
        await check_budget(connection, plan.scopes, plan.job.cost_micros, plan.now)
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
    await add_references(connection, [stored[key] for key in keys], int(plan.now))
    for movement in writes.movements():
        await move(connection, movement)
    await emit_video_events(connection, writes.event, [job.id], plan.now)
    return Admission(job=job, outcome="hit")
