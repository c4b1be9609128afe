"""PostgreSQL queries for money at the edges: settling a job whose submit outcome is unknown (by
an operator or at its deadline), attaching an upstream id that turned up later, and the
Idempotency-Keys bound to videos.

Each change is one transaction conditional on the job still being in the state it was decided
for (the row lock of its ``UPDATE`` orders it against a concurrent completion or failure), so a
resolution happens exactly once across connections and replicas.
"""

from __future__ import annotations

from gateway.domain.webhooks import VIDEO_FAILED
from gateway.store.base import UNKNOWN_OUTCOME_CODE, IdempotencyRecord, Job
from gateway.store.postgres_admission import AdmissionQueries, _drop_entry
from gateway.store.postgres_db import JOB_COLUMNS, SELECT_JOB, job_from_row
from gateway.store.postgres_webhooks import emit_video_events

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
        settled = "charged" if charge else "refunded"
        message = (
            message
            or f"The outcome of the upstream submit was unknown; {settled} by {actor}: {reason}"
        )
        async with self._transaction() as connection:
            row = await connection.fetchrow(
                "UPDATE jobs SET status = 'failed', error_code = $1, error_message = $2,"  # noqa: S608
                " completed_at = $3, updated_at = $3, lease_owner = NULL, locked_until = NULL,"
                " next_check_at = NULL, chain_json = COALESCE($5, chain_json)"
                " WHERE id = $4 AND status = 'submit_unknown'"
                f" RETURNING {JOB_COLUMNS}",
                UNKNOWN_OUTCOME_CODE,
                message,
                int(now),
                job_id,
                chain_json,
            )
            if row is None:
                return None
            job = job_from_row(row)
            followers = await connection.fetch(
                "UPDATE jobs SET status = 'failed', error_code = $1, error_message = $2,"
                " completed_at = $3, updated_at = $3 WHERE leader_id = $4"
                " AND cache_result = 'coalesced' AND status NOT IN ('completed', 'failed', 'rejected')"
                " RETURNING id",
                UNKNOWN_OUTCOME_CODE,
                message,
                int(now),
                job.id,
            )
            await emit_video_events(
                connection, VIDEO_FAILED, [job.id, *sorted(r[0] for r in followers)], now
            )
            total = job.cost_micros if amount is None else amount
            charged = await self._settle(connection, job, charge=total if charge else None, now=now)
            if charged is not None:
                await connection.execute(
                    "UPDATE ledger SET actor = $1, reason = $2 WHERE job_id = $3 AND kind = $4",
                    actor,
                    reason,
                    job.id,
                    "charge" if charge else "refund",
                )
            if job.cache_key is not None:
                await _drop_entry(connection, job)
            final = await connection.fetchrow(SELECT_JOB + " WHERE id = $1", job_id)
        assert final is not None  # updated above, in this transaction
        return job_from_row(final)

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
