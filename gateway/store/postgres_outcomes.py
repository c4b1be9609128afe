"""PostgreSQL queries for money at the edges: settling a job whose submit outcome is unknown (by
an operator or at its deadline), attaching an upstream id that turned up later, and the
Idempotency-Keys bound to videos.

Each change is one transaction conditional on the job still being in the state it was decided
for (the row lock of its ``UPDATE`` orders it against a concurrent completion or failure), so a
resolution happens exactly once across connections and replicas.
"""

from __future__ import annotations

from gateway.domain.outcomes import follower_failure, unknown_resolution, unknown_resolution_end
from gateway.store.base import IdempotencyRecord, Job
from gateway.store.postgres_admission import (
    AdmissionQueries,
    apply_ending,
    end_leader,
    fail_followers,
    reread,
)
from gateway.store.postgres_db import JOB_COLUMNS, SELECT_JOB, job_from_row

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
        end = unknown_resolution_end(
            charge=charge, actor=actor, reason=reason, now=now, message=message
        )
        condition = " AND status = 'submit_unknown'"
        async with self._transaction() as connection:
            job = await end_leader(connection, job_id, end, condition, (), chain_json)
            if job is None:
                return None
            followers = await fail_followers(connection, job.id, follower_failure(end))
            ending = unknown_resolution(
                job, followers, charge=charge, amount=amount, actor=actor, reason=reason, now=now
            )
            await apply_ending(connection, job, ending, now)
            return await reread(connection, job_id)

    async def unknown_outcomes(self, limit: int) -> list[Job]:
        rows = await self._fetch(
            SELECT_JOB + " WHERE status = 'submit_unknown' ORDER BY created_at, id LIMIT $1",
            limit,
        )
        return [job_from_row(row) for row in rows]

    async def attach_upstream_id(self, job_id: str, upstream_id: str, now: float) -> Job | None:
        row = await self._fetch_one(
            "UPDATE jobs SET upstream_id = $1, status = 'queued', error_code = NULL,"  # noqa: S608
            " error_message = NULL, updated_at = $2, refreshed_at = NULL, next_check_at = $3,"
            " lease_owner = NULL, locked_until = NULL, attempts = 0"
            " WHERE id = $4 AND status IN ('submitting', 'submit_unknown')"
            f" RETURNING {JOB_COLUMNS}",
            upstream_id,
            int(now),
            now,
            job_id,
        )
        return job_from_row(row) if row is not None else None

    async def idempotency_record(
        self, key_id: str, key: str, now: float
    ) -> IdempotencyRecord | None:
        row = await self._fetch_one(
            f"SELECT {_IDEMPOTENCY_COLUMNS} FROM idempotency_keys"  # noqa: S608
            " WHERE key_id = $1 AND idempotency_key = $2 AND expires_at > $3",
            key_id,
            key,
            now,
        )
        return IdempotencyRecord(*row) if row is not None else None

    async def expire_idempotency_keys(self, now: float, limit: int) -> int:
        tag = await self._execute(
            "DELETE FROM idempotency_keys WHERE ctid IN (SELECT ctid FROM idempotency_keys"
            " WHERE expires_at <= $1 LIMIT $2)",
            now,
            limit,
        )
        return int(tag.split()[-1])
