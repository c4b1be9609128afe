"""Budget windows roll over at UTC boundaries (injected clock), and reservations settle in the
period they were made in."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from gateway.domain.budgets import period_of
from gateway.errors import BudgetExceeded
from gateway.store.base import BudgetLimit
from tests.raw_sql import fetch_rows
from tests.services.conftest import MakeWorld

PRICE = 565_000  # fast model, 720p, 5 s


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


async def counter(world, window: str, period: str) -> tuple[int, int]:
    rows = await fetch_rows(
        world.store,
        "SELECT reserved, spent FROM budget_counters WHERE scope = 'team' AND scope_id = ?"
        " AND window_kind = ? AND period = ?",
        world.principal.team_id,
        window,
        period,
    )
    return (rows[0][0], rows[0][1]) if rows else (0, 0)


@pytest.mark.parametrize(
    ("window", "before", "after"),
    [
        ("day", "2026-11-25T23:59:50", "2026-11-26T00:00:00"),
        ("month", "2026-11-30T23:59:50", "2026-12-01T00:00:00"),
        ("month", "2026-12-31T23:59:50", "2027-01-01T00:00:00"),
    ],
)
async def test_a_window_frees_up_at_its_utc_boundary(
    make_world: MakeWorld, window: str, before: str, after: str
) -> None:
    world = await make_world()
    world.clock.set(at(before))
    limit = BudgetLimit("team", world.principal.team_id, window, 2 * PRICE)  # type: ignore[arg-type]
    await world.store.set_limit(limit, 0)
    first = await world.create(prompt="one")
    second = await world.create(prompt="two")
    with pytest.raises(BudgetExceeded) as exc:
        await world.create(prompt="three")
    assert "$0.565" in exc.value.message
    world.clock.set(at(after) - 0.001)
    with pytest.raises(BudgetExceeded):
        await world.create(prompt="still the old period")
    world.clock.set(at(after))
    third = await world.create(prompt="a new period")
    assert third.money_state == "reserved"

    # The old period's reservations settle there, even though they finish in the new one.
    old, new = period_of(window, at(before)), period_of(window, at(after))  # type: ignore[arg-type]
    assert await counter(world, window, old) == (2 * PRICE, 0)
    assert await counter(world, window, new) == (PRICE, 0)
    for job in (first, second, third):
        await world.settle(job.id)
    assert await counter(world, window, old) == (0, 2 * PRICE)
    assert await counter(world, window, new) == (0, PRICE)
    assert await world.store.audit() == []


async def test_total_window_never_rolls_over(make_world: MakeWorld) -> None:
    world = await make_world()
    limit = BudgetLimit("team", world.principal.team_id, "total", PRICE)
    await world.store.set_limit(limit, 0)
    job = await world.create(prompt="only one")
    await world.settle(job.id)
    world.clock.advance(400 * 86400)
    with pytest.raises(BudgetExceeded) as exc:
        await world.create(prompt="next year")
    assert "in total" in exc.value.message


@pytest.mark.parametrize(
    ("delivered", "charged"), [(4, 4 * 113_000), (10, 2 * PRICE), (12, 2 * PRICE)]
)
async def test_the_delivered_duration_is_charged_never_above_the_reservation(
    make_world: MakeWorld, delivered: int, charged: int
) -> None:
    world = await make_world()
    job = await world.create(prompt="short", duration=10)
    assert job.cost_micros == 2 * PRICE
    upstream = world.upstream_job(job)
    upstream.params = dataclasses.replace(upstream.params, duration=delivered)
    done = await world.settle(job.id)
    assert done.money_state == "charged"
    assert done.delivered_seconds == delivered
    assert done.charged_micros == charged
    assert await counter(world, "total", "total") == (0, charged)
    assert await world.store.audit() == []
