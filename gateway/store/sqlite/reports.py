"""SQLite: the reports (the ``ReportStore`` port): the metrics snapshot, the ledger audit (of
everything or of one team) and usage. Each is one function on the reader connection: one hop."""

from __future__ import annotations

import sqlite3

from gateway.domain.budgets import period_of
from gateway.domain.jobs import TERMINAL_SQL, gauge_counts
from gateway.store.audit import audit_problems, team_audit_windows, usage_rows
from gateway.store.base import MetricsSnapshot, UsageRow
from gateway.store.sqlite.rows import Row, fetchall, fetchone

USAGE_GROUPS = {"model": "j.model", "key": "j.key_id", "day": "l.day"}
_SUMS = "SELECT scope, scope_id, day, month, SUM(reserved_delta), SUM(spent_delta) FROM ledger"
_COUNTERS = "SELECT scope, scope_id, window_kind, period, reserved, spent FROM budget_counters"


def metrics_snapshot(connection: sqlite3.Connection, now: float) -> MetricsSnapshot:
    rows = fetchall(
        connection,
        "SELECT status, COUNT(*) FROM jobs WHERE next_check_at IS NOT NULL GROUP BY status",
    )
    reserved = fetchone(
        connection,
        "SELECT COALESCE(SUM(reserved), 0) FROM budget_counters"
        " WHERE scope = 'org' AND window_kind = 'total'",
    )
    # Kept by triggers (migration 0009): O(1) in the number of videos, not a scan.
    stored = fetchone(connection, "SELECT bytes, objects FROM asset_totals WHERE shard = 0")
    return MetricsSnapshot(
        jobs_by_state=gauge_counts((row[0], row[1]) for row in rows),
        reserved_micros=int(reserved[0]) if reserved else 0,
        stored_bytes=int(stored[0]) if stored else 0,
        stored_objects=int(stored[1]) if stored else 0,
        budgets=_budgets_left(connection, now),
    )


def _budgets_left(
    connection: sqlite3.Connection, now: float
) -> dict[tuple[str, str, str], tuple[int, int]]:
    """Each team and org limit in force at ``now`` and what is left of it."""
    budgets: dict[tuple[str, str, str], tuple[int, int]] = {}
    for scope, scope_id, window, limit, name in fetchall(
        connection,
        "SELECT l.scope, l.scope_id, l.window_kind, l.limit_micros, COALESCE(t.name, '')"
        " FROM budget_limits l LEFT JOIN teams t ON l.scope = 'team' AND t.id = l.scope_id"
        " WHERE l.scope IN ('team', 'org')",
    ):
        row = fetchone(
            connection,
            "SELECT spent + reserved FROM budget_counters WHERE scope = ? AND scope_id = ?"
            " AND window_kind = ? AND period = ?",
            (scope, scope_id, window, period_of(window, now)),
        )
        used = int(row[0]) if row is not None else 0
        budgets[(scope, name, window)] = (limit, max(0, limit - used))
    return budgets


def audit(connection: sqlite3.Connection) -> list[str]:
    return audit_problems(
        fetchall(connection, f"{_SUMS} GROUP BY scope, scope_id, day, month"),
        fetchall(connection, _COUNTERS),
        fetchall(
            connection,
            "SELECT id, status FROM jobs WHERE money_state = 'reserved'"  # noqa: S608 - constant lists
            f" AND status IN {TERMINAL_SQL}",
        ),
        fetchall(
            connection,
            "SELECT l.job_id, SUM(l.reserved_delta) FROM ledger l JOIN jobs j ON j.id = l.job_id"
            " WHERE l.scope = 'org' AND j.money_state IN ('charged', 'refunded')"
            " GROUP BY l.job_id HAVING SUM(l.reserved_delta) != 0",
        ),
    )


def audit_team(connection: sqlite3.Connection, team_id: str, month: str | None) -> list[str]:
    return audit_problems(
        _team_ledger_sums(connection, team_id, month),
        _team_counters(connection, team_id, month),
        fetchall(
            connection,
            "SELECT id, status FROM jobs WHERE team_id = ? AND money_state = 'reserved'"  # noqa: S608 - constant lists
            f" AND status IN {TERMINAL_SQL}",
            (team_id,),
        ),
        _team_unsettled(connection, team_id, month),
        windows=team_audit_windows(month),
    )


