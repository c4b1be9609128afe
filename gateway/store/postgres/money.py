"""PostgreSQL side of money: budget lines and limits, the reservation check, movements of the
ledger and settlements, and a chained segment's part charge.

Every movement changes the counters of each scope (key, team, org) in each window (total, day,
month) and writes one ledger row per scope, in the caller's transaction. Counter rows are
created if absent and then locked in primary-key order before anything is read or changed, so a
reservation checks and moves the very numbers no other connection can move meanwhile, and two
transactions never wait for each other's counters in opposite orders. The decisions are
``gateway.domain.budgets``' and ``gateway.domain.ledger``'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from gateway.domain.budgets import WINDOWS, BudgetLine, Scope, ScopeRef, Window, check, period_of
from gateway.domain.ledger import (
    CounterKey,
    Movement,
    Settlement,
    counter_keys,
    part_charge,
    reservation,
)
from gateway.errors import BudgetExceeded
from gateway.store.postgres.rows import JOB_COLUMNS, changed_one, job_assignments, job_from_row
from gateway.store.records import BudgetLimit, Job, JobChanges

if TYPE_CHECKING:
    from gateway.store.postgres.database import Connection, Executor

# The counters named by four parallel arrays ($1..$4: scopes, scope ids, windows, periods).
COUNTERS_MATCH = (
    "(scope, scope_id, window_kind, period) IN"
    " (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]))"
)


def columns(keys: Sequence[CounterKey]) -> list[list[str]]:
    """``keys`` as the four parallel arrays the counter queries unnest."""
    return [[key[i] for key in keys] for i in range(4)]


async def lines_for(
    connection: Executor, scopes: Sequence[ScopeRef], now: float, *, lock: bool = False
) -> list[BudgetLine]:
    """The budget lines of ``scopes`` for the windows current at ``now``; with ``lock`` (in a
    transaction), their counters exist and stay locked until it ends."""
    keys = counter_keys(scopes, now)
    if lock:
        await connection.execute(
            "INSERT INTO budget_counters (scope, scope_id, window_kind, period)"
            " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])"
            " ORDER BY 1, 2, 3, 4 ON CONFLICT DO NOTHING",
            *columns(keys),
        )
    counters = {
        (row[0], row[1], row[2], row[3]): (row[4], row[5])
        for row in await connection.fetch(
            "SELECT scope, scope_id, window_kind, period, spent, reserved"  # noqa: S608
            f" FROM budget_counters WHERE {COUNTERS_MATCH}"
            " ORDER BY scope, scope_id, window_kind, period" + (" FOR UPDATE" if lock else ""),
            *columns(keys),
        )
    }
    limits = {
        (row[0], row[1], row[2]): row[3]
        for row in await connection.fetch(
            "SELECT scope, scope_id, window_kind, limit_micros FROM budget_limits"
            " WHERE (scope, scope_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))",
            [ref.scope for ref in scopes],
            [ref.id for ref in scopes],
        )
    }
    return [
        BudgetLine(
            ref,
            window,
            limits.get((ref.scope, ref.id, window)),
            *counters.get((ref.scope, ref.id, window, period_of(window, now)), (0, 0)),
        )
        for ref in scopes
        for window in WINDOWS
    ]


async def check_and_reserve(
    connection: Connection, job_id: str, scopes: Sequence[ScopeRef], cost: int, now: float
) -> None:
    """Reserve ``cost`` in every scope, or raise ``BudgetExceeded`` and change nothing."""
    await check_budget(connection, scopes, cost, now)
    await move(connection, reservation(job_id, tuple(scopes), cost, now))


async def check_budget(
    connection: Connection, scopes: Sequence[ScopeRef], cost: int, now: float
) -> None:
    """Raise ``BudgetExceeded`` when ``cost`` does not fit every scope's limits now; the
    counters stay locked until the transaction ends."""
    violations = check(cost, await lines_for(connection, scopes, now, lock=True))
    if violations:
        first = violations[0]
        name = await _scope_name(connection, first.line.scope)
        raise BudgetExceeded(
            first.message(name), scope=first.line.scope.scope, window=first.line.window
        )


async def _scope_name(connection: Connection, ref: ScopeRef) -> str | None:
    if ref.scope == "team":
        name = await connection.fetchval("SELECT name FROM teams WHERE id = $1", ref.id)
    elif ref.scope == "key":
        name = await connection.fetchval(
            "SELECT COALESCE(NULLIF(name, ''), prefix) FROM api_keys WHERE id = $1", ref.id
        )
    else:
        return None
    return str(name) if name is not None else None


async def move(connection: Connection, movement: Movement) -> None:
    """Apply a money movement: its counter deltas (the upsert takes the counter rows in
    primary-key order) and its ledger rows."""
    await connection.execute(
        "INSERT INTO budget_counters (scope, scope_id, window_kind, period, reserved, spent)"
        " SELECT *, $5::bigint, $6::bigint"
        " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) ORDER BY 1, 2, 3, 4"
        " ON CONFLICT (scope, scope_id, window_kind, period) DO UPDATE SET"
        " reserved = budget_counters.reserved + excluded.reserved,"
        " spent = budget_counters.spent + excluded.spent",
        *columns(movement.counter_keys()),
        movement.reserved,
        movement.spent,
    )
    # One statement for every scope's row (the scopes' order kept), not one per scope.
    await connection.execute(
        "INSERT INTO ledger (job_id, kind, scope, scope_id, day, month, reserved_delta,"
        " spent_delta, created_at, actor, reason)"
        " SELECT $1, $2, s.scope, s.scope_id, $5, $6, $7, $8, $9, $10, $11"
        " FROM unnest($3::text[], $4::text[]) WITH ORDINALITY AS s(scope, scope_id, n)"
        " ORDER BY s.n",
        movement.job_id,
        movement.kind,
        [ref.scope for ref in movement.scopes],
        [ref.id for ref in movement.scopes],
        movement.day,
        movement.month,
        movement.reserved,
        movement.spent,
        movement.dated,
        movement.actor,
        movement.reason,
    )


async def apply_settlement(connection: Connection, decided: Settlement | None) -> None:
    """Write a settled reservation: its movement and the job's money columns. The caller holds
    the job's row lock."""
    if decided is None:
        return
    await move(connection, decided.movement)
    await connection.execute(
        "UPDATE jobs SET money_state = $1, charged_micros = $2 WHERE id = $3",
        decided.money_state,
        decided.charged_micros,
        decided.movement.job_id,
    )


