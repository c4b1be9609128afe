"""PostgreSQL queries for webhooks: endpoints, the outbox written inside job transactions
(``emit_video_events``), delivery claims with leases and the attempt log.

Claims are serialised across every replica by one transaction-scoped advisory lock (a claim is
a short statement, taken once per idle period), so the per-endpoint cap counts every live lease
in the database and no delivery is leased twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import asyncpg

from gateway.domain.webhooks import disables, event_body
from gateway.ids import new_id
from gateway.store.postgres.database import raise_translated
from gateway.store.postgres.rows import changed_one
from gateway.store.webhook_records import (
    DISABLED_REASON,
    EXPIRED,
    AttemptResult,
    EndpointStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookStats,
)
from gateway.store.webhook_rows import (
    ATTEMPT_COLUMNS,
    ENDPOINT_COLUMNS,
    SELECT_DELIVERY,
    SELECT_ENDPOINT,
    attempt_from_row,
    attempt_row,
    delivery_after,
    delivery_from_row,
    endpoint_changes,
    endpoint_from_row,
    endpoint_row,
)

if TYPE_CHECKING:
    from gateway.store.postgres.database import Connection, Executor

# First key of pg_advisory_xact_lock(int, int) for delivery claims ("gw" + 3; in-flight counts
# are "gw" + 2, cache keys "gw" + 1).
CLAIM_LOCK = 0x67770003


async def insert_endpoint(db: Executor, endpoint: WebhookEndpoint) -> None:
    marks = ", ".join(f"${n}" for n in range(1, 15))
    try:
        await db.execute(
            f"INSERT INTO webhook_endpoints ({ENDPOINT_COLUMNS}) VALUES ({marks})",  # noqa: S608
            *endpoint_row(endpoint),
        )
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise_translated(exc, taken="the endpoint exists", missing=f"no team {endpoint.team_id!r}")


async def get_endpoint(
    db: Executor, endpoint_id: str, team_id: str | None = None
) -> WebhookEndpoint | None:
    if team_id is None:
        row = await db.fetchrow(SELECT_ENDPOINT + " WHERE id = $1", endpoint_id)
    else:
        row = await db.fetchrow(
            SELECT_ENDPOINT + " WHERE id = $1 AND team_id = $2", endpoint_id, team_id
        )
    return endpoint_from_row(row) if row is not None else None


async def list_endpoints(
    db: Executor, team_id: str | None, *, after: str | None = None, limit: int = 100
) -> tuple[list[WebhookEndpoint], bool]:
    rows = await db.fetch(
        SELECT_ENDPOINT + " WHERE ($1::text IS NULL OR team_id = $1)"
        " AND ($2::text IS NULL OR id > $2) ORDER BY id LIMIT $3",
        team_id,
        after,
        limit + 1,
    )
    return [endpoint_from_row(row) for row in rows[:limit]], len(rows) > limit


async def count_endpoints(db: Executor, team_id: str) -> int:
    row = await db.fetchrow("SELECT COUNT(*) FROM webhook_endpoints WHERE team_id = $1", team_id)
    return int(row[0]) if row is not None else 0


async def update_endpoint(
    db: Executor,
    endpoint_id: str,
    now: int,
    name: str | None = None,
    url: str | None = None,
    event_types: tuple[str, ...] | None = None,
    status: EndpointStatus | None = None,
    disabled_reason: str | None = None,
) -> WebhookEndpoint | None:
    changes = endpoint_changes(
        now=now,
        name=name,
        url=url,
        event_types=event_types,
        status=status,
        disabled_reason=disabled_reason,
    )
    fields = sorted(changes)  # fixed names from above, never input
    assignments = ", ".join(f"{f} = ${n}" for n, f in enumerate(fields, start=2))
    row = await db.fetchrow(
        f"UPDATE webhook_endpoints SET {assignments} WHERE id = $1"  # noqa: S608
        f" RETURNING {ENDPOINT_COLUMNS}",
        endpoint_id,
        *(changes[f] for f in fields),
    )
    return endpoint_from_row(row) if row is not None else None


async def replace_secret(
    db: Executor,
    endpoint_id: str,
    sealed: str,
    hint: str,
    now: int,
    previous_sealed: str | None,
    previous_expires_at: float | None,
) -> WebhookEndpoint | None:
    row = await db.fetchrow(
        "UPDATE webhook_endpoints SET secret_sealed = $2, secret_hint = $3,"  # noqa: S608
        " updated_at = $4, previous_secret_sealed = $5, previous_secret_expires_at = $6"
        f" WHERE id = $1 RETURNING {ENDPOINT_COLUMNS}",
        endpoint_id,
        sealed,
        hint,
        now,
        previous_sealed,
        previous_expires_at,
    )
    return endpoint_from_row(row) if row is not None else None


async def delete_endpoint(db: Executor, endpoint_id: str) -> bool:
    tag = await db.execute("DELETE FROM webhook_endpoints WHERE id = $1", endpoint_id)
    return changed_one(tag)


async def claim_deliveries(
    connection: Connection,
    owner: str,
    now: float,
    lease_seconds: float,
    limit: int,
    per_endpoint: int,
) -> list[WebhookDelivery]:
    await connection.execute("SELECT pg_advisory_xact_lock($1, 0)", CLAIM_LOCK)
    rows = await connection.fetch(
        "WITH due AS (SELECT id, next_attempt_at FROM (SELECT d.id, d.next_attempt_at,"
        " ROW_NUMBER() OVER (PARTITION BY d.endpoint_id ORDER BY d.next_attempt_at, d.id)"
        " + (SELECT COUNT(*) FROM webhook_deliveries x WHERE x.endpoint_id = d.endpoint_id"
        "    AND x.status = 'pending' AND x.locked_until >= $3) AS slot"
        " FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id"
        " WHERE d.status = 'pending' AND d.next_attempt_at <= $3 AND e.status = 'enabled'"
        " AND (d.locked_until IS NULL OR d.locked_until < $3)) ranked"
        " WHERE slot <= $4 ORDER BY next_attempt_at, id LIMIT $5)"
        " UPDATE webhook_deliveries SET lease_owner = $1, locked_until = $2 FROM due"
        " WHERE webhook_deliveries.id = due.id RETURNING webhook_deliveries.id",
        owner,
        now + lease_seconds,
        now,
        per_endpoint,
        max(limit, 0),
    )
    if not rows:
        return []
    claimed = await connection.fetch(
        SELECT_DELIVERY + " WHERE d.id = ANY($1::text[]) ORDER BY d.next_attempt_at, d.id",
        [row[0] for row in rows],
    )
    return [delivery_from_row(row) for row in claimed]


async def record_attempt(
    connection: Connection,
    attempt: WebhookAttempt,
    owner: str,
    next_attempt_at: float | None,
    disable_after: int,
) -> AttemptResult | None:
    status, next_at, delivered_at = delivery_after(attempt, next_attempt_at)
    row = await connection.fetchrow(
        "UPDATE webhook_deliveries SET status = $1, attempts = attempts + 1,"
        " next_attempt_at = $2, delivered_at = $3, last_status_code = $4,"
        " last_error = $5, lease_owner = NULL, locked_until = NULL"
        " WHERE id = $6 AND lease_owner = $7 AND status = 'pending' RETURNING endpoint_id",
        status,
        next_at,
        delivered_at,
        attempt.status_code,
        attempt.error,
        attempt.delivery_id,
        owner,
    )
    if row is None:
        return None
    endpoint_id = row[0]
    await _log_attempt(connection, attempt)
    disabled = False
    if attempt.outcome == "delivered":
        await connection.execute(
            "UPDATE webhook_endpoints SET consecutive_failures = 0 WHERE id = $1", endpoint_id
        )
    elif attempt.error != EXPIRED:
        disabled = await _count_failure(connection, endpoint_id, disable_after)
    delivery = await connection.fetchrow(SELECT_DELIVERY + " WHERE d.id = $1", attempt.delivery_id)
    assert delivery is not None  # updated above, in this transaction
    return AttemptResult(delivery=delivery_from_row(delivery), endpoint_disabled=disabled)


async def list_deliveries(
    db: Executor, endpoint_id: str, *, limit: int = 100
) -> list[tuple[WebhookDelivery, list[WebhookAttempt]]]:
    deliveries = [
        delivery_from_row(row)
        for row in await db.fetch(
            SELECT_DELIVERY + " WHERE d.endpoint_id = $1"
            " ORDER BY d.created_at DESC, d.id DESC LIMIT $2",
            endpoint_id,
            limit,
        )
    ]
    attempts: dict[str, list[WebhookAttempt]] = {d.id: [] for d in deliveries}
    for row in await db.fetch(
        f"SELECT {ATTEMPT_COLUMNS} FROM webhook_attempts"  # noqa: S608
        " WHERE delivery_id = ANY($1::text[]) ORDER BY id",
        list(attempts),
    ):
        attempts[row[0]].append(attempt_from_row(row))
    return [(d, attempts[d.id]) for d in deliveries]


async def resend_delivery(
    db: Executor, endpoint_id: str, delivery_id: str, now: float
) -> WebhookDelivery | None:
    tag = await db.execute(
        "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = $1,"
        " created_at = $1, delivered_at = NULL WHERE id = $2 AND endpoint_id = $3"
        " AND (status != 'pending' OR lease_owner IS NULL)",
        now,
        delivery_id,
        endpoint_id,
    )
    if not changed_one(tag):
        return None
    row = await db.fetchrow(SELECT_DELIVERY + " WHERE d.id = $1", delivery_id)
    return delivery_from_row(row) if row is not None else None


async def webhook_stats(db: Executor) -> WebhookStats:
    row = await db.fetchrow(
        "SELECT COUNT(*), MIN(d.created_at) FROM webhook_deliveries d"
        " JOIN webhook_endpoints e ON e.id = d.endpoint_id"
        " WHERE d.status = 'pending' AND e.status = 'enabled'"
    )
    disabled = await db.fetchrow("SELECT COUNT(*) FROM webhook_endpoints WHERE status = 'disabled'")
    return WebhookStats(
        pending=int(row[0]) if row else 0,
        oldest_pending_created_at=row[1] if row else None,
        disabled_endpoints=int(disabled[0]) if disabled else 0,
    )


async def _log_attempt(connection: Connection, attempt: WebhookAttempt) -> None:
    await connection.execute(
        f"INSERT INTO webhook_attempts ({ATTEMPT_COLUMNS})"  # noqa: S608
        " VALUES ($1, $2, $3, $4, $5, $6, $7)",
        *attempt_row(attempt),
    )


async def _count_failure(connection: Connection, endpoint_id: str, disable_after: int) -> bool:
    """One more consecutive failure; whether the endpoint was disabled by it."""
    state = await connection.fetchrow(
        "SELECT status, consecutive_failures FROM webhook_endpoints WHERE id = $1 FOR UPDATE",
        endpoint_id,
    )
    assert state is not None  # deliveries are deleted with their endpoint
    failures = int(state[1]) + 1
    disabled = disables(state[0], failures, disable_after)
    await connection.execute(
        "UPDATE webhook_endpoints SET consecutive_failures = $1,"
        " status = CASE WHEN $2 THEN 'disabled' ELSE status END,"
        " disabled_reason = CASE WHEN $2 THEN $3 ELSE disabled_reason END WHERE id = $4",
        failures,
        disabled,
        DISABLED_REASON,
        endpoint_id,
    )
    return disabled


# -- the outbox: run inside the transaction that finishes the jobs ----------------------------


async def emit_video_events(
    connection: Connection, event_type: str, job_ids: Sequence[str], now: float
) -> None:
    """The outbox: ``event_type`` for each of ``job_ids`` (``Ending.notify``'s; not deleted
    ones) to each subscribed endpoint of its team, written in the caller's transaction, so it
    exists exactly when the ending it announces committed (disabled endpoints queue too)."""
    for job_id in job_ids:
        endpoints = await connection.fetch(
            "SELECT e.id, j.team_id FROM jobs j JOIN webhook_endpoints e ON e.team_id = j.team_id"
            " WHERE j.id = $1 AND j.deleted_at IS NULL"
            " AND (',' || e.event_types || ',') LIKE $2 ORDER BY e.id",
            job_id,
            f"%,{event_type},%",
        )
        if not endpoints:
            continue
        event_id = new_id("evt", now=now)
        tag = await connection.execute(
            "INSERT INTO webhook_events (id, team_id, type, video_id, body, created_at)"
            " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (video_id, type) DO NOTHING",
            event_id,
            endpoints[0][1],
            event_type,
            job_id,
            event_body(event_id, event_type, int(now), job_id).decode(),
            int(now),
        )
        if not changed_one(tag):
            continue  # already announced (a repeated transition emits nothing new)
        await connection.executemany(
            "INSERT INTO webhook_deliveries (id, event_id, endpoint_id, status, created_at,"
            " next_attempt_at) VALUES ($1, $2, $3, 'pending', $4, $4)",
            [(new_id("wh", now=now), event_id, row[0], now) for row in endpoints],
        )