def _team_ledger_sums(connection: sqlite3.Connection, team_id: str, month: str | None) -> list[Row]:
    in_month = " AND month = ?" if month is not None else ""
    extra: tuple[str, ...] = (month,) if month is not None else ()
    return fetchall(
        connection,
        f"{_SUMS} WHERE scope = 'team' AND scope_id = ?{in_month}"  # noqa: S608
        " GROUP BY scope, scope_id, day, month UNION ALL"
        f" {_SUMS} WHERE scope = 'key' AND scope_id IN"
        f" (SELECT id FROM api_keys WHERE team_id = ?){in_month}"
        " GROUP BY scope, scope_id, day, month",
        (team_id, *extra, team_id, *extra),
    )


def _team_counters(connection: sqlite3.Connection, team_id: str, month: str | None) -> list[Row]:
    periods = ""
    period_args: tuple[str, ...] = ()
    if month is not None:
        periods = " AND ((window_kind = 'month' AND period = ?) OR (window_kind = 'day' AND period LIKE ?))"
        period_args = (month, f"{month}-%")
    return fetchall(
        connection,
        f"{_COUNTERS} WHERE scope = 'team' AND scope_id = ?{periods} UNION ALL"  # noqa: S608
        f" {_COUNTERS}"
        f" WHERE scope = 'key' AND scope_id IN (SELECT id FROM api_keys WHERE team_id = ?){periods}",
        (team_id, *period_args, team_id, *period_args),
    )


def _team_unsettled(connection: sqlite3.Connection, team_id: str, month: str | None) -> list[Row]:
    in_month = " AND l.month = ?" if month is not None else ""
    extra: tuple[str, ...] = (month,) if month is not None else ()
    return fetchall(
        connection,
        "SELECT l.job_id, SUM(l.reserved_delta) FROM ledger l JOIN jobs j ON j.id = l.job_id"  # noqa: S608
        f" WHERE l.scope = 'team' AND l.scope_id = ?{in_month}"
        " AND j.money_state IN ('charged', 'refunded')"
        " GROUP BY l.job_id HAVING SUM(l.reserved_delta) != 0",
        (team_id, *extra),
    )


def usage(connection: sqlite3.Connection, team_id: str, since: float, by: str) -> list[UsageRow]:
    group = USAGE_GROUPS.get(by)
    if group is None:
        raise ValueError(f"usage can be grouped by {', '.join(USAGE_GROUPS)}, not {by!r}")
    money = fetchall(
        connection,
        f"SELECT {group}, SUM(l.spent_delta), SUM(l.reserved_delta),"  # noqa: S608
        " SUM(CASE WHEN l.kind = 'refund' THEN -l.reserved_delta ELSE 0 END),"
        " SUM(CASE WHEN l.kind = 'charge' THEN 1 ELSE 0 END),"
        " SUM(CASE WHEN l.kind = 'charge' THEN COALESCE(j.delivered_seconds, 0) ELSE 0 END)"
        " FROM ledger l JOIN jobs j ON j.id = l.job_id"
        " WHERE l.scope = 'team' AND l.scope_id = ? AND l.created_at >= ?"
        f" GROUP BY {group}",
        (team_id, since),
    )
    day_expr = "strftime('%Y-%m-%d', j.created_at, 'unixepoch')"
    saved_group = day_expr if by == "day" else group
    savings = {
        row[0]: (row[1], row[2])
        for row in fetchall(
            connection,
            f"SELECT {saved_group}, SUM(j.price_micros - j.cost_micros), COUNT(*) FROM jobs j"  # noqa: S608
            " WHERE j.team_id = ? AND j.created_at >= ? AND j.cache_result IN ('hit', 'coalesced')"
            " AND j.status = 'completed'"
            f" GROUP BY {saved_group}",
            (team_id, since),
        )
    }
    return usage_rows(money, savings)
