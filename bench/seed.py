"""Bulk-seeding a gateway database with finished videos, fast: straight into the store's tables.

Every seeded video is what the gateway itself leaves behind for a finished, charged, cached job:
a ``jobs`` row (its canonical request, a cache key, the asset it points at), an ``assets`` row,
a ``cache_entries`` row and six ledger rows (reserve at creation, charge at completion; key,
team and org scopes). The budget counters are then recomputed from the whole ledger, so
``gateway audit`` finds the seeded database clean. Rows go in with ``executemany`` (SQLite) or
``COPY`` (PostgreSQL, ``copy_records_to_table``), in batches; the media files are not written
(the scale scenario measures rows, not blobs).

Videos are spread over ``MONTHS`` months ending now, round-robin over ``TEAMS`` teams of
``KEYS // TEAMS`` keys each. Keys are ``gw-bench-scale-<n>`` padded to a well-formed length;
only their sha256 is stored, as the gateway does.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg

from gateway.domain.api_keys import display_prefix, hash_key
from gateway.domain.budgets import ORG_ID, period_of
from gateway.domain.cache_keys import cache_key
from gateway.domain.video_request import VideoRequest
from gateway.ids import new_id
from gateway.store.base import Job
from gateway.store.opening import open_store
from gateway.store.postgres.rows import JOB_COLUMN_NAMES as PG_JOB_COLUMNS
from gateway.store.postgres.rows import job_row as pg_job_row
from gateway.store.sqlite import parse_sqlite_url
from gateway.store.sqlite.rows import INSERT_JOB as SQLITE_INSERT_JOB
from gateway.store.sqlite.rows import job_row as sqlite_job_row

TEAMS = 100
KEYS = 1000
MONTHS = 12
BATCH = 20_000
MODEL = "doubao-seedance-2-0-fast-260128"
PRICE_MICROS = 565_000  # 5 s of 720p on the fast 2.0 model
VIDEO_BYTES = 1024 * 1024
DAY = 86400.0
LEDGER_COLUMNS = (
    "job_id",
    "kind",
    "scope",
    "scope_id",
    "day",
    "month",
    "reserved_delta",
    "spent_delta",
    "created_at",
)
INSERT_LEDGER = f"INSERT INTO ledger ({', '.join(LEDGER_COLUMNS)}) VALUES ({', '.join('?' * 9)})"
# Recompute every counter from the ledger (what `gateway audit` checks them against).
RECOUNT = (
    "DELETE FROM budget_counters",
    "INSERT INTO budget_counters (scope, scope_id, window_kind, period, reserved, spent)"
    " SELECT scope, scope_id, 'total', 'total', SUM(reserved_delta), SUM(spent_delta)"
    " FROM ledger GROUP BY scope, scope_id"
    " UNION ALL SELECT scope, scope_id, 'day', day, SUM(reserved_delta), SUM(spent_delta)"
    " FROM ledger GROUP BY scope, scope_id, day"
    " UNION ALL SELECT scope, scope_id, 'month', month, SUM(reserved_delta), SUM(spent_delta)"
    " FROM ledger GROUP BY scope, scope_id, month",
)


def key_plaintext(n: int) -> str:
    """The seeded key number ``n`` (well-formed: ``gw-`` and 20+ URL-safe characters)."""
    return f"gw-bench-scale-key-{n:08d}-0123456789"


def team_name(n: int) -> str:
    return f"scale-team-{n:03d}"


@dataclass(frozen=True)
class Principals:
    """Seeded team ids and key ids, key ``k`` belonging to team ``k % TEAMS``."""

    team_ids: list[str]
    key_ids: list[str]


@dataclass
class Batch:
    jobs: list[Job]
    ledger: list[tuple[Any, ...]]
    cache: list[tuple[Any, ...]]
    assets: list[tuple[Any, ...]]


def principals(now: float) -> tuple[Principals, list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Ids, team rows and key rows (deterministic names; ids made like the gateway's)."""
    created = int(now - MONTHS * 31 * DAY)
    team_ids = [new_id("team", now=created) for _ in range(TEAMS)]
    key_ids = [new_id("key", now=created) for _ in range(KEYS)]
    teams = [(team_ids[t], team_name(t), created) for t in range(TEAMS)]
    keys = [
        (
            key_ids[k],
            team_ids[k % TEAMS],
            f"scale-key-{k}",
            hash_key(key_plaintext(k)),
            display_prefix(key_plaintext(k)),
            created,
        )
        for k in range(KEYS)
    ]
    return Principals(team_ids, key_ids), teams, keys


