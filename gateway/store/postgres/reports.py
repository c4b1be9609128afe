"""PostgreSQL side of the ``ReportStore``: the metrics snapshot, the ledger audits (whole
database or one team) and usage reports. Read-only; the sums are checked and shaped by
``gateway.store.audit``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.domain.budgets import period_of
from gateway.domain.jobs import TERMINAL_SQL, gauge_counts
from gateway.store.audit import audit_problems, team_audit_windows, usage_rows
from gateway.store.postgres.money import COUNTERS_MATCH, columns
from gateway.store.records import MetricsSnapshot, UsageRow

if TYPE_CHECKING:
    from gateway.store.postgres.database import Executor

USAGE_GROUPS = {"model": "j.model", "key": "j.key_id", "day": "l.day"}
_SUMS = (
    "SELECT scope, scope_id, day, month, SUM(reserved_delta)::bigint,"
    " SUM(spent_delta)::bigint FROM ledger"
)
_COUNTERS = "SELECT scope, scope_id, window_kind, period, reserved, spent FROM budget_counters"
# Terminal jobs still holding a reservation; org ledger rows of settled jobs not summing to 0.
_STRANDED = (
    "SELECT id, status FROM jobs WHERE money_state = 'reserved'"  # noqa: S608 - constant lists
    f" AND status IN {TERMINAL_SQL}"
)
_UNBALANCED = (
    "SELECT l.job_id, SUM(l.reserved_delta)::bigint FROM ledger l"
    " JOIN jobs j ON j.id = l.job_id WHERE j.money_state IN ('charged', 'refunded')"
)
_UNBALANCED_END = " GROUP BY l.job_id HAVING SUM(l.reserved_delta) != 0 ORDER BY l.job_id"
# The keys of team $1.
_TEAM_KEYS = "(SELECT id FROM api_keys WHERE team_id = $1)"


async def metrics_snapshot(db: Executor, now: float) -> MetricsSnapshot:
    rows = await db.fetch(
        "SELECT status, COUNT(*) FROM jobs WHERE next_check_at IS NOT NULL GROUP BY status"
    )
    reserved = await db.fetchval(
        "SELECT COALESCE(SUM(reserved), 0)::bigint FROM budget_counters"
        " WHERE scope = 'org' AND window_kind = 'total'"
    )
    stored = await db.fetchrow(
        # Kept by triggers (migration 0009), in at most 16 shards: O(1), not a scan.
        "SELECT COALESCE(SUM(bytes), 0)::bigint, COALESCE(SUM(objects), 0)::bigint"
        " FROM asset_totals"
    )
    return MetricsSnapshot(
        jobs_by_state=gauge_counts((row[0], row[1]) for row in rows),
        reserved_micros=int(reserved or 0),
        stored_bytes=int(stored[0]) if stored else 0,
        stored_objects=int(stored[1]) if stored else 0,
        budgets=await _budgets_left(db, now),
    )


async def _budgets_left(db: Executor, now: float) -> dict[tuple[str, str, str], tuple[int, int]]:
    """(scope, team name, window) -> (limit, what is left of it) for team and org limits."""
    limits = await db.fetch(
        "SELECT l.scope, l.scope_id, l.window_kind, l.limit_micros, COALESCE(t.name, '')"
        " FROM budget_limits l LEFT JOIN teams t ON l.scope = 'team' AND t.id = l.scope_id"
        " WHERE l.scope IN ('team', 'org')"
    )
    keys = [(row[0], row[1], row[2], period_of(row[2], now)) for row in limits]
    used = {
        (row[0], row[1], row[2], row[3]): row[4]
        for row in await db.fetch(
            "SELECT scope, scope_id, window_kind, period, spent + reserved"  # noqa: S608
            f" FROM budget_counters WHERE {COUNTERS_MATCH}",
            *columns(keys),
        )
    }
    budgets: dict[tuple[str, str, str], tuple[int, int]] = {}
    for (scope, _, window, limit, name), key in zip(limits, keys, strict=True):
        budgets[(scope, name, window)] = (limit, max(0, limit - int(used.get(key, 0))))
    return budgets


async def audit(db: Executor) -> list[str]:
    return audit_problems(
        await db.fetch(_SUMS + " GROUP BY scope, scope_id, day, month"),
        await db.fetch(_COUNTERS),
        await db.fetch(_STRANDED + " ORDER BY id"),
        await db.fetch(_UNBALANCED + " AND l.scope = 'org'" + _UNBALANCED_END),
    )


async def audit_team(db: Executor, team_id: str, month: str | None) -> list[str]:
    # $1 the team id; $2 the month and $3 its days' pattern when given.
    in_month = " AND month = $2" if month is not None else ""
    periods = (
        " AND ((window_kind = 'month' AND period = $2) OR (window_kind = 'day' AND period LIKE $3))"
        if month is not None
        else ""
    )
    by_month = (team_id, month) if month is not None else (team_id,)
    by_days = (team_id, month, f"{month}-%") if month is not None else (team_id,)
    group = " GROUP BY scope, scope_id, day, month"
    return audit_problems(
        await db.fetch(
            f"{_SUMS} WHERE scope = 'team' AND scope_id = $1{in_month}{group} UNION ALL"
            f" {_SUMS} WHERE scope = 'key' AND scope_id IN {_TEAM_KEYS}{in_month}{group}",
            *by_month,
        ),
        await db.fetch(
            f"{_COUNTERS} WHERE scope = 'team' AND scope_id = $1{periods} UNION ALL"
            f" {_COUNTERS} WHERE scope = 'key' AND scope_id IN {_TEAM_KEYS}{periods}",
            *by_days,
        ),
        await db.fetch(_STRANDED + " AND team_id = $1 ORDER BY id", team_id),
        await db.fetch(
            _UNBALANCED + " AND l.scope = 'team' AND l.scope_id = $1"
            f"{in_month.replace('month', 'l.month')}{_UNBALANCED_END}",
            *by_month,
        ),
        windows=team_audit_windows(month),
    )


async def usage(db: Executor, team_id: str, *, since: float, by: str) -> list[UsageRow]:
    group = USAGE_GROUPS.get(by)
    if group is None:
        raise ValueError(f"usage can be grouped by {', '.join(USAGE_GROUPS)}, not {by!r}")
    money = await db.fetch(
        f"SELECT {group}, SUM(l.spent_delta)::bigint, SUM(l.reserved_delta)::bigint,"  # noqa: S608
        " SUM(CASE WHEN l.kind = 'refund' THEN -l.reserved_delta ELSE 0 END)::bigint,"
        " SUM(CASE WHEN l.kind = 'charge' THEN 1 ELSE 0 END)::bigint,"
        " SUM(CASE WHEN l.kind = 'charge' THEN COALESCE(j.delivered_seconds, 0) ELSE 0 END)"
        "::bigint FROM ledger l JOIN jobs j ON j.id = l.job_id"
        " WHERE l.scope = 'team' AND l.scope_id = $1 AND l.created_at >= $2::float8"
        f" GROUP BY {group}",
        team_id,
        since,
    )
    day_expr = "to_char(to_timestamp(j.created_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
    saved_group = day_expr if by == "day" else group
    savings = {
        row[0]: (row[1], row[2])
        for row in await db.fetch(
            f"SELECT {saved_group}, SUM(j.price_micros - j.cost_micros)::bigint, COUNT(*)"  # noqa: S608
            " FROM jobs j WHERE j.team_id = $1 AND j.created_at >= $2::float8"
            " AND j.cache_result IN ('hit', 'coalesced') AND j.status = 'completed'"
            f" GROUP BY {saved_group}",
            team_id,
            since,
        )
    }
    return usage_rows(money, savings)
