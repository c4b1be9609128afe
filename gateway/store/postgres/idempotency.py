"""PostgreSQL side of Idempotency-Keys and unknown outcomes: binding a key to the video an
admission creates, reading and expiring bindings, and listing jobs whose submit is unknown.

A binding is an insert whose primary key (calling key, Idempotency-Key) makes a concurrent
admission with the same key wait until the other transaction ends, then see its row (or, if it
rolled back, insert).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.store.postgres.rows import SELECT_JOB, changed_count, job_from_row
from gateway.store.records import IdempotencyKeyTaken, IdempotencyRecord, Job

if TYPE_CHECKING:
    from gateway.store.postgres.database import Connection, Executor

_COLUMNS = "key_id, idempotency_key, fingerprint, job_id, created_at, expires_at"
_SELECT = f"SELECT {_COLUMNS} FROM idempotency_keys"  # noqa: S608 - constant columns


async def bind_idempotency_key(
    connection: Connection, record: IdempotencyRecord, now: float
) -> None:
    """Bind the key to the new video, or raise ``IdempotencyKeyTaken`` (nothing is created)."""
    await connection.execute(
        "DELETE FROM idempotency_keys WHERE key_id = $1 AND idempotency_key = $2"
        " AND expires_at <= $3",
        record.key_id,
        record.key,
        now,
    )
    inserted = await connection.fetchval(
        f"INSERT INTO idempotency_keys ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"  # noqa: S608
        " ON CONFLICT DO NOTHING RETURNING 1",
        record.key_id,
        record.key,
        record.fingerprint,
        record.job_id,
        record.created_at,
        record.expires_at,
    )
    if inserted is not None:
        return
    row = await connection.fetchrow(
        _SELECT + " WHERE key_id = $1 AND idempotency_key = $2", record.key_id, record.key
    )
    if row is None:  # pragma: no cover - expired and deleted in between: vanishingly rare
        raise IdempotencyKeyTaken(record)
    raise IdempotencyKeyTaken(IdempotencyRecord(*row))


async def forget_idempotency_key(connection: Connection, job_id: str) -> None:
    """Forget the keys bound to ``job_id`` (a rejected submit: a retry may try again)."""
    await connection.execute("DELETE FROM idempotency_keys WHERE job_id = $1", job_id)


async def idempotency_record(
    db: Executor, key_id: str, key: str, now: float
) -> IdempotencyRecord | None:
    row = await db.fetchrow(
        _SELECT + " WHERE key_id = $1 AND idempotency_key = $2 AND expires_at > $3",
        key_id,
        key,
        now,
    )
    return IdempotencyRecord(*row) if row is not None else None


async def expire_idempotency_keys(db: Executor, now: float, limit: int) -> int:
    tag = await db.execute(
        "DELETE FROM idempotency_keys WHERE ctid IN (SELECT ctid FROM idempotency_keys"
        " WHERE expires_at <= $1 LIMIT $2)",
        now,
        limit,
    )
    return changed_count(tag)


async def unknown_outcomes(db: Executor, limit: int) -> list[Job]:
    rows = await db.fetch(
        SELECT_JOB + " WHERE status = 'submit_unknown' ORDER BY created_at, id LIMIT $1", limit
    )
    return [job_from_row(row) for row in rows]
