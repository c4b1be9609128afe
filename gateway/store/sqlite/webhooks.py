"""SQLite queries for webhooks: endpoints, the outbox written inside job transactions
(``emit_video_events``), delivery claims with leases and the attempt log.

Claims run under ``BEGIN IMMEDIATE`` like job claims, so processes sharing the file never lease
the same delivery, and the per-endpoint cap counts every live lease in the database.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from gateway.domain.webhooks import disables, event_body
from gateway.ids import new_id
from gateway.store.sqlite.database import raise_translated
from gateway.store.sqlite.rows import fetchall, fetchone
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


def insert_endpoint(connection: sqlite3.Connection, endpoint: WebhookEndpoint) -> None:
    try:
        connection.execute(
            f"INSERT INTO webhook_endpoints ({ENDPOINT_COLUMNS})"  # noqa: S608
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            endpoint_row(endpoint),
        )
    except sqlite3.IntegrityError as exc:
        raise_translated(exc, taken="the endpoint exists", missing=f"no team {endpoint.team_id!r}")


def get_endpoint(
    connection: sqlite3.Connection, endpoint_id: str, team_id: str | None
) -> WebhookEndpoint | None:
    sql, parameters = SELECT_ENDPOINT + " WHERE id = ?", [endpoint_id]
    if team_id is not None:
        sql += " AND team_id = ?"
        parameters.append(team_id)
    return _endpoint_or_none(connection, sql, parameters)


def list_endpoints(
    connection: sqlite3.Connection, team_id: str | None, after: str | None, limit: int
) -> tuple[list[WebhookEndpoint], bool]:
    conditions, parameters = [], []
    if team_id is not None:
        conditions.append("team_id = ?")
        parameters.append(team_id)
    if after is not None:
        conditions.append("id > ?")
        parameters.append(after)
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    rows = fetchall(
        connection, f"{SELECT_ENDPOINT}{where} ORDER BY id LIMIT ?", [*parameters, limit + 1]
    )
    return [endpoint_from_row(row) for row in rows[:limit]], len(rows) > limit


def count_endpoints(connection: sqlite3.Connection, team_id: str) -> int:
    row = fetchone(
        connection, "SELECT COUNT(*) FROM webhook_endpoints WHERE team_id = ?", (team_id,)
    )
    return int(row[0]) if row is not None else 0


def update_endpoint(
    connection: sqlite3.Connection,
    endpoint_id: str,
    now: int,
    name: str | None,
    url: str | None,
    event_types: tuple[str, ...] | None,
    status: EndpointStatus | None,
    disabled_reason: str | None,
) -> WebhookEndpoint | None:
    changes = endpoint_changes(
        now=now,
        name=name,
        url=url,
        event_types=event_types,
        status=status,
        disabled_reason=disabled_reason,
    )
    fields = sorted(changes)  # fixed names from endpoint_changes, never input
    return _endpoint_or_none(
        connection,
        f"UPDATE webhook_endpoints SET {', '.join(f'{f} = ?' for f in fields)}"  # noqa: S608
        f" WHERE id = ? RETURNING {ENDPOINT_COLUMNS}",
        (*(changes[f] for f in fields), endpoint_id),
    )


def replace_secret(
    connection: sqlite3.Connection,
    endpoint_id: str,
    sealed: str,
    hint: str,
    now: int,
    previous_sealed: str | None,
    previous_expires_at: float | None,
) -> WebhookEndpoint | None:
    return _endpoint_or_none(
        connection,
        "UPDATE webhook_endpoints SET secret_sealed = ?, secret_hint = ?, updated_at = ?,"  # noqa: S608
        " previous_secret_sealed = ?, previous_secret_expires_at = ?"
        f" WHERE id = ? RETURNING {ENDPOINT_COLUMNS}",
        (sealed, hint, now, previous_sealed, previous_expires_at, endpoint_id),
    )


def webhook_stats(connection: sqlite3.Connection) -> WebhookStats:
    row = fetchone(
        connection,
        "SELECT COUNT(*), MIN(d.created_at) FROM webhook_deliveries d"
        " JOIN webhook_endpoints e ON e.id = d.endpoint_id"
        " WHERE d.status = 'pending' AND e.status = 'enabled'",
    )
    disabled = fetchone(
        connection, "SELECT COUNT(*) FROM webhook_endpoints WHERE status = 'disabled'"
    )
    return WebhookStats(
        pending=int(row[0]) if row else 0,
        oldest_pending_created_at=row[1] if row else None,
        disabled_endpoints=int(disabled[0]) if disabled else 0,
    )


# -- the outbox: run inside the transaction that finishes the jobs ----------------------------


def emit_video_events(
    connection: sqlite3.Connection, event_type: str, job_ids: Sequence[str], now: float
) -> None:
    """Queue ``event_type`` for each of ``job_ids`` (those the decision core announces: see
    ``Ending.notify``; a deleted video is told nothing) to every endpoint of its team subscribed
    to it, in the caller's transaction: the event exists exactly when the state it announces
    was committed. Disabled endpoints queue too, for when they come back."""
    for job_id in job_ids:
        endpoints = fetchall(
            connection,
            "SELECT e.id, j.team_id FROM jobs j JOIN webhook_endpoints e ON e.team_id = j.team_id"
            " WHERE j.id = ? AND j.deleted_at IS NULL"
            " AND (',' || e.event_types || ',') LIKE ? ORDER BY e.id",
            (job_id, f"%,{event_type},%"),
        )
        if not endpoints:
            continue
        event_id = new_id("evt", now=now)
        inserted = connection.execute(
            "INSERT INTO webhook_events (id, team_id, type, video_id, body, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (video_id, type) DO NOTHING",
            (
                event_id,
                endpoints[0][1],
                event_type,
                job_id,
                event_body(event_id, event_type, int(now), job_id).decode(),
                int(now),
            ),
        ).rowcount
        if inserted != 1:
            continue  # already announced (a repeated transition emits nothing new)
        connection.executemany(
            "INSERT INTO webhook_deliveries (id, event_id, endpoint_id, status, created_at,"
            " next_attempt_at) VALUES (?, ?, ?, 'pending', ?, ?)",
            [
                (new_id("wh", now=now), event_id, endpoint_id, now, now)
                for endpoint_id, _ in endpoints
            ],
        )


def _endpoint_or_none(
    connection: sqlite3.Connection, sql: str, parameters: Sequence[Any]
) -> WebhookEndpoint | None:
    row = fetchone(connection, sql, parameters)
    return endpoint_from_row(row) if row is not None else None


def delete_endpoint(connection: sqlite3.Connection, endpoint_id: str) -> bool:
    # Foreign keys cascade from endpoints to deliveries to attempts.
    return (
        connection.execute("DELETE FROM webhook_endpoints WHERE id = ?", (endpoint_id,)).rowcount
        == 1
    )


def claim_deliveries(
    connection: sqlite3.Connection,
    owner: str,
    now: float,
    lease_seconds: float,
    limit: int,
    per_endpoint: int,
) -> list[WebhookDelivery]:
    ids = [
        row[0]
        for row in fetchall(
            connection,
            "SELECT id FROM (SELECT d.id, d.next_attempt_at,"
            " ROW_NUMBER() OVER (PARTITION BY d.endpoint_id ORDER BY d.next_attempt_at, d.id)"
            " + (SELECT COUNT(*) FROM webhook_deliveries x WHERE x.endpoint_id = d.endpoint_id"
            "    AND x.status = 'pending' AND x.locked_until >= ?) AS slot"
            " FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id"
            " WHERE d.status = 'pending' AND d.next_attempt_at <= ? AND e.status = 'enabled'"
            " AND (d.locked_until IS NULL OR d.locked_until < ?))"
            " WHERE slot <= ? ORDER BY next_attempt_at, id LIMIT ?",
            (now, now, now, per_endpoint, limit),
        )
    ]
    if not ids:
        return []
    marks = ", ".join("?" * len(ids))
    connection.execute(
        f"UPDATE webhook_deliveries SET lease_owner = ?, locked_until = ? WHERE id IN ({marks})",  # noqa: S608
        (owner, now + lease_seconds, *ids),
    )
    rows = fetchall(
        connection,
        f"{SELECT_DELIVERY} WHERE d.id IN ({marks}) ORDER BY d.next_attempt_at, d.id",
        ids,
    )
    return [delivery_from_row(row) for row in rows]


def record_attempt(
    connection: sqlite3.Connection,
    attempt: WebhookAttempt,
    owner: str,
    next_attempt_at: float | None,
    disable_after: int,
) -> AttemptResult | None:
    status, next_at, delivered_at = delivery_after(attempt, next_attempt_at)
    row = fetchone(
        connection,
        "UPDATE webhook_deliveries SET status = ?, attempts = attempts + 1,"
        " next_attempt_at = ?, delivered_at = ?, last_status_code = ?, last_error = ?,"
        " lease_owner = NULL, locked_until = NULL"
        " WHERE id = ? AND lease_owner = ? AND status = 'pending' RETURNING endpoint_id",
        (
            status,
            next_at,
            delivered_at,
            attempt.status_code,
            attempt.error,
            attempt.delivery_id,
            owner,
        ),
    )
    if row is None:
        return None
    endpoint_id = row[0]
    _log_attempt(connection, attempt)
    disabled = False
    if attempt.outcome == "delivered":
        connection.execute(
            "UPDATE webhook_endpoints SET consecutive_failures = 0 WHERE id = ?", (endpoint_id,)
        )
    elif attempt.error != EXPIRED:
        disabled = _count_failure(connection, endpoint_id, disable_after)
    delivery = fetchone(connection, SELECT_DELIVERY + " WHERE d.id = ?", (attempt.delivery_id,))
    assert delivery is not None  # updated above, in this transaction
    return AttemptResult(delivery=delivery_from_row(delivery), endpoint_disabled=disabled)


def _log_attempt(connection: sqlite3.Connection, attempt: WebhookAttempt) -> None:
    connection.execute(
        f"INSERT INTO webhook_attempts ({ATTEMPT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
        attempt_row(attempt),
    )


def _count_failure(connection: sqlite3.Connection, endpoint_id: str, disable_after: int) -> bool:
    """One more consecutive failure; whether the endpoint was disabled by it."""
    state = fetchone(
        connection,
        "SELECT status, consecutive_failures FROM webhook_endpoints WHERE id = ?",
        (endpoint_id,),
    )
    assert state is not None  # deliveries are deleted with their endpoint
    failures = int(state[1]) + 1
    disabled = disables(state[0], failures, disable_after)
    connection.execute(
        "UPDATE webhook_endpoints SET consecutive_failures = ?,"
        " status = CASE WHEN ? THEN 'disabled' ELSE status END,"
        " disabled_reason = CASE WHEN ? THEN ? ELSE disabled_reason END WHERE id = ?",
        (failures, disabled, disabled, DISABLED_REASON, endpoint_id),
    )
    return bool(disabled)


def list_deliveries(
    connection: sqlite3.Connection, endpoint_id: str, limit: int
) -> list[tuple[WebhookDelivery, list[WebhookAttempt]]]:
    deliveries = [
        delivery_from_row(row)
        for row in fetchall(
            connection,
            SELECT_DELIVERY + " WHERE d.endpoint_id = ? ORDER BY d.created_at DESC, d.id DESC"
            " LIMIT ?",
            (endpoint_id, limit),
        )
    ]
    out: list[tuple[WebhookDelivery, list[WebhookAttempt]]] = []
    for delivery in deliveries:
        attempts = fetchall(
            connection,
            f"SELECT {ATTEMPT_COLUMNS} FROM webhook_attempts WHERE delivery_id = ?"  # noqa: S608
            " ORDER BY id",
            (delivery.id,),
        )
        out.append((delivery, [attempt_from_row(a) for a in attempts]))
    return out


def resend_delivery(
    connection: sqlite3.Connection, endpoint_id: str, delivery_id: str, now: float
) -> WebhookDelivery | None:
    changed = connection.execute(
        "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = ?, created_at = ?,"
        " delivered_at = NULL WHERE id = ? AND endpoint_id = ?"
        " AND (status != 'pending' OR lease_owner IS NULL)",
        (now, now, delivery_id, endpoint_id),
    ).rowcount
    if changed != 1:
        return None
    row = fetchone(connection, SELECT_DELIVERY + " WHERE d.id = ?", (delivery_id,))
    return delivery_from_row(row) if row is not None else None
