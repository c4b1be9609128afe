"""``audit_team``: the audit of one team (and one month), on every adapter. It must find what the
whole audit finds in that team's books, nothing of other teams', and stay a real recount of the
team's own ledger rows (bench/README.md "Scale" measures why: the whole audit reads every row).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import asyncpg

from gateway.store.base import ApiKey, Store

from .conftest import StoreTarget
from .test_money_contract import T, admit, run_to_completion

MONTH_DAYS = 31 * 86400.0


def month_of(at: float) -> str:
    return datetime.fromtimestamp(at, tz=UTC).strftime("%Y-%m")


async def tamper(target: StoreTarget, sql: str, *parameters: Any) -> None:
    """Change the books behind the store's back (``?`` placeholders, either dialect)."""
    if target.adapter == "sqlite":
        import sqlite3
        from contextlib import closing

        with closing(sqlite3.connect(target.url.removeprefix("sqlite:///"))) as db, db:
            db.execute(sql, parameters)
        return
    count = iter(range(1, 100))
    connection = await asyncpg.connect(target.url)
    try:
        await connection.execute(re.sub(r"\?", lambda _: f"${next(count)}", sql), *parameters)
    finally:
        await connection.close()


async def spend_two_months(store: Store, key: ApiKey, other_key: ApiKey) -> list[str]:
    """A charged job of ``key``'s team in each of two months, one of the other team's."""
    ids = []
    for at, who in ((T, key), (T + MONTH_DAYS, key), (T, other_key)):
        job = (await admit(store, who, now=at)).job
        await run_to_completion(store, job, now=at + 100, video=None, last_frame=None)
        ids.append(job.id)
    return ids


async def test_a_clean_team_audits_clean_by_team_and_by_month(
    store: Store, key: ApiKey, other_key: ApiKey
) -> None:
    await spend_two_months(store, key, other_key)
    assert await store.audit() == []
    assert await store.audit_team(key.team_id) == []
    assert await store.audit_team(key.team_id, month_of(T)) == []
    assert await store.audit_team(key.team_id, month_of(T + MONTH_DAYS)) == []
    assert await store.audit_team(other_key.team_id, "1999-01") == []


async def test_a_tampered_counter_shows_in_its_team_and_month_only(
    store: Store, target: StoreTarget, key: ApiKey, other_key: ApiKey
) -> None:
    await spend_two_months(store, key, other_key)
    first = month_of(T)
    await tamper(
        target,
        "UPDATE budget_counters SET spent = spent + 1"
        " WHERE scope = 'key' AND scope_id = ? AND window_kind = 'month' AND period = ?",
        key.id,
        first,
    )
    [problem] = await store.audit_team(key.team_id)
    assert problem.startswith(f"counter key/{key.id}/month/{first}:")
    assert await store.audit_team(key.team_id, first) == [problem]
    assert await store.audit_team(key.team_id, month_of(T + MONTH_DAYS)) == []
    assert await store.audit_team(other_key.team_id) == []
    assert problem in await store.audit()


async def test_the_total_window_is_checked_by_a_whole_team_audit(
    store: Store, target: StoreTarget, key: ApiKey, other_key: ApiKey
) -> None:
    await spend_two_months(store, key, other_key)
    await tamper(
        target,
        "UPDATE budget_counters SET reserved = reserved + 7"
        " WHERE scope = 'team' AND scope_id = ? AND window_kind = 'total'",
        key.team_id,
    )
    [problem] = await store.audit_team(key.team_id)
    assert problem.startswith(f"counter team/{key.team_id}/total/total: reserved 7")
    # A month's slice of the ledger cannot recount the all-time total: not checked there.
    assert await store.audit_team(key.team_id, month_of(T)) == []


async def test_a_finished_job_still_reserved_shows_in_its_team(
    store: Store, target: StoreTarget, key: ApiKey, other_key: ApiKey
) -> None:
    ids = await spend_two_months(store, key, other_key)
    await tamper(target, "UPDATE jobs SET money_state = 'reserved' WHERE id = ?", ids[2])
    assert await store.audit_team(key.team_id) == []
    assert await store.audit_team(other_key.team_id) == [
        f"job {ids[2]} is completed but its money is still reserved"
    ]


async def test_a_settled_job_with_money_left_reserved_shows_in_its_month(
    store: Store, target: StoreTarget, key: ApiKey, other_key: ApiKey
) -> None:
    ids = await spend_two_months(store, key, other_key)
    await tamper(
        target,
        "UPDATE ledger SET reserved_delta = reserved_delta + 5"
        " WHERE job_id = ? AND scope = 'team' AND kind = 'charge'",
        ids[1],
    )
    second = month_of(T + MONTH_DAYS)
    problems = await store.audit_team(key.team_id, second)
    assert f"job {ids[1]} is settled but 5 micro-USD stay reserved" in problems
    assert any(p.startswith(f"counter team/{key.team_id}/month/{second}:") for p in problems)
    assert await store.audit_team(key.team_id, month_of(T)) == []
