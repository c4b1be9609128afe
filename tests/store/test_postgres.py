"""What only the PostgreSQL adapter promises: URLs and pool options, migrations under an advisory
lock, a schema that mirrors SQLite's, and exactness when several replicas (here: several stores,
each with its own connection pool) work on one database at once."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from gateway.domain.budgets import ORG_ID, ScopeRef, scopes_for
from gateway.errors import BudgetExceeded
from gateway.store.base import (
    Admission,
    ApiKey,
    BudgetLimit,
    IdempotencyKeyTaken,
    IdempotencyRecord,
    Job,
    Store,
)
from gateway.store.migrations import Migration, latest_version, load_migrations
from gateway.store.opening import open_store
from gateway.store.postgres import PostgresStore
from gateway.store.postgres import database as postgres_db

from .conftest import NOW, StoreTarget, ThrowawayDatabase
from .test_money_contract import FRAME, PRICE, VIDEO, T, admit, plan, run_to_completion
from .test_runner_queries import make_job

REPLICAS = 4
DONE = {"status": "completed", "progress": 100, "updated_at": int(T), "lease_owner": None}


@pytest.fixture
async def pg(postgres_database: ThrowawayDatabase) -> StoreTarget:
    """A fresh, empty schema of the run's database."""
    return StoreTarget("postgresql", await postgres_database.new_schema(), postgres_database)


@pytest.fixture
async def replicas(pg: StoreTarget) -> AsyncIterator[list[Store]]:
    """Migrated stores on one schema, each with a pool of its own: several gateway replicas."""
    stores = [await pg.open(pool_min_size=1, pool_max_size=4) for _ in range(REPLICAS)]
    try:
        await stores[0].migrate()
        yield stores
    finally:
        for store in stores:
            await store.close()


async def rows(target: StoreTarget, sql: str, *parameters: Any) -> list[asyncpg.Record]:
    """Read the database on a connection of its own, as an independent observer."""
    connection = await asyncpg.connect(target.url)
    try:
        return await connection.fetch(sql, *parameters)
    finally:
        await connection.close()


async def add_key(store: Store, team_name: str, n: int = 0) -> ApiKey:
    team = await store.team_by_name(team_name) or await store.create_team(team_name, NOW)
    return await store.create_key(
        team_id=team.id, name=f"k{n}", key_hash=f"hash-{team_name}-{n}", prefix="p", now=NOW
    )


# -- URLs and pool options ------------------------------------------------------------------


async def test_both_schemes_open_a_pool_of_the_configured_size(pg: StoreTarget) -> None:
    for url in (pg.url, pg.url.replace("postgresql://", "postgres://", 1)):
        store = await open_store(url, pool_min_size=0, pool_max_size=3)
        try:
            assert isinstance(store, PostgresStore)
            assert (store._pool.get_min_size(), store._pool.get_max_size()) == (0, 3)
            assert await store.schema_version() == 0
        finally:
            await store.close()


@pytest.mark.parametrize(("low", "high"), [(-1, 5), (3, 2), (0, 0)])
async def test_impossible_pool_sizes_are_refused(pg: StoreTarget, low: int, high: int) -> None:
    with pytest.raises(ValueError, match="pool_min_size"):
        await open_store(pg.url, pool_min_size=low, pool_max_size=high)


async def test_unsupported_schemes_are_refused_without_echoing_the_url() -> None:
    with pytest.raises(ValueError, match="sqlite://") as caught:
        await open_store("mysql://root:secret@db/gateway")
    assert "secret" not in str(caught.value)


# -- migrations -----------------------------------------------------------------------------


def test_migrations_ship_as_package_data() -> None:
    migrations = load_migrations("postgresql")
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    assert [m.name for m in migrations] == [m.name for m in load_migrations("sqlite")]
    assert latest_version("postgresql") == latest_version("sqlite")