def videos(who: Principals, start: int, count: int, total: int, now: float) -> Iterator[Batch]:
    """Videos ``start`` .. ``start + count - 1`` of a database that will hold ``total``, in
    batches; video ``i`` is created at ``now - span + i * span / total`` (time-ordered ids)."""
    span = MONTHS * 30 * DAY
    batch = Batch([], [], [], [])
    periods: dict[int, tuple[str, str]] = {}  # UTC day number -> (day, month): strftime is dear
    for i in range(start, start + count):
        created = now - span + (i + 0.5) * span / total
        k = i % KEYS
        team_id, key_id = who.team_ids[k % TEAMS], who.key_ids[k]
        request = VideoRequest(model=MODEL, prompt=f"scale video {i}: a paper boat", seed=i)
        ckey = cache_key(request, scope="team", scope_id=team_id)
        asset = hashlib.sha256(b"scale-video-%d" % i).hexdigest()
        finished = created + 60.0
        job = _completed_job(i, created, team_id, key_id, request, ckey, asset)
        batch.jobs.append(job)
        day_number = int(created // DAY)
        if day_number not in periods:
            periods[day_number] = (period_of("day", created), period_of("month", created))
        day, month = periods[day_number]
        batch.ledger += _ledger_rows(job, (day, month), created, finished)
        batch.cache.append((ckey, job.id, "completed", created, None))
        batch.assets.append((asset, VIDEO_BYTES, "video/mp4", 1, int(finished)))
        if len(batch.jobs) >= BATCH:
            yield batch
            batch = Batch([], [], [], [])
    if batch.jobs:
        yield batch


def _completed_job(
    i: int,
    created: float,
    team_id: str,
    key_id: str,
    request: VideoRequest,
    ckey: str,
    asset: str,
) -> Job:
    """Video ``i``: completed and charged a minute after it was created."""
    finished = created + 60.0
    return Job(
        id=new_id("video", now=created),
        team_id=team_id,
        key_id=key_id,
        model=MODEL,
        request=request,
        status="completed",
        created_at=int(created),
        updated_at=int(finished),
        progress=100,
        upstream_id=f"seed_{i}",
        completed_at=int(finished),
        refreshed_at=finished,
        upstream_finished_at=finished - 1,
        video_asset=asset,
        price_micros=PRICE_MICROS,
        cost_micros=PRICE_MICROS,
        charged_micros=PRICE_MICROS,
        money_state="charged",
        reserved_at=created,
        delivered_seconds=5,
        cache_key=ckey,
        cache_result="miss",
    )


def _ledger_rows(
    job: Job, period: tuple[str, str], created: float, finished: float
) -> list[tuple[Any, ...]]:
    """The reservation and the charge of a completed job, in each of its scopes."""
    day, month = period
    rows: list[tuple[Any, ...]] = []
    for scope, scope_id in (("key", job.key_id), ("team", job.team_id), ("org", ORG_ID)):
        rows.append((job.id, "reserve", scope, scope_id, day, month, PRICE_MICROS, 0, created))
        rows.append(
            (job.id, "charge", scope, scope_id, day, month, -PRICE_MICROS, PRICE_MICROS, finished)
        )
    return rows


async def migrate(url: str) -> None:
    """Create the schema the way the gateway does (its own migrations)."""
    store = await open_store(url)
    try:
        await store.migrate()
    finally:
        await store.close()


# -- SQLite ---------------------------------------------------------------------------------


def seed_sqlite(url: str, who: Principals | None, start: int, count: int, total: int) -> Principals:
    """Add ``count`` videos (and, the first time, the teams and keys) to a migrated SQLite
    database; returns the principals to pass to the next call."""
    import sqlite3

    now = time.time()
    db = sqlite3.connect(parse_sqlite_url(url), isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = OFF")
        # Random keys (cache keys, asset keys, job ids in the ledger index) miss the default 2 MB
        # page cache once the indexes outgrow it: give the seeding 1 GiB.
        db.execute("PRAGMA cache_size = -1048576")
        db.execute("BEGIN")
        if who is None:
            who, teams, keys = principals(now)
            db.executemany("INSERT INTO teams (id, name, created_at) VALUES (?, ?, ?)", teams)
            db.executemany(
                "INSERT INTO api_keys (id, team_id, name, key_hash, prefix, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                keys,
            )
        for batch in videos(who, start, count, total, now):
            db.executemany(SQLITE_INSERT_JOB, [sqlite_job_row(j) for j in batch.jobs])
            db.executemany(INSERT_LEDGER, batch.ledger)
            db.executemany(
                "INSERT INTO cache_entries (key, leader_id, status, created_at, expires_at)"
                " VALUES (?, ?, ?, ?, ?)",
                batch.cache,
            )
            db.executemany(
                "INSERT INTO assets (key, size, content_type, refs, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                batch.assets,
            )
        for statement in RECOUNT:
            db.execute(statement)
        db.execute("COMMIT")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.execute("ANALYZE")
    finally:
        db.close()
    return who


# -- PostgreSQL -----------------------------------------------------------------------------


async def recount_asset_totals(db: asyncpg.Connection) -> None:
    """Turn the totals' trigger back on and set the totals to what the assets hold."""
    await db.execute("ALTER TABLE assets ENABLE TRIGGER asset_totals_change")
    await db.execute("DELETE FROM asset_totals")
    await db.execute(
        "INSERT INTO asset_totals (shard, objects, bytes)"
        " SELECT 0, COUNT(*), COALESCE(SUM(size), 0) FROM assets"
    )


async def seed_postgres(
    url: str, who: Principals | None, start: int, count: int, total: int
) -> Principals:
    """As ``seed_sqlite``, with ``COPY`` (binary) for every table."""
    now = time.time()
    db = await asyncpg.connect(url)
    try:
        async with db.transaction():
            if who is None:
                who, teams, keys = principals(now)
                await db.copy_records_to_table(
                    "teams", records=teams, columns=["id", "name", "created_at"]
                )
                await db.copy_records_to_table(
                    "api_keys",
                    records=keys,
                    columns=["id", "team_id", "name", "key_hash", "prefix", "created_at"],
                )
            # The asset totals' trigger (migration 0009) would run once per copied row at
            # COMMIT; the totals are recounted below instead.
            await db.execute("ALTER TABLE assets DISABLE TRIGGER asset_totals_change")
            for batch in videos(who, start, count, total, now):
                await db.copy_records_to_table(
                    "jobs",
                    records=[tuple(pg_job_row(j)) for j in batch.jobs],
                    columns=list(PG_JOB_COLUMNS),
                )
                await db.copy_records_to_table(
                    "ledger", records=batch.ledger, columns=list(LEDGER_COLUMNS)
                )
                await db.copy_records_to_table(
                    "cache_entries",
                    records=batch.cache,
                    columns=["key", "leader_id", "status", "created_at", "expires_at"],
                )
                await db.copy_records_to_table(
                    "assets",
                    records=batch.assets,
                    columns=["key", "size", "content_type", "refs", "created_at"],
                )
            for statement in RECOUNT:
                await db.execute(statement)
            await recount_asset_totals(db)
        await db.execute("ANALYZE")
    finally:
        await db.close()
    return who
