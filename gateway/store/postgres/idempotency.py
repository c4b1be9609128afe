"""PostgreSQL side of Idempotency-Keys and unknown outcomes: binding a key to the video an
admission creates, reading and expiring bindings, and listing jobs whose submit is unknown.

A binding is first an insert whose primary key (calling key, Idempotency-Key) makes a concurrent
admission with the same key wait until the other transaction ends; when a binding is already
stored, it is locked and ``gateway.domain.idempotency`` says whether it refuses the new one or,
expired, is replaced by it.
"""

from __future__ import annotations

from dataclasses import astuple
from typing import TYPE_CHECKING

from gateway.domain.idempotency import binding, is_live
from gateway.store.postgres.rows import SELECT_JOB, changed_count, job_from_row
from gateway.store.records import IdempotencyKeyTaken, IdempotencyRecord, Job

if TYPE_CHECKING:
    from gateway.store.postgres.database import Connection, Executor

_COLUMNS = "key_id, idempotency_key, fingerprint, job_id, created_at, expires_at"
_SELECT = (
    f"SELECT {_COLUMNS} FROM idempotency_keys"  # noqa: S608 - constant columns
    " WHERE key_id = $1 AND idempotency_key = $2"
)


async def bind_idempotency_key(
    connection: Connection, record: IdempotencyRecord, now: float
) -> None:
    """Bind the key to the new video, or raise ``IdempotencyKeyTaken`` (nothing is created)."""
    inserted = await connection.fetchval(
        f"INSERT INTO idempotency_keys ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"  # noqa: S608
        " ON CONFLICT DO NOTHING RETURNING 1",
        *astuple(record),  # the record's fields are the columns, in order
    )
    if inserted is not None:
        return
    # Locked: of two admissions finding one expired binding, one replaces it, the other then
    # reads the replacement (live) and is refused.
    row = await connection.fetchrow(_SELECT + " FOR UPDATE", record.key_id, record.key)
    stored = IdempotencyRecord(*row) if row is not None else None
    verdict = binding(stored.expires_at if stored is not None else None, now)
    if verdict == "refuse" and stored is not None:
        raise IdempotencyKeyTaken(stored)
    if verdict == "replace":
        await connection.execute(
            "UPDATE idempotency_keys SET fingerprint = $3, job_id = $4, created_at = $5,"
            " expires_at = $6 WHERE key_id = $1 AND idempotency_key = $2",
            *astuple(record),
        )
        return
    raise IdempotencyKeyTaken(record)  # pragma: no cover - forgotten since the insert: rare


async def forget_idempotency_key(connection: Connection, job_id: str) -> None:
    """Forget the keys bound to ``job_id`` (a rejected submit: a retry may try again)."""
    await connection.execute("DELETE FROM idempotency_keys WHERE job_id = $1", job_id)


async def idempotency_record(
    db: Executor, key_id: str, key: str, now: float
) -> IdempotencyRecord | None:
    """The live binding of ``key`` for the calling key ``key_id``, if any."""
    row = await db.fetchrow(_SELECT, key_id, key)
    stored = IdempotencyRecord(*row) if row is not None else None
    return stored if stored is not None and is_live(stored.expires_at, now) else None


async def expire_idempotency_keys(db: Executor, now: float, limit: int) -> int:
    """Delete up to ``limit`` bindings no longer live (``expires_at <= now``: see ``is_live``)."""
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
