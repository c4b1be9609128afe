"""SQLite side of concurrency and rate limits: the owners' own limits, and the two checks
``admit_job`` runs inside its ``BEGIN IMMEDIATE`` transaction (so every process sharing the
file sees one count and one rate state). Decisions are ``gateway.domain.traffic``'s.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping

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
from gateway.store.base import AdmissionPlan, TrafficLimit
from gateway.store.sqlite.rows import changed_one, fetchall, fetchone

_SELECT_LIMITS = (
    "SELECT scope, scope_id, max_in_flight_jobs, requests_per_minute FROM traffic_limits"
)
# Jobs that went upstream (not hits, not joins) and have not finished; {column} is a constant.
_COUNT_IN_FLIGHT = (
    "SELECT count(*) FROM jobs WHERE {column} = ?"  # noqa: S608 - constant lists
    f" AND status NOT IN {TERMINAL_SQL}"
    f" AND (cache_result IS NULL OR cache_result IN {sql_list(UPSTREAM_RESULTS)})"
)
_OWNER_COLUMN: Mapping[str, str] = {"team": "team_id", "key": "key_id"}


def clear_traffic_limit(connection: sqlite3.Connection, scope: TrafficScope, scope_id: str) -> bool:
    return changed_one(
        connection, "DELETE FROM traffic_limits WHERE scope = ? AND scope_id = ?", (scope, scope_id)
    )


def list_traffic_limits(
    connection: sqlite3.Connection, scope: TrafficScope | None, scope_id: str | None
) -> list[TrafficLimit]:
    sql, parameters = _SELECT_LIMITS, list[str]()
    if scope is not None:
        sql += " WHERE scope = ?"
        parameters.append(scope)
        if scope_id is not None:
            sql += " AND scope_id = ?"
            parameters.append(scope_id)
    rows = fetchall(connection, sql + " ORDER BY scope DESC, scope_id", parameters)
    return [TrafficLimit(*row) for row in rows]


def in_flight_jobs(connection: sqlite3.Connection, scope: TrafficScope, scope_id: str) -> int:
    row = fetchone(connection, _COUNT_IN_FLIGHT.format(column=_OWNER_COLUMN[scope]), (scope_id,))
    return int(row[0]) if row else 0


def set_traffic_limit(
    connection: sqlite3.Connection, limit: TrafficLimit, now: int
) -> TrafficLimit:
    connection.execute(
        "INSERT INTO traffic_limits (scope, scope_id, max_in_flight_jobs, requests_per_minute,"
        " updated_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (scope, scope_id) DO UPDATE SET"
        " max_in_flight_jobs = COALESCE(excluded.max_in_flight_jobs, max_in_flight_jobs),"
        " requests_per_minute = COALESCE(excluded.requests_per_minute, requests_per_minute),"
        " updated_at = excluded.updated_at",
        (limit.scope, limit.scope_id, limit.max_in_flight_jobs, limit.requests_per_minute, now),
    )
    row = fetchone(
        connection,
        _SELECT_LIMITS + " WHERE scope = ? AND scope_id = ?",
        (limit.scope, limit.scope_id),
    )
    assert row is not None  # written just above
    return TrafficLimit(*row)


# -- run inside the admission transaction ---------------------------------------------------


def traffic_limits(
    connection: sqlite3.Connection, plan: AdmissionPlan
) -> dict[TrafficScope, TrafficLimits]:
    """The limits in force for the plan's team and key (empty when the plan checks none)."""
    if plan.traffic is None:
        return {}
    owner = owners(plan.job.team_id, plan.job.key_id)
    rows = fetchall(
        connection,
        _SELECT_LIMITS
        + " WHERE (scope = 'team' AND scope_id = ?) OR (scope = 'key' AND scope_id = ?)",
        (owner["team"], owner["key"]),
    )
    stored: dict[TrafficScope, TrafficLimits] = {
        row[0]: TrafficLimits(row[2], row[3]) for row in rows
    }
    return {scope: plan.traffic.effective(scope, stored) for scope in TRAFFIC_SCOPES}


def enforce_rate(
    connection: sqlite3.Connection,
    plan: AdmissionPlan,
    limits: Mapping[TrafficScope, TrafficLimits],
) -> None:
    """Take one request from each owner's requests_per_minute, or refuse (rolled back)."""
    owner = owners(plan.job.team_id, plan.job.key_id)
    for scope, per_minute in rate_checks(limits):
        row = fetchone(
            connection,
            "SELECT tat FROM rate_limit_state WHERE scope = ? AND scope_id = ?",
            (scope, owner[scope]),
        )
        decision = rate_decision(row[0] if row else None, plan.now, per_minute)
        if not decision.allowed:
            raise rate_refusal(scope, per_minute, decision.retry_after)
        connection.execute(
            "INSERT INTO rate_limit_state (scope, scope_id, tat) VALUES (?, ?, ?)"
            " ON CONFLICT (scope, scope_id) DO UPDATE SET tat = excluded.tat",
            (scope, owner[scope], decision.tat),
        )


def enforce_in_flight(
    connection: sqlite3.Connection,
    plan: AdmissionPlan,
    limits: Mapping[TrafficScope, TrafficLimits],
) -> None:
    """Refuse a job that would go upstream beyond an owner's max_in_flight_jobs."""
    owner = owners(plan.job.team_id, plan.job.key_id)
    for scope, limit in in_flight_checks(limits):
        row = fetchone(
            connection, _COUNT_IN_FLIGHT.format(column=_OWNER_COLUMN[scope]), (owner[scope],)
        )
        if not in_flight_allowed(int(row[0]) if row else 0, limit):
            raise concurrency_refusal(scope, limit)
