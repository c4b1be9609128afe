"""Group commit: writes queued together share one transaction, but each succeeds or fails on its
own — a failing write leaves no trace and does not undo its neighbours."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from gateway.errors import Conflict
from gateway.store.sqlite import SqliteStore


async def test_a_failing_write_in_a_group_is_rolled_back_alone(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'group.db'}"
    store = await SqliteStore.open(url)
    try:
        await store.migrate()
        await store.create_team("taken", 1)
        names = [f"team-{i}" if i % 3 else "taken" for i in range(60)]
        results = await asyncio.gather(
            *(store.create_team(name, 2) for name in names), return_exceptions=True
        )
        failures = [r for r in results if isinstance(r, BaseException)]
        assert len(failures) == names.count("taken")
        assert all(isinstance(f, Conflict) for f in failures)
        stored = sorted(team.name for team in await store.list_teams())
        assert stored == sorted({*names})
    finally:
        await store.close()
    # Another connection (another process) sees exactly the committed rows, none half-written.
    with sqlite3.connect(tmp_path / "group.db") as plain:
        count = plain.execute("SELECT COUNT(*) FROM teams").fetchone()[0]
    assert count == len({*names})


async def test_groups_and_another_process_share_the_lock(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    first, second = await SqliteStore.open(url), await SqliteStore.open(url)
    try:
        await first.migrate()
        await second.migrate()
        await asyncio.gather(
            *(first.create_team(f"a-{i}", 1) for i in range(40)),
            *(second.create_team(f"b-{i}", 1) for i in range(40)),
        )
        assert len(await first.list_teams()) == 80
        assert len(await second.list_teams()) == 80
    finally:
        await first.close()
        await second.close()
