"""SQLite: browsing jobs across teams and reading a job's ledger, for the operator's dashboard.
Read-only queries on the reader connection; filters are bound parameters, never SQL text."""

from __future__ import annotations

import sqlite3
from typing import Any

from gateway.store.base import Job
from gateway.store.browsing import JobFilter, LedgerLine
from gateway.store.listing import check_page
from gateway.store.sqlite.rows import SELECT_JOB, VISIBLE_JOB, fetchall, job_from_row


def find_jobs(
    connection: sqlite3.Connection, where: JobFilter, before: str | None, limit: int
) -> tuple[list[Job], bool]:
    check_page(limit)
    clauses = [VISIBLE_JOB]
    parameters: list[Any] = []
    for column, value in (
        ("team_id", where.team_id),
        ("key_id", where.key_id),
        ("model", where.model),
    ):
        if value is not None:
            clauses.append(f"{column} = ?")
            parameters.append(value)
    if where.statuses:
        clauses.append(f"status IN ({', '.join('?' * len(where.statuses))})")
        parameters.extend(where.statuses)
    if where.created_from is not None:
        clauses.append("created_at >= ?")
        parameters.append(where.created_from)
    if where.created_to is not None:
        clauses.append("created_at < ?")
        parameters.append(where.created_to)
    if before is not None:
        clauses.append("id < ?")
        parameters.append(before)
    sql = f"{SELECT_JOB} WHERE {' AND '.join(clauses)} ORDER BY id DESC LIMIT ?"
    parameters.append(limit + 1)
    rows = fetchall(connection, sql, parameters)
    return [job_from_row(row) for row in rows[:limit]], len(rows) > limit


def ledger_lines(connection: sqlite3.Connection, job_id: str) -> list[LedgerLine]:
    rows = fetchall(
        connection,
        "SELECT kind, scope, scope_id, reserved_delta, spent_delta, created_at"
        " FROM ledger WHERE job_id = ? ORDER BY id",
        (job_id,),
    )
    return [LedgerLine(*row) for row in rows]
