"""SQLite queries for money at the edges: settling a job whose submit outcome is unknown (by an
operator or at its deadline), attaching an upstream id that turned up later, and the
Idempotency-Keys bound to videos.

Each change runs as one transaction on the writer's thread, conditional on the job still being
in the state it was decided for, so a resolution happens exactly once across processes.
"""

from __future__ import annotations

import sqlite3

from gateway.domain.outcomes import follower_failure, unknown_resolution, unknown_resolution_end
from gateway.store.base import IdempotencyRecord, Job
from gateway.store.sqlite_admission import (
    AdmissionQueries,
    apply_ending,
    end_leader,
    fail_followers,
    reread,
)
from gateway.store.sqlite_db import JOB_COLUMNS, SELECT_JOB, fetchone, job_from_row

_IDEMPOTENCY_COLUMNS = "key_id, idempotency_key, fingerprint, job_id, created_at, expires_at"


class OutcomeQueries(AdmissionQueries):
    async def resolve_unknown(
        self,
        job_id: str,
        *,
        charge: bool,
        actor: str,
        reason: str,
        now: float,
        amount: int | None = None,
        chain_json: str | None = None,
        message: str | None = None,
    ) -> Job | None:
        return await self._write(
            _resolve_unknown, job_id, charge, actor, reason, now, amount, chain_json, message
        )

    async def unknown_outcomes(self, limit: int) -> list[Job]:
        rows = await self._fetch(
            SELECT_JOB + " WHERE status = 'submit_unknown' ORDER BY created_at, id LIMIT ?",
            (limit,),
        )
        return [job_from_row(row) for row in rows]

    async def attach_upstream_id(self, job_id: str, upstream_id: str, now: float) -> Job | None:
        row = await self._write(
            fetchone,
            "UPDATE jobs SET upstream_id = ?, status = 'queued', error_code = NULL,"  # noqa: S608
            " error_message = NULL, updated_at = ?, refreshed_at = NULL, next_check_at = ?,"
            " lease_owner = NULL, locked_until = NULL, attempts = 0"
            " WHERE id = ? AND status IN ('submitting', 'submit_unknown')"
            f" RETURNING {JOB_COLUMNS}",
            (upstream_id, int(now), now, job_id),
        )
        return job_from_row(row) if row is not None else None

    async def idempotency_record(
        self, key_id: str, key: str, now: float
    ) -> IdempotencyRecord | None:
        row = await self._fetch_one(
            f"SELECT {_IDEMPOTENCY_COLUMNS} FROM idempotency_keys"  # noqa: S608
            " WHERE key_id = ? AND idempotency_key = ? AND expires_at > ?",
            (key_id, key, now),
        )
        return IdempotencyRecord(*row) if row is not None else None

    async def expire_idempotency_keys(self, now: float, limit: int) -> int:
        return await self._write(
            _delete_count,
            "DELETE FROM idempotency_keys WHERE rowid IN"
            " (SELECT rowid FROM idempotency_keys WHERE expires_at <= ? LIMIT ?)",
            (now, limit),
        )


def _delete_count(connection: sqlite3.Connection, sql: str, parameters: tuple[float, int]) -> int:
    return int(connection.execute(sql, parameters).rowcount)


def _resolve_unknown(
    connection: sqlite3.Connection,
    job_id: str,
    charge: bool,
    actor: str,
    reason: str,
    now: float,
    amount: int | None = None,
    chain_json: str | None = None,
    message: str | None = None,
) -> Job | None:
    end = unknown_resolution_end(
        charge=charge, actor=actor, reason=reason, now=now, message=message
    )
    condition = " AND status = 'submit_unknown'"
    job = end_leader(connection, job_id, end, condition, (), chain_json)
    if job is None:
        return None
    followers = fail_followers(connection, job.id, follower_failure(end))
    ending = unknown_resolution(
        job, followers, charge=charge, amount=amount, actor=actor, reason=reason, now=now
    )
    apply_ending(connection, job, ending, now)
    return reread(connection, job_id)
