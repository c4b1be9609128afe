"""PostgreSQL side of concurrency and rate limits: the owners' own limits, and the two checks
``admit_job`` runs inside its transaction, so they hold across every connection and replica.

The rate state of an owner is a row locked ``FOR UPDATE`` (taken first in an admission, team
before key); the in-flight count is serialised per owner by a transaction-scoped advisory
lock taken after the cache-key lock and before any budget counter, so admissions never
deadlock. Decisions are ``gateway.domain.traffic``'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from gateway.domain.jobs import TERMINAL_SQL, sql_list
from gateway.domain.traffic import (
    TRAFFIC_SCOPES,
    UPSTREAM_RESULTS,
    TrafficLimits,
    TrafficScope,
    concurrency_refusal,
    in_flight_allowed,
    in_flight_checks,
    owners,
    rate_checks,
    rate_decision,
    rate_refusal,
)
from gateway.store.postgres.rows import changed_one
from gateway.store.records import AdmissionPlan, TrafficLimit

if TYPE_CHECKING:
    from gateway.store.postgres.database import Connection, Executor

# First key of pg_advisory_xact_lock(int, int) for in-flight counts ("gw" + 2); the second is
# the hash of the team's or key's id (ids carry their kind, so teams and keys never collide).
IN_FLIGHT_LOCK = 0x67770002
_SELECT_LIMITS = (
    "SELECT scope, scope_id, max_in_flight_jobs, requests_per_minute FROM traffic_limits"
)
# Jobs that went upstream (not hits, not joins) and have not finished; {column} is a constant.
_COUNT_IN_FLIGHT = (
    "SELECT count(*) FROM jobs WHERE {column} = $1"  # noqa: S608 - constant lists
    f" AND status NOT IN {TERMINAL_SQL}"
    f" AND (cache_result IS NULL OR cache_result IN {sql_list(UPSTREAM_RESULTS)})"
)
_OWNER_COLUMN: Mapping[str, str] = {"team": "team_id", "key": "key_id"}


async def set_traffic_limit(db: Executor, limit: TrafficLimit, now: int) -> TrafficLimit:
    row = await db.fetchrow(
        "INSERT INTO traffic_limits AS t (scope, scope_id, max_in_flight_jobs,"
        " requests_per_minute, updated_at) VALUES ($1, $2, $3, $4, $5)"
        " ON CONFLICT (scope, scope_id) DO UPDATE SET"
        " max_in_flight_jobs = COALESCE(excluded.max_in_flight_jobs, t.max_in_flight_jobs),"
        " requests_per_minute = COALESCE(excluded.requests_per_minute,"
        " t.requests_per_minute), updated_at = excluded.updated_at"
        " RETURNING scope, scope_id, max_in_flight_jobs, requests_per_minute",
        limit.scope,
        limit.scope_id,
        limit.max_in_flight_jobs,
        limit.requests_per_minute,
        now,
    )
    assert row is not None  # an upsert always returns its row
    return TrafficLimit(*row)


async def clear_traffic_limit(db: Executor, scope: TrafficScope, scope_id: str) -> bool:
    tag = await db.execute(
        "DELETE FROM traffic_limits WHERE scope = $1 AND scope_id = $2", scope, scope_id
    )
    return changed_one(tag)


async def list_traffic_limits(
    db: Executor, scope: TrafficScope | None, scope_id: str | None
) -> list[TrafficLimit]:
    sql, parameters = _SELECT_LIMITS, [scope, scope_id]
    sql += " WHERE ($1::text IS NULL OR scope = $1) AND ($2::text IS NULL OR scope_id = $2)"
    rows = await db.fetch(sql + " ORDER BY scope DESC, scope_id", *parameters)
    return [TrafficLimit(*row) for row in rows]


async def in_flight_jobs(db: Executor, scope: TrafficScope, scope_id: str) -> int:
    row = await db.fetchrow(_COUNT_IN_FLIGHT.format(column=_OWNER_COLUMN[scope]), scope_id)
    return int(row[0]) if row else 0


async def traffic_limits(
    connection: Connection, plan: AdmissionPlan
) -> dict[TrafficScope, TrafficLimits]:
    """The limits in force for the plan's team and key (empty when the plan checks none)."""
    if plan.traffic is None:
        return {}
    rows = await connection.fetch(
        _SELECT_LIMITS
        + " WHERE (scope = 'team' AND scope_id = $1) OR (scope = 'key' AND scope_id = $2)",
        plan.job.team_id,
        plan.job.key_id,
    )
    stored: dict[TrafficScope, TrafficLimits] = {
        row[0]: TrafficLimits(row[2], row[3]) for row in rows
    }
    return {scope: plan.traffic.effective(scope, stored) for scope in TRAFFIC_SCOPES}


async def enforce_rate(
    connection: Connection, plan: AdmissionPlan, limits: Mapping[TrafficScope, TrafficLimits]
) -> None:
    """Take one request from each owner's requests_per_minute, or refuse (rolled back)."""
    owner = owners(plan.job.team_id, plan.job.key_id)
    for scope, per_minute in rate_checks(limits):
        await connection.execute(
            "INSERT INTO rate_limit_state (scope, scope_id, tat) VALUES ($1, $2, 0)"
            " ON CONFLICT (scope, scope_id) DO NOTHING",
            scope,
            owner[scope],
        )
        tat = await connection.fetchval(
            "SELECT tat FROM rate_limit_state WHERE scope = $1 AND scope_id = $2 FOR UPDATE",
            scope,
            owner[scope],
        )
        decision = rate_decision(tat, plan.now, per_minute)
        if not decision.allowed:
            raise rate_refusal(scope, per_minute, decision.retry_after)
        await connection.execute(
            "UPDATE rate_limit_state SET tat = $3 WHERE scope = $1 AND scope_id = $2",
            scope,
            owner[scope],
            decision.tat,
        )


async def enforce_in_flight(
    connection: Connection, plan: AdmissionPlan, limits: Mapping[TrafficScope, TrafficLimits]
) -> None:
    """Refuse a job that would go upstream beyond an owner's max_in_flight_jobs."""
    owner = owners(plan.job.team_id, plan.job.key_id)
    for scope, limit in in_flight_checks(limits):
        # Held until commit: the next admission of this owner counts this job too.
        await connection.execute(
            "SELECT pg_advisory_xact_lock($1, hashtext($2))", IN_FLIGHT_LOCK, owner[scope]
        )
        count = await connection.fetchval(
            _COUNT_IN_FLIGHT.format(column=_OWNER_COLUMN[scope]), owner[scope]
        )
        if not in_flight_allowed(int(count or 0), limit):
            raise concurrency_refusal(scope, limit)
