"""SQLite: the Idempotency-Keys bound to videos, and the jobs whose submit outcome is unknown.

The binding runs inside the admission's ``BEGIN IMMEDIATE`` transaction, which serialises it
against every other writer of the file; whether a stored binding refuses or is forgotten is
``gateway.domain.idempotency``'s rule.
"""

from __future__ import annotations

import sqlite3
from dataclasses import astuple

from gateway.domain.idempotency import binding, is_live
from gateway.store.base import IdempotencyKeyTaken, IdempotencyRecord, Job
from gateway.store.sqlite.rows import SELECT_JOB, fetchall, fetchone, job_from_row

_COLUMNS = "key_id, idempotency_key, fingerprint, job_id, created_at, expires_at"
_SELECT = f"SELECT {_COLUMNS} FROM idempotency_keys WHERE key_id = ? AND idempotency_key = ?"  # noqa: S608


def bind_idempotency_key(
    connection: sqlite3.Connection, record: IdempotencyRecord, now: float
) -> None:
    """Bind the key to the new video, or raise ``IdempotencyKeyTaken`` (nothing is created)."""
    stored = _stored(connection, record.key_id, record.key)
    verdict = binding(stored.expires_at if stored is not None else None, now)
    if verdict == "refuse" and stored is not None:
        raise IdempotencyKeyTaken(stored)
    if verdict == "replace":
        connection.execute(
            "DELETE FROM idempotency_keys WHERE key_id = ? AND idempotency_key = ?",
            (record.key_id, record.key),
        )
    connection.execute(
        f"INSERT INTO idempotency_keys ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",  # noqa: S608
        astuple(record),  # the record's fields are the columns, in order
    )


def idempotency_record(
    connection: sqlite3.Connection, key_id: str, key: str, now: float
) -> IdempotencyRecord | None:
    """The live binding of ``key`` for the calling key ``key_id``, if any."""
    stored = _stored(connection, key_id, key)
    return stored if stored is not None and is_live(stored.expires_at, now) else None


def forget_idempotency_key(connection: sqlite3.Connection, job_id: str) -> None:
    """Forget the keys bound to ``job_id`` (a rejected submit: a retry may try again)."""
    connection.execute("DELETE FROM idempotency_keys WHERE job_id = ?", (job_id,))


def expire_idempotency_keys(connection: sqlite3.Connection, now: float, limit: int) -> int:
    """Delete up to ``limit`` bindings no longer live (``expires_at <= now``: see ``is_live``)."""
    return int(
        connection.execute(
            "DELETE FROM idempotency_keys WHERE rowid IN"
            " (SELECT rowid FROM idempotency_keys WHERE expires_at <= ? LIMIT ?)",
            (now, limit),
        ).rowcount
    )


def unknown_outcomes(connection: sqlite3.Connection, limit: int) -> list[Job]:
    rows = fetchall(
        connection,
        SELECT_JOB + " WHERE status = 'submit_unknown' ORDER BY created_at, id LIMIT ?",
        (limit,),
    )
    return [job_from_row(row) for row in rows]


def _stored(connection: sqlite3.Connection, key_id: str, key: str) -> IdempotencyRecord | None:
    row = fetchone(connection, _SELECT, (key_id, key))
    return IdempotencyRecord(*row) if row is not None else None
