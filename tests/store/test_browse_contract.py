"""Contract: browsing jobs across teams and reading a job's ledger (the dashboard's queries),
on SQLite and PostgreSQL alike."""

from __future__ import annotations

import pytest

from gateway.store.base import ApiKey, Store
from gateway.store.browsing import JobFilter

from .test_money_contract import PRICE, T, admit, run_to_completion

pytestmark = pytest.mark.asyncio


async def test_find_jobs_filters_and_pages_newest_first(
    store: Store, key: ApiKey, other_key: ApiKey
) -> None:
    mine = [(await admit(store, key, now=T + i)).job for i in range(3)]
    theirs = (await admit(store, other_key, now=T + 10)).job
    await run_to_completion(store, mine[0])

    everything, more = await store.find_jobs(JobFilter(), before=None, limit=10)
    assert [j.id for j in everything] == [theirs.id, mine[2].id, mine[1].id, mine[0].id]
    assert not more

    page, more = await store.find_jobs(JobFilter(team_id=key.team_id), before=None, limit=2)
    assert [j.id for j in page] == [mine[2].id, mine[1].id] and more
    page, more = await store.find_jobs(JobFilter(team_id=key.team_id), before=page[-1].id, limit=2)
    assert [j.id for j in page] == [mine[0].id] and not more

    done, _ = await store.find_jobs(JobFilter(statuses=("completed",)), before=None, limit=10)
    assert [j.id for j in done] == [mine[0].id]
    by_key, _ = await store.find_jobs(JobFilter(key_id=other_key.id), before=None, limit=10)
    assert [j.id for j in by_key] == [theirs.id]
    window, _ = await store.find_jobs(
        JobFilter(created_from=int(T + 1), created_to=int(T + 10), model="seedance-fast"),
        before=None,
        limit=10,
    )
    assert [j.id for j in window] == [mine[2].id, mine[1].id]
    none, _ = await store.find_jobs(JobFilter(model="other-model"), before=None, limit=10)
    assert none == []


async def test_ledger_lines_tell_a_jobs_money_in_order(store: Store, key: ApiKey) -> None:
    job = (await admit(store, key)).job
    await run_to_completion(store, job)
    lines = await store.ledger_lines(job.id)
    assert [line.kind for line in lines] == ["reserve"] * 3 + ["charge"] * 3
    assert {line.scope for line in lines} == {"key", "team", "org"}
    assert all(line.created_at > 0 for line in lines)
    assert sum(line.reserved_delta for line in lines) == 0
    assert sum(line.spent_delta for line in lines) == 3 * PRICE
    assert await store.ledger_lines("video_unknown") == []
