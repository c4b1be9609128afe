"""SQLite: admission, one ``BEGIN IMMEDIATE`` transaction per create: a cache hit, a join onto
the running identical job, or reserve and register a new one, with the Idempotency-Key bound and
the traffic limits checked in the same step, so across processes sharing the file a request is
admitted exactly once. The decisions are ``gateway.domain.admission``'s; this module reads the
rows it needs and writes what it returns.
"""

from __future__ import annotations

import sqlite3

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
from gateway.store.base import Admission, AdmissionPlan, Asset, Job, KeyRevoked
from gateway.store.sqlite.assets import add_reference
from gateway.store.sqlite.idempotency import bind_idempotency_key
from gateway.store.sqlite.money import check_and_reserve, check_budget, move
from gateway.store.sqlite.rows import (
    INSERT_JOB,
    SELECT_JOB_BY_ID,
    fetchone,
    job_from_row,
    job_row,
)
from gateway.store.sqlite.traffic import enforce_in_flight, enforce_rate, traffic_limits
from gateway.store.sqlite.webhooks import emit_video_events


def admit_job(connection: sqlite3.Connection, plan: AdmissionPlan) -> Admission:
    job = plan.job
    _check_key_active(connection, job.key_id)
    if plan.idempotency is not None:
        bind_idempotency_key(connection, plan.idempotency, plan.now)
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
    leader_row = fetchone(connection, SELECT_JOB_BY_ID, (entry.leader_id,)) if entry else None
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
