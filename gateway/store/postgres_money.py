"""PostgreSQL queries for money: limits, counters, the ledger, quotes, the audit and usage reports.

Every movement changes the counters of each scope (key, team, org) in each window (total, day,
month) and writes one ledger row per scope, in the caller's transaction. Counter rows are
created if absent and then locked in primary-key order before anything is read or changed, so a
reservation checks and moves the very numbers no other connection can move meanwhile, and two
transactions never wait for each other's counters in opposite orders.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

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
from gateway.domain.ledger import (
    CounterKey,
    Movement,
    Settlement,
    counter_keys,
    part_charge,
    reservation,
)
from gateway.errors import BudgetExceeded
from gateway.store.audit import audit_problems, team_audit_windows, usage_rows
from gateway.store.base import BudgetLimit, Job, JobChanges, MetricsSnapshot, UsageRow
from gateway.store.postgres_db import JOB_COLUMNS, job_assignments, job_from_row
from gateway.store.postgres_runner import RunnerQueries

if TYPE_CHECKING:
    from gateway.store.postgres_db import Connection

MovementKind = Literal["reserve", "charge", "refund", "charge_part"]
USAGE_GROUPS = {"model": "j.model", "key": "j.key_id", "day": "l.day"}
# The counters named by four parallel arrays ($1..$4: scopes, scope ids, windows, periods).
_MATCH = (
    "(scope, scope_id, window_kind, period) IN"
    " (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]))"
)


def columns(keys: Sequence[CounterKey]) -> list[list[str]]:
    """``keys`` as the four parallel arrays the counter queries unnest."""
    return [[key[i] for key in keys] for i in range(4)]


class MoneyQueries(RunnerQueries):
    async def _lines(
        self,
        connection: Connection,
        scopes: Sequence[ScopeRef],
        now: float,
        *,
        lock: bool = False,
    ) -> list[BudgetLine]:
        """The budget lines of ``scopes`` for the windows current at ``now``; with ``lock``,
        their counters exist and stay locked until the transaction ends."""
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
                f" FROM budget_counters WHERE {_MATCH}"
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
        lines: list[BudgetLine] = []
        for ref in scopes:
            for window in WINDOWS:
                spent, reserved = counters.get(
                    (ref.scope, ref.id, window, period_of(window, now)), (0, 0)
                )
                limit = limits.get((ref.scope, ref.id, window))
                lines.append(BudgetLine(ref, window, limit, spent, reserved))
        return lines

    async def _check_and_reserve(
        self,
        connection: Connection,
        job_id: str,
        scopes: Sequence[ScopeRef],
        cost: int,
        now: float,
    ) -> None:
        """Reserve ``cost`` in every scope, or raise ``BudgetExceeded`` and change nothing."""
        await self._check_budget(connection, scopes, cost, now)
        await move(connection, reservation(job_id, tuple(scopes), cost, now))

    async def _check_budget(
        self, connection: Connection, scopes: Sequence[ScopeRef], cost: int, now: float
    ) -> None:
        """Raise ``BudgetExceeded`` when ``cost`` does not fit every scope's limits now; the
        counters stay locked until the transaction ends."""
        violations = check(cost, await self._lines(connection, scopes, now, lock=True))
        if violations:
            first = violations[0]
            name = await self._scope_name(connection, first.line.scope)
            raise BudgetExceeded(
                first.message(name), scope=first.line.scope.scope, window=first.line.window
            )

    async def _scope_name(self, connection: Connection, ref: ScopeRef) -> str | None:
        if ref.scope == "team":
            name = await connection.fetchval("SELECT name FROM teams WHERE id = $1", ref.id)
        elif ref.scope == "key":
            name = await connection.fetchval(
                "SELECT COALESCE(NULLIF(name, ''), prefix) FROM api_keys WHERE id = $1", ref.id
            )
        else:
            return None
        return str(name) if name is not None else None

    async def charge_part(
        self, job_id: str, *, owner: str, amount: int, changes: JobChanges, now: float
    ) -> Job | None:
        assignments, values = job_assignments(changes, first=4)
        async with self._transaction() as connection:
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

    # -- limits and quotes ----------------------------------------------------------------

    async def budget_lines(self, scopes: tuple[ScopeRef, ...], now: float) -> list[BudgetLine]:
        async with self._pool.acquire() as connection:
            return await self._lines(connection, scopes, now)

    async def set_limit(self, limit: BudgetLimit, now: int) -> None:
        if limit.limit < 0:
            raise ValueError("a budget limit cannot be negative")
        await self._execute(
            "INSERT INTO budget_limits (scope, scope_id, window_kind, limit_micros, updated_at)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (scope, scope_id, window_kind)"
            " DO UPDATE SET limit_micros = excluded.limit_micros, updated_at = excluded.updated_at",
            limit.scope,
            limit.scope_id,
            limit.window,
            limit.limit,
            now,
        )

    async def clear_limit(self, scope: Scope, scope_id: str, window: Window) -> bool:
        tag = await self._execute(
            "DELETE FROM budget_limits WHERE scope = $1 AND scope_id = $2 AND window_kind = $3",
            scope,
            scope_id,
            window,
        )
        return tag == "DELETE 1"

    async def list_limits(
        self, scope: Scope | None = None, scope_id: str | None = None
    ) -> list[BudgetLimit]:
        rows = await self._fetch(
            "SELECT scope, scope_id, window_kind, limit_micros FROM budget_limits"
            " WHERE ($1::text IS NULL OR scope = $1) AND ($2::text IS NULL OR scope_id = $2)"
            " ORDER BY scope, scope_id, window_kind",
            scope,
            scope_id,
        )
        return [BudgetLimit(row[0], row[1], row[2], row[3]) for row in rows]

    async def metrics_snapshot(self, now: float) -> MetricsSnapshot:
        rows = await self._fetch(
            "SELECT status, COUNT(*) FROM jobs WHERE next_check_at IS NOT NULL GROUP BY status"
        )
        jobs = gauge_counts((row[0], row[1]) for row in rows)
        reserved = await self._fetch_one(
            "SELECT COALESCE(SUM(reserved), 0)::bigint FROM budget_counters"
            " WHERE scope = 'org' AND window_kind = 'total'"
        )
        stored = await self._fetch_one(
            # Kept by triggers (migration 0009), in at most 16 shards: O(1), not a scan.
            "SELECT COALESCE(SUM(bytes), 0)::bigint, COALESCE(SUM(objects), 0)::bigint"
            " FROM asset_totals"
        )
        limits = await self._fetch(
            "SELECT l.scope, l.scope_id, l.window_kind, l.limit_micros, COALESCE(t.name, '')"
            " FROM budget_limits l LEFT JOIN teams t ON l.scope = 'team' AND t.id = l.scope_id"
            " WHERE l.scope IN ('team', 'org')"
        )
        keys = [(row[0], row[1], row[2], period_of(row[2], now)) for row in limits]
        used = {
            (row[0], row[1], row[2], row[3]): row[4]
            for row in await self._fetch(
                "SELECT scope, scope_id, window_kind, period, spent + reserved"  # noqa: S608
                f" FROM budget_counters WHERE {_MATCH}",
                *columns(keys),
            )
        }
        budgets: dict[tuple[str, str, str], tuple[int, int]] = {}
        for (scope, _, window, limit, name), key in zip(limits, keys, strict=True):
            budgets[(scope, name, window)] = (limit, max(0, limit - int(used.get(key, 0))))
        return MetricsSnapshot(
            jobs_by_state=jobs,
            reserved_micros=int(reserved[0]) if reserved else 0,
            stored_bytes=int(stored[0]) if stored else 0,
            stored_objects=int(stored[1]) if stored else 0,
            budgets=budgets,
        )

    # -- audit and usage ------------------------------------------------------------------

    async def audit(self) -> list[str]:
        return audit_problems(
            await self._fetch(
                "SELECT scope, scope_id, day, month, SUM(reserved_delta)::bigint,"
                " SUM(spent_delta)::bigint FROM ledger GROUP BY scope, scope_id, day, month"
            ),
            await self._fetch(
                "SELECT scope, scope_id, window_kind, period, reserved, spent FROM budget_counters"
            ),
            await self._fetch(
                "SELECT id, status FROM jobs WHERE money_state = 'reserved'"  # noqa: S608 - constant lists
                f" AND status IN {TERMINAL_SQL} ORDER BY id"
            ),
            await self._fetch(
                "SELECT l.job_id, SUM(l.reserved_delta)::bigint FROM ledger l"
                " JOIN jobs j ON j.id = l.job_id"
                " WHERE l.scope = 'org' AND j.money_state IN ('charged', 'refunded')"
                " GROUP BY l.job_id HAVING SUM(l.reserved_delta) != 0 ORDER BY l.job_id"
            ),
        )

    async def audit_team(self, team_id: str, month: str | None = None) -> list[str]:
        # $1 the team id; $2 the month and $3 its days' pattern when given.
        in_month = " AND month = $2" if month is not None else ""
        periods = (
            " AND ((window_kind = 'month' AND period = $2) OR (window_kind = 'day' AND period LIKE $3))"
            if month is not None
            else ""
        )
        sums = (
            "SELECT scope, scope_id, day, month, SUM(reserved_delta)::bigint,"
            " SUM(spent_delta)::bigint FROM ledger"
        )
        counters = (
            "SELECT scope, scope_id, window_kind, period, reserved, spent FROM budget_counters"
        )
        return audit_problems(
            await self._fetch(
                f"{sums} WHERE scope = 'team' AND scope_id = $1{in_month}"  # noqa: S608
                " GROUP BY scope, scope_id, day, month UNION ALL"
                f" {sums} WHERE scope = 'key' AND scope_id IN"
                f" (SELECT id FROM api_keys WHERE team_id = $1){in_month}"
                " GROUP BY scope, scope_id, day, month",
                *((team_id, month) if month is not None else (team_id,)),
            ),
            await self._fetch(
                f"{counters} WHERE scope = 'team' AND scope_id = $1{periods} UNION ALL"  # noqa: S608
                f" {counters} WHERE scope = 'key' AND scope_id IN"
                f" (SELECT id FROM api_keys WHERE team_id = $1){periods}",
                *((team_id, month, f"{month}-%") if month is not None else (team_id,)),
            ),
            await self._fetch(
                "SELECT id, status FROM jobs WHERE team_id = $1 AND money_state = 'reserved'"  # noqa: S608 - constant lists
                f" AND status IN {TERMINAL_SQL} ORDER BY id",
                team_id,
            ),
            await self._fetch(
                "SELECT l.job_id, SUM(l.reserved_delta)::bigint FROM ledger l"  # noqa: S608
                " JOIN jobs j ON j.id = l.job_id"
                f" WHERE l.scope = 'team' AND l.scope_id = $1{in_month.replace('month', 'l.month')}"
                " AND j.money_state IN ('charged', 'refunded')"
                " GROUP BY l.job_id HAVING SUM(l.reserved_delta) != 0 ORDER BY l.job_id",
                *((team_id, month) if month is not None else (team_id,)),
            ),
            windows=team_audit_windows(month),
        )

    async def usage(self, team_id: str, *, since: float, by: str) -> list[UsageRow]:
        group = USAGE_GROUPS.get(by)
        if group is None:
            raise ValueError(f"usage can be grouped by {', '.join(USAGE_GROUPS)}, not {by!r}")
        money = await self._fetch(
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
            for row in await self._fetch(
                f"SELECT {saved_group}, SUM(j.price_micros - j.cost_micros)::bigint, COUNT(*)"  # noqa: S608
                " FROM jobs j WHERE j.team_id = $1 AND j.created_at >= $2::float8"
                " AND j.cache_result IN ('hit', 'coalesced') AND j.status = 'completed'"
                f" GROUP BY {saved_group}",
                team_id,
                since,
            )
        }
        return usage_rows(money, savings)


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
