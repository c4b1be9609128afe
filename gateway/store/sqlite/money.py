"""SQLite: money. Budget limits, the budget lines of a quote, the check-and-reserve of an
admission, every movement (counters and ledger rows) and the settling of a reservation.

Every movement changes the counters of each scope (key, team, org) in each window (total, day,
month) and writes one ledger row per scope, in the caller's transaction. Reservations settle in
the periods they were made in (``jobs.reserved_at``), whenever they settle. The movements
themselves are ``gateway.domain.ledger``'s.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from functools import lru_cache

from gateway.domain.budgets import WINDOWS, BudgetLine, Scope, ScopeRef, Window, check, period_of
from gateway.domain.ledger import Movement, Settlement, part_charge, reservation
from gateway.errors import BudgetExceeded
from gateway.store.base import BudgetLimit, Job, JobChanges
from gateway.store.sqlite.rows import (
    JOB_COLUMNS,
    changed_one,
    fetchall,
    fetchone,
    job_assignments,
    job_from_row,
)

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


def set_limit(connection: sqlite3.Connection, limit: BudgetLimit, now: int) -> None:
    if limit.limit < 0:
        raise ValueError("a budget limit cannot be negative")
    connection.execute(
        "INSERT INTO budget_limits (scope, scope_id, window_kind, limit_micros, updated_at)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (scope, scope_id, window_kind)"
        " DO UPDATE SET limit_micros = excluded.limit_micros, updated_at = excluded.updated_at",
        (limit.scope, limit.scope_id, limit.window, limit.limit, now),
    )


def clear_limit(
    connection: sqlite3.Connection, scope: Scope, scope_id: str, window: Window
) -> bool:
    return changed_one(
        connection,
        "DELETE FROM budget_limits WHERE scope = ? AND scope_id = ? AND window_kind = ?",
        (scope, scope_id, window),
    )


def list_limits(
    connection: sqlite3.Connection, scope: Scope | None, scope_id: str | None
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
    rows = fetchall(connection, sql + " ORDER BY scope, scope_id, window_kind", parameters)
    return [BudgetLimit(row[0], row[1], row[2], row[3]) for row in rows]


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


def charge_part(
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