async def test_the_schema_mirrors_sqlite(pg: StoreTarget, tmp_path: Path) -> None:
    sqlite_store = await open_store(f"sqlite:///{tmp_path / 'mirror.db'}")
    pg_store = await pg.open()
    try:
        await sqlite_store.migrate()
        await pg_store.migrate()
    finally:
        await sqlite_store.close()
        await pg_store.close()
    with closing(sqlite3.connect(tmp_path / "mirror.db")) as lite:
        tables = [r[0] for r in lite.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        expected = {
            (table, column[1])
            for table in tables
            if not table.startswith("sqlite_")
            for column in lite.execute(f"PRAGMA table_info({table})")
        }
        indexes = {
            r[0]
            for r in lite.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
            if not r[0].startswith("sqlite_autoindex")
        }
    schema = "current_schema()"
    columns = await rows(
        pg,
        f"SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = {schema}",
    )
    assert {(r[0], r[1]) for r in columns} == expected
    found = await rows(pg, f"SELECT indexname FROM pg_indexes WHERE schemaname = {schema}")
    assert {r[0] for r in found if not r[0].endswith(("_pkey", "_key"))} == indexes


async def test_replicas_migrate_concurrently_once(pg: StoreTarget) -> None:
    stores = [await pg.open(pool_max_size=2) for _ in range(6)]
    try:
        versions = await asyncio.gather(*(store.migrate() for store in stores))
        assert set(versions) == {latest_version("postgresql")}
        assert await stores[0].migrate() == latest_version("postgresql")
    finally:
        for store in stores:
            await store.close()
    applied = await rows(pg, "SELECT version FROM schema_migrations ORDER BY version")
    assert [r[0] for r in applied] == list(range(1, latest_version("postgresql") + 1))


async def test_failed_migration_rolls_back(
    pg: StoreTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = Migration(2, "broken", "CREATE TABLE extra (a INTEGER);\nCREATE TABLE nope (;")
    shipped = load_migrations("postgresql")[:1]
    monkeypatch.setattr(postgres_db, "load_migrations", lambda dialect: (*shipped, broken))
    store = await pg.open()
    try:
        with pytest.raises(asyncpg.PostgresSyntaxError):
            await store.migrate()
        assert await store.schema_version() == 1
        await store.create_team("still-usable", NOW)
        assert await store.team_by_name("still-usable") is not None
    finally:
        await store.close()
    assert await rows(pg, "SELECT 1 FROM pg_tables WHERE tablename = 'extra'") == []


async def test_text_orders_byte_by_byte_like_sqlite(replicas: list[Store]) -> None:
    store = replicas[0]
    names = ["alpha", "Zeta", "9lives", "beta-2", "beta_1", "beta.3"]  # the team name pattern
    for name in names:
        await store.create_team(name, NOW)
    assert [team.name for team in await store.list_teams()] == sorted(names)


async def test_a_fractional_whole_number_is_refused_not_truncated(replicas: list[Store]) -> None:
    store = replicas[0]
    key = await add_key(store, "acme")
    job = make_job(key)
    await store.insert_job(job)
    updated = await store.update_job(job.id, {"progress": 40.0, "refreshed_at": NOW + 0.5})
    assert updated is not None and (updated.progress, updated.refreshed_at) == (40, NOW + 0.5)
    with pytest.raises(ValueError, match="whole number"):
        await store.update_job(job.id, {"progress": 40.5})


# -- replicas at once -----------------------------------------------------------------------


async def test_concurrent_admissions_fill_a_budget_exactly(
    pg: StoreTarget, replicas: list[Store]
) -> None:
    """Three times as many requests as fit, from two keys of one team, on four pools, while
    another team without limits spends too: exactly the ones that fit are admitted."""
    fits = 7
    store = replicas[0]
    keys = [await add_key(store, "acme", n) for n in range(2)]
    spender = await add_key(store, "globex")
    await store.set_limit(BudgetLimit("team", keys[0].team_id, "day", fits * PRICE), NOW)

    async def attempt(n: int, key: ApiKey) -> bool:
        try:
            await replicas[n % REPLICAS].admit_job(plan(key, now=T + n * 0.001))
        except BudgetExceeded:
            return False
        return True

    outcomes = await asyncio.gather(
        *(attempt(n, keys[n % 2]) for n in range(3 * fits)),
        *(attempt(n, spender) for n in range(20)),
    )
    assert sum(outcomes[: 3 * fits]) == fits
    assert all(outcomes[3 * fits :])
    team_lines = await store.budget_lines((ScopeRef("team", keys[0].team_id),), T)
    assert {ln.window: ln.reserved for ln in team_lines}["day"] == fits * PRICE
    [org_total] = [
        ln for ln in await store.budget_lines((ScopeRef("org", ORG_ID),), T) if ln.window == "total"
    ]
    assert org_total.reserved == (fits + 20) * PRICE
    jobs = await rows(pg, "SELECT count(*) FROM jobs WHERE money_state = 'reserved'")
    assert jobs[0][0] == fits + 20
    assert await store.audit() == []


async def test_concurrent_claims_never_share_a_job(replicas: list[Store]) -> None:
    key = await add_key(replicas[0], "acme")
    jobs = [make_job(key, next_check_at=NOW - i) for i in range(120)]
    for job in jobs:
        await replicas[0].insert_job(job)

    batches = await asyncio.gather(
        *(
            replicas[i % REPLICAS].claim_due_jobs(
                owner=f"runner-{i}", now=NOW, lease_seconds=60, limit=3
            )
            for i in range(48)
        )
    )
    claimed = [(i, job.id) for i, batch in enumerate(batches) for job in batch]
    ids = [job_id for _, job_id in claimed]
    assert len(ids) == len(set(ids)), "a job was claimed twice"
    for i, job_id in claimed:
        stored = await replicas[0].update_job(job_id, {})
        assert stored is not None and stored.lease_owner == f"runner-{i}"
    # SKIP LOCKED lets a claim come back short rather than wait; the rest is still there.
    rest = await replicas[0].claim_due_jobs(owner="last", now=NOW, lease_seconds=60, limit=500)
    assert set(ids).isdisjoint(job.id for job in rest)
    assert set(ids) | {job.id for job in rest} == {job.id for job in jobs}


async def test_concurrent_identical_admissions_elect_one_leader(replicas: list[Store]) -> None:
    key = await add_key(replicas[0], "acme")
    admissions: list[Admission] = await asyncio.gather(
        *(admit(replicas[n % REPLICAS], key, cache_key="same", now=T + n) for n in range(30))
    )
    misses = [a for a in admissions if a.outcome == "miss"]
    assert len(misses) == 1
    leader = misses[0].job
    assert all(
        a.outcome == "coalesced" and a.job.leader_id == leader.id
        for a in admissions
        if a is not misses[0]
    )
    assert await replicas[1].live_followers(leader.id) == 29
    lines = await replicas[2].budget_lines(scopes_for(key.id, key.team_id), T)
    assert {ln.reserved for ln in lines} == {PRICE}  # only the leader reserved
    assert await replicas[3].audit() == []


async def test_joins_racing_the_leaders_completion_are_never_stranded(
    pg: StoreTarget, replicas: list[Store]
) -> None:
    """A join commits before the completion sees followers, or sees the completed entry (a hit):
    never a follower of a finished leader left waiting."""
    key = await add_key(replicas[0], "acme")
    for round_ in range(5):
        cache_key = f"race-{round_}"
        leader = (await admit(replicas[0], key, cache_key=cache_key)).job
        await replicas[0].update_job(leader.id, {"status": "downloading", "next_check_at": T})
        await replicas[0].claim_due_jobs(owner="runner", now=T, lease_seconds=60, limit=1)

        async def finish(leader: Job = leader) -> None:
            await asyncio.sleep(0.002)
            done = await replicas[1].complete_job(
                leader.id, owner="runner", changes=DONE, video=VIDEO, last_frame=FRAME
            )
            assert done is not None

        results = await asyncio.gather(
            finish(),
            *(
                admit(replicas[n % REPLICAS], key, cache_key=cache_key, now=T + 1 + n)
                for n in range(12)
            ),
        )
        admissions: list[Admission] = list(results[1:])
        assert {a.outcome for a in admissions} <= {"coalesced", "hit"}
        for admission in admissions:
            stored = await replicas[0].update_job(admission.job.id, {})
            assert stored is not None
            assert (stored.status, stored.video_asset) == ("completed", VIDEO.key), (
                admission.outcome
            )
        assert await replicas[0].live_followers(leader.id) == 0
    refs = await pg.asset_refs(VIDEO.key)
    holders = await rows(pg, "SELECT count(*) FROM jobs WHERE video_asset = $1", VIDEO.key)
    assert refs == holders[0][0] == 5 * 13
    assert await replicas[0].audit() == []


async def test_hits_racing_the_last_release_never_revive_a_deleted_video(
    pg: StoreTarget, replicas: list[Store]
) -> None:
    key = await add_key(replicas[0], "acme")
    for round_ in range(5):
        cache_key = f"gone-{round_}"
        leader = (await admit(replicas[0], key, cache_key=cache_key)).job
        await run_to_completion(replicas[0], leader)
        # The leader goes first: the last reference is an earlier hit's, whose row the hits
        # below do not lock; only the asset row's lock keeps them apart.
        holder = (await admit(replicas[0], key, cache_key=cache_key, now=T + 150)).job
        assert await replicas[0].delete_job(leader.id, key.team_id, NOW + 5) is not None

        async def delete(holder: Job = holder) -> tuple[str, ...]:
            deletion = await replicas[1].delete_job(holder.id, key.team_id, NOW + 10)
            assert deletion is not None
            return deletion.released

        released, *admissions = await asyncio.gather(
            delete(),
            *(
                admit(replicas[n % REPLICAS], key, cache_key=cache_key, now=T + 200 + n)
                for n in range(8)
            ),
        )
        hits = sum(1 for a in admissions if a.outcome == "hit")
        refs = await pg.asset_refs(VIDEO.key)
        if hits:
            assert released == () and refs == hits
        else:
            assert set(released) == {VIDEO.key, FRAME.key} and refs is None
        # Clean up so the next round starts from no reference at all.
        for admission in admissions:
            await replicas[0].delete_job(admission.job.id, key.team_id, NOW + 20)
        assert await pg.asset_refs(VIDEO.key) is None
    assert await replicas[0].audit() == []


async def test_concurrent_deletes_release_a_shared_asset_once(
    pg: StoreTarget, replicas: list[Store]
) -> None:
    key = await add_key(replicas[0], "acme")
    jobs = [
        await run_to_completion(replicas[0], (await admit(replicas[0], key)).job) for _ in range(10)
    ]
    assert await pg.asset_refs(VIDEO.key) == 10
    for job in jobs[5:]:
        await replicas[0].update_job(job.id, {"expires_at": NOW})
    deleted, *expired = await asyncio.gather(
        asyncio.gather(
            *(
                replicas[n % REPLICAS].delete_job(job.id, key.team_id, NOW + 1)
                for n, job in enumerate(jobs[:5])
            )
        ),
        *(store.expire_jobs(NOW + 1, 2) for store in replicas),
    )
    expired.append(await replicas[0].expire_jobs(NOW + 1, 100))  # what SKIP LOCKED left
    deletions = [*deleted, *(d for batch in expired for d in batch)]
    assert sorted(d.job_id for d in deletions) == sorted(job.id for job in jobs)
    assert sum(VIDEO.key in d.released for d in deletions) == 1
    assert await pg.asset_refs(VIDEO.key) is None


async def test_completion_and_failure_of_one_job_settle_it_once(replicas: list[Store]) -> None:
    key = await add_key(replicas[0], "acme")
    for _ in range(5):
        job = (await admit(replicas[0], key)).job
        await replicas[0].update_job(job.id, {"status": "downloading", "next_check_at": T})
        await replicas[0].claim_due_jobs(owner="runner", now=T, lease_seconds=60, limit=10)
        completed, failed = await asyncio.gather(
            replicas[1].complete_job(
                job.id, owner="runner", changes=DONE, video=VIDEO, last_frame=None
            ),
            replicas[2].fail_job(job.id, owner="runner", code="x", message="x", now=T),
        )
        assert (completed is None) != (failed is None)
    assert await replicas[0].audit() == []


async def test_concurrent_renewals_of_an_expired_idempotency_key_bind_it_once(
    replicas: list[Store],
) -> None:
    """The stored binding has expired: of many admissions replacing it at once (row lock, then
    ``domain/idempotency.binding``), one binds and the others find its new binding live."""
    key = await add_key(replicas[0], "acme")
    old = plan(key)
    expired = IdempotencyRecord(key.id, "order", "f" * 64, old.job.id, T, T + 10)
    await replicas[0].admit_job(dataclasses.replace(old, idempotency=expired))

    async def renew(n: int) -> str:
        candidate = plan(key, now=T + 20 + n * 0.001)
        record = IdempotencyRecord(
            key.id, "order", "e" * 64, candidate.job.id, candidate.now, candidate.now + 3600
        )
        try:
            await replicas[n % REPLICAS].admit_job(
                dataclasses.replace(candidate, idempotency=record)
            )
        except IdempotencyKeyTaken as taken:
            return taken.record.job_id
        return candidate.job.id

    bound = await asyncio.gather(*(renew(n) for n in range(12)))
    assert len(set(bound)) == 1 and bound[0] != old.job.id
    live = await replicas[0].idempotency_record(key.id, "order", T + 30)
    assert live is not None and live.job_id == bound[0]
    assert await replicas[0].audit() == []