async def charge_part(
    connection: Connection,
    job_id: str,
    owner: str,
    amount: int,
    changes: JobChanges,
    now: float,
) -> Job | None:
    """Charge a finished chain segment's part of the reservation while the lease holds."""
    assignments, values = job_assignments(changes, first=4)
    row = await connection.fetchrow(
        f"UPDATE jobs SET {assignments + ', ' if assignments else ''}"  # noqa: S608 - whitelisted fields
        " settled_micros = settled_micros"
        " + CASE WHEN money_state = 'reserved' THEN $1::bigint ELSE 0 END"
        f" WHERE id = $2 AND lease_owner = $3 RETURNING {JOB_COLUMNS}",
        amount,
        job_id,
        owner,
        *values,
    )
    if row is None:
        return None
    job = job_from_row(row)
    movement = part_charge(job, amount, now)
    if movement is not None:
        await move(connection, movement)
    return job


# -- limits ---------------------------------------------------------------------------------


async def set_limit(db: Executor, limit: BudgetLimit, now: int) -> None:
    if limit.limit < 0:
        raise ValueError("a budget limit cannot be negative")
    await db.execute(
        "INSERT INTO budget_limits (scope, scope_id, window_kind, limit_micros, updated_at)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (scope, scope_id, window_kind)"
        " DO UPDATE SET limit_micros = excluded.limit_micros, updated_at = excluded.updated_at",
        limit.scope,
        limit.scope_id,
        limit.window,
        limit.limit,
        now,
    )


async def clear_limit(db: Executor, scope: Scope, scope_id: str, window: Window) -> bool:
    tag = await db.execute(
        "DELETE FROM budget_limits WHERE scope = $1 AND scope_id = $2 AND window_kind = $3",
        scope,
        scope_id,
        window,
    )
    return changed_one(tag)


async def list_limits(db: Executor, scope: Scope | None, scope_id: str | None) -> list[BudgetLimit]:
    rows = await db.fetch(
        "SELECT scope, scope_id, window_kind, limit_micros FROM budget_limits"
        " WHERE ($1::text IS NULL OR scope = $1) AND ($2::text IS NULL OR scope_id = $2)"
        " ORDER BY scope, scope_id, window_kind",
        scope,
        scope_id,
    )
    return [BudgetLimit(*row) for row in rows]
