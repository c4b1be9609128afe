"""PostgreSQL: browsing jobs across teams and reading a job's ledger, for the operator's
dashboard. Read-only queries; filters are bound parameters, never SQL text."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gateway.store.browsing import JobFilter, LedgerLine
from gateway.store.listing import check_page
from gateway.store.postgres.rows import SELECT_JOB, VISIBLE_JOB, job_from_row
from gateway.store.records import Job

if TYPE_CHECKING:
    from gateway.store.postgres.database import Executor


async def find_jobs(
    db: Executor, where: JobFilter, *, before: str | None, limit: int
) -> tuple[list[Job], bool]:
    check_page(limit)
    clauses = [VISIBLE_JOB]
    parameters: list[Any] = []

    def bind(value: Any) -> str:
        parameters.append(value)
        return f"${len(parameters)}"

    for column, value in (
        ("team_id", where.team_id),
        ("key_id", where.key_id),
        ("model", where.model),
    ):
        if value is not None:
            clauses.append(f"{column} = {bind(value)}")
    if where.statuses:
        clauses.append(f"status = ANY({bind(list(where.statuses))}::text[])")
    if where.created_from is not None:
        clauses.append(f"created_at >= {bind(where.created_from)}")
    if where.created_to is not None:
        clauses.append(f"created_at < {bind(where.created_to)}")
    if before is not None:
        clauses.append(f"id < {bind(before)}")
    sql = f"{SELECT_JOB} WHERE {' AND '.join(clauses)} ORDER BY id DESC LIMIT {bind(limit + 1)}"
    rows = await db.fetch(sql, *parameters)
    return [job_from_row(row) for row in rows[:limit]], len(rows) > limit


async def ledger_lines(db: Executor, job_id: str) -> list[LedgerLine]:
    rows = await db.fetch(
        "SELECT kind, scope, scope_id, reserved_delta, spent_delta, created_at"
        " FROM ledger WHERE job_id = $1 ORDER BY id",
        job_id,
    )
    return [LedgerLine(*row.values()) for row in rows]
