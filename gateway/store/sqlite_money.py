"""SQLite queries for money: limits, counters, the ledger, quotes, the audit and usage reports.

Every movement changes the counters of each scope (key, team, org) in each window (total, day,
month) and writes one ledger row per scope, in the caller's transaction. Reservations settle in
the periods they were made in (``jobs.reserved_at``), whenever they settle. The functions below
the class run on the connection's thread, inside the caller's transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from functools import lru_cache
from typing import Literal

from gateway.domain.budgets import (
    WINDOWS,
    BudgetLine,
    Scope,
    ScopeRef,
    Window,
    check,
    period_of,
)
from gateway.domain.jobs import TERMINAL_SQL, gauge_counts
from gateway.domain.ledger import Movement, Settlement, part_charge, reservation
from gateway.errors import BudgetExceeded
from gateway.store.audit import audit_problems, team_audit_windows, usage_rows
from gateway.store.base import BudgetLimit, Job, JobChanges, MetricsSnapshot, UsageRow
from gateway.store.sqlite_db import JOB_COLUMNS, fetchall, fetchone, job_from_row
from gateway.store.sqlite_runner import RunnerQueries, changed_one, job_assignments

MovementKind = Literal["reserve", "charge", "refund", "charge_part"]
USAGE_GROUPS = {"model": "j.model", "key": "j.key_id", "day": "l.day"}

_UPSERT_COUNTER = (
    "INSERT INTO budget_counters (scope, scope_id, window_kind, period, reserved, spent)"
    " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (scope, scope_id, window_kind, period)"
    " DO UPDATE SET reserved = reserved + excluded.reserved,"
    " spent = spent + excluded.spent"
)
_INSERT_LEDGER = (
    "INSERT INTO ledger (job_id, kind, scope, scope_id, day, month, reserved_delta,"
    " spent_delta, created_at, actor, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


class MoneyQueries(RunnerQueries):
    # -- limits and quotes ----------------------------------------------------------------

    async def budget_lines(self, scopes: tuple[ScopeRef, ...], now: float) -> list[BudgetLine]:
        return await self._read(lines_for, scopes, now)

    async def set_limit(self, limit: BudgetLimit, now: int) -> None:
        if limit.limit < 0:
            raise ValueError("a budget limit cannot be negative")
        await self._write(
            changed_one,
            "INSERT INTO budget_limits (scope, scope_id, window_kind, limit_micros, updated_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (scope, scope_id, window_kind)"
            " DO UPDATE SET limit_micros = excluded.limit_micros, updated_at = excluded.updated_at",
            (limit.scope, limit.scope_id, limit.window, limit.limit, now),
        )

    async def clear_limit(self, scope: Scope, scope_id: str, window: Window) -> bool:
        return await self._write(
            changed_one,
            "DELETE FROM budget_limits WHERE scope = ? AND scope_id = ? AND window_kind = ?",
            (scope, scope_id, window),
        )

    async def list_limits(
        self, scope: Scope | None = None, scope_id: str | None = None
    ) -> list[BudgetLimit]:
        sql = "SELECT scope, scope_id, window_kind, limit_micros FROM budget_limits"
        conditions: list[str] = []
        parameters: list[str] = []
        if scope is not None:
            conditions.append("scope = ?")
            parameters.append(scope)
        if scope_id is not None:
            conditions.append("scope_id = ?")
            parameters.append(scope_id)
        if conditions:
            sql += " WHERE " + " AND ".join(conditions)
        rows = await self._fetch(sql + " ORDER BY scope, scope_id, window_kind", parameters)
        return [BudgetLimit(row[0], row[1], row[2], row[3]) for row in rows]

    async def metrics_snapshot(self, now: float) -> MetricsSnapshot:
        rows = await self._fetch(
            "SELECT status, COUNT(*) FROM jobs WHERE next_check_at IS NOT NULL GROUP BY status"
        )
        jobs = gauge_counts((row[0], row[1]) for row in rows)
        reserved = await self._fetch_one(
            "SELECT COALESCE(SUM(reserved), 0) FROM budget_counters"
            " WHERE scope = 'org' AND window_kind = 'total'"
        )
        stored = await self._fetch_one("SELECT COALESCE(SUM(size), 0), COUNT(*) FROM assets")
        budgets: dict[tuple[str, str, str], tuple[int, int]] = {}
        for scope, scope_id, window, limit, name in await self._fetch(
            "SELECT l.scope, l.scope_id, l.window_kind, l.limit_micros, COALESCE(t.name, '')"
            " FROM budget_limits l LEFT JOIN teams t ON l.scope = 'team' AND t.id = l.scope_id"
            " WHERE l.scope IN ('team', 'org')"
        ):
            period = period_of(window, now)
            row = await self._fetch_one(
                "SELECT spent + reserved FROM budget_counters WHERE scope = ? AND scope_id = ?"
                " AND window_kind = ? AND period = ?",
                (scope, scope_id, window, period),
            )
            used = int(row[0]) if row is not None else 0
            budgets[(scope, name, window)] = (limit, max(0, limit - used))
        return MetricsSnapshot(
            jobs_by_state=jobs,
            reserved_micros=int(reserved[0]) if reserved else 0,
            stored_bytes=int(stored[0]) if stored else 0,
            stored_objects=int(stored[1]) if stored else 0,
            budgets=budgets,
        )

    async def charge_part(
        self, job_id: str, *, owner: str, amount: int, changes: JobChanges, now: float
    ) -> Job | None:
        return await self._write(_charge_part, job_id, owner, amount, changes.copy(), now)

    # -- audit and usage ------------------------------------------------------------------

    async def audit(self) -> list[str]:
        return audit_problems(
            await self._fetch(
                "SELECT scope, scope_id, day, month, SUM(reserved_delta), SUM(spent_delta)"
                " FROM ledger GROUP BY scope, scope_id, day, month"
            ),
            await self._fetch(
                "SELECT scope, scope_id, window_kind, period, reserved, spent FROM budget_counters"
            ),
            await self._fetch(
                "SELECT id, status FROM jobs WHERE money_state = 'reserved'"  # noqa: S608 - constant lists
                f" AND status IN {TERMINAL_SQL}"
            ),
            await self._fetch(
                "SELECT l.job_id, SUM(l.reserved_delta) FROM ledger l JOIN jobs j ON j.id = l.job_id"
                " WHERE l.scope = 'org' AND j.money_state IN ('charged', 'refunded')"
                " GROUP BY l.job_id HAVING SUM(l.reserved_delta) != 0"
            ),
        )

    async def audit_team(self, team_id: str, month: str | None = None) -> list[str]:
        in_month = " AND month = ?" if month is not None else ""
        extra: tuple[str, ...] = (month,) if month is not None else ()
        periods = ""
        period_args: tuple[str, ...] = ()
        if month is not None:
            periods = " AND ((window_kind = 'month' AND period = ?) OR (window_kind = 'day' AND period LIKE ?))"
            period_args = (month, f"{month}-%")
        sums = (
            "SELECT scope, scope_id, day, month, SUM(reserved_delta), SUM(spent_delta) FROM ledger"
        )
        return audit_problems(
            await self._fetch(
                f"{sums} WHERE scope = 'team' AND scope_id = ?{in_month}"  # noqa: S608
                " GROUP BY scope, scope_id, day, month UNION ALL"
                f" {sums} WHERE scope = 'key' AND scope_id IN"
                f" (SELECT id FROM api_keys WHERE team_id = ?){in_month}"
                " GROUP BY scope, scope_id, day, month",
                (team_id, *extra, team_id, *extra),
            ),
            await self._fetch(
                "SELECT scope, scope_id, window_kind, period, reserved, spent FROM budget_counters"  # noqa: S608
                f" WHERE scope = 'team' AND scope_id = ?{periods} UNION ALL"
                " SELECT scope, scope_id, window_kind, period, reserved, spent FROM budget_counters"
                f" WHERE scope = 'key' AND scope_id IN (SELECT id FROM api_keys WHERE team_id = ?){periods}",
                (team_id, *period_args, team_id, *period_args),
            ),
            await self._fetch(
                "SELECT id, status FROM jobs WHERE team_id = ? AND money_state = 'reserved'"  # noqa: S608 - constant lists
                f" AND status IN {TERMINAL_SQL}",
                (team_id,),
            ),
            await self._fetch(
                "SELECT l.job_id, SUM(l.reserved_delta) FROM ledger l JOIN jobs j ON j.id = l.job_id"  # noqa: S608
                f" WHERE l.scope = 'team' AND l.scope_id = ?{in_month.replace('month', 'l.month')}"
                " AND j.money_state IN ('charged', 'refunded')"
                " GROUP BY l.job_id HAVING SUM(l.reserved_delta) != 0",
                (team_id, *extra),
            ),
            windows=team_audit_windows(month),
        )

    async def usage(self, team_id: str, *, since: float, by: str) -> list[UsageRow]:
        group = USAGE_GROUPS.get(by)
        if group is None:
            raise ValueError(f"usage can be grouped by {', '.join(USAGE_GROUPS)}, not {by!r}")
        money = await self._fetch(
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
            for row in await self._fetch(
                f"SELECT {saved_group}, SUM(j.price_micros - j.cost_micros), COUNT(*) FROM jobs j"  # noqa: S608
                " WHERE j.team_id = ? AND j.created_at >= ? AND j.cache_result IN ('hit', 'coalesced')"
                " AND j.status = 'completed'"
                f" GROUP BY {saved_group}",
                (team_id, since),
            )
        }
        return usage_rows(money, savings)


# -- run on the connection's thread, inside the caller's transaction ------------------------


@lru_cache(maxsize=8)
def _lines_sql(count: int) -> tuple[str, str]:
    """One query for the limits and one for the counters of ``count`` scopes: every term is a
    full primary-key match, so each is an index search (SQLite's multi-index OR). Only
    placeholders are spliced in, never input."""
    scopes = " OR ".join(["(scope = ? AND scope_id = ?)"] * count)
    periods = " OR ".join(
        ["(scope = ? AND scope_id = ? AND window_kind = ? AND period = ?)"] * (count * len(WINDOWS))
    )
    return (
        f"SELECT scope, scope_id, window_kind, limit_micros FROM budget_limits WHERE {scopes}",  # noqa: S608
        f"SELECT scope, scope_id, window_kind, spent, reserved FROM budget_counters WHERE {periods}",  # noqa: S608
    )


def _periods(at: float) -> dict[Window, str]:
    return {window: period_of(window, at) for window in WINDOWS}


def lines_for(
    connection: sqlite3.Connection, scopes: Sequence[ScopeRef], now: float
) -> list[BudgetLine]:
    """The budget lines of ``scopes`` for the windows current at ``now``."""
    if not scopes:
        return []
    periods = _periods(now)
    limits_sql, counters_sql = _lines_sql(len(scopes))
    limits = {
        (row[0], row[1], row[2]): row[3]
        for row in fetchall(
            connection, limits_sql, [value for ref in scopes for value in (ref.scope, ref.id)]
        )
    }
    counters = {
        (row[0], row[1], row[2]): (row[3], row[4])
        for row in fetchall(
            connection,
            counters_sql,
            [
                value
                for ref in scopes
                for window in WINDOWS
                for value in (ref.scope, ref.id, window, periods[window])
            ],
        )
    }
    lines: list[BudgetLine] = []
    for ref in scopes:
        for window in WINDOWS:
            spent, reserved = counters.get((ref.scope, ref.id, window), (0, 0))
            lines.append(
                BudgetLine(ref, window, limits.get((ref.scope, ref.id, window)), spent, reserved)
            )
    return lines


def check_and_reserve(
    connection: sqlite3.Connection,
    job_id: str,
    scopes: Sequence[ScopeRef],
    cost: int,
    now: float,
) -> None:
    """Reserve ``cost`` in every scope, or raise ``BudgetExceeded`` and change nothing."""
    check_budget(connection, scopes, cost, now)
    move(connection, reservation(job_id, tuple(scopes), cost, now))


def check_budget(
    connection: sqlite3.Connection, scopes: Sequence[ScopeRef], cost: int, now: float
) -> None:
    """Raise ``BudgetExceeded`` when ``cost`` does not fit every scope's limits now."""
    violations = check(cost, lines_for(connection, scopes, now))
    if violations:
        first = violations[0]
        name = _scope_name(connection, first.line.scope)
        raise BudgetExceeded(
            first.message(name), scope=first.line.scope.scope, window=first.line.window
        )


def _scope_name(connection: sqlite3.Connection, ref: ScopeRef) -> str | None:
    if ref.scope == "team":
        row = fetchone(connection, "SELECT name FROM teams WHERE id = ?", (ref.id,))
    elif ref.scope == "key":
        row = fetchone(
            connection,
            "SELECT COALESCE(NULLIF(name, ''), prefix) FROM api_keys WHERE id = ?",
            (ref.id,),
        )
    else:
        return None
    return str(row[0]) if row is not None else None


def move(connection: sqlite3.Connection, movement: Movement) -> None:
    """Apply a money movement: its counter deltas and its ledger rows."""
    connection.executemany(
        _UPSERT_COUNTER,
        [(*key, movement.reserved, movement.spent) for key in movement.counter_keys()],
    )
    connection.executemany(_INSERT_LEDGER, movement.ledger_rows())


def apply_settlement(connection: sqlite3.Connection, decided: Settlement | None) -> None:
    """Write a settled reservation: its movement and the job's money columns."""
    if decided is None:
        return
    move(connection, decided.movement)
    connection.execute(
        "UPDATE jobs SET money_state = ?, charged_micros = ? WHERE id = ?",
        (decided.money_state, decided.charged_micros, decided.movement.job_id),
    )


def _charge_part(
    connection: sqlite3.Connection,
    job_id: str,
    owner: str,
    amount: int,
    changes: JobChanges,
    now: float,
) -> Job | None:
    assignments, values = job_assignments(changes)
    row = fetchone(
        connection,
        f"UPDATE jobs SET {assignments + ', ' if assignments else ''}"  # noqa: S608 - whitelisted fields
        " settled_micros = settled_micros + CASE WHEN money_state = 'reserved' THEN ? ELSE 0 END"
        f" WHERE id = ? AND lease_owner = ? RETURNING {JOB_COLUMNS}",
        (*values, amount, job_id, owner),
    )
    if row is None:
        return None
    job = job_from_row(row)
    movement = part_charge(job, amount, now)
    if movement is not None:
        move(connection, movement)
    return job
