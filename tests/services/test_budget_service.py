"""Budgets as one use case under the API, the CLI and the dashboard: the injected clock decides
the period, every change leaves one audit log line naming its actor, and a run of videos
shows up in the overview."""

from __future__ import annotations

import logging

import pytest

from gateway.errors import InvalidRequest, NotFound
from gateway.services.budgets import BudgetService
from gateway.services.overview import OverviewService
from gateway.services.usage import audit_report

from .support import T0, World

DAY = 86_400


async def test_the_injected_clock_picks_the_period(world: World) -> None:
    service = BudgetService(world.store, clock=world.clock)
    status = await service.set(
        {"scope": "team", "team": "acme", "window": "day", "limit_usd": "3"}, actor="test"
    )
    assert status.period == _day(world.clock.now)
    world.clock.advance(DAY)
    [later] = await service.show({"team": "acme"})
    assert later.period == _day(world.clock.now)
    assert later.resets_at == (int(world.clock.now) // DAY + 1) * DAY


async def test_changes_leave_an_audit_line_naming_the_actor(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    service = BudgetService(world.store, clock=world.clock)
    with caplog.at_level(logging.INFO, logger="gateway.audit"):
        await service.set({"scope": "org", "window": "month", "limit_usd": 10}, actor="dashboard")
        cleared = await service.clear({"scope": "org", "window": "month"}, actor="cli")
        again = await service.clear({"scope": "org", "window": "month"}, actor="cli")
    assert cleared.cleared and not again.cleared
    lines = [(r.getMessage(), r.actor) for r in caplog.records]  # type: ignore[attr-defined]
    assert lines == [("budget set", "dashboard"), ("budget cleared", "cli")]


async def test_validation_names_the_parameter(world: World) -> None:
    service = BudgetService(world.store, clock=world.clock)
    with pytest.raises(InvalidRequest) as bad:
        await service.set(
            {"scope": "team", "team": "acme", "window": "day", "usd": "x"}, actor="t", param="usd"
        )
    assert bad.value.param == "usd"
    with pytest.raises(NotFound) as missing:
        await service.set(
            {"scope": "team", "team": "nope", "window": "day", "limit_usd": 1}, actor="t"
        )
    assert missing.value.param == "team"


async def test_the_overview_counts_a_finished_video(world: World) -> None:
    job = await world.create()
    world.clock.set(T0 + 2)
    for _ in range(3):
        job = await world.tick(job.id)
    assert job.status == "completed"
    overview = await OverviewService(
        world.store, deadline_seconds=7200, near_deadline_seconds=1800, clock=world.clock
    ).overview()
    [team] = overview.teams
    assert team.name == "acme" and team.used("day") == team.used("month") > 0
    assert overview.org is not None and overview.org.used("month") == team.used("month")
    assert overview.last_24h.by_status == {"completed": 1}
    assert (await audit_report(world.store)).clean


def _day(now: float) -> str:
    import datetime

    return datetime.datetime.fromtimestamp(now, tz=datetime.UTC).strftime("%Y-%m-%d")
