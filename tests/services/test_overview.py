"""The jobs that need a person: near their deadline, downloads that keep failing, videos lost
to expired links; a team's view holds only its own jobs."""

from __future__ import annotations

from gateway.services.overview import OverviewService

from .support import T0, World


def service(world: World) -> OverviewService:
    return OverviewService(
        world.store, deadline_seconds=7200, near_deadline_seconds=1800, clock=world.clock
    )


async def test_jobs_needing_a_person_are_sorted_into_their_lists(world: World) -> None:
    old = await world.create()
    stuck = await world.create()
    lost = await world.create()
    fresh = await world.create()
    await world.store.update_job(stuck.id, {"status": "downloading", "attempts": 3})
    await world.store.update_job(
        lost.id, {"status": "failed", "error_code": "upstream_link_expired"}
    )
    world.clock.set(
        T0 + 7200 - 1800
    )  # every job created at T0 is now within 30 min of its deadline
    attention = await service(world).needs_attention()
    assert {j.id for j in attention.near_deadline} == {old.id, stuck.id, fresh.id}
    assert [j.id for j in attention.failing_downloads] == [stuck.id]
    assert [j.id for j in attention.expired_links] == [lost.id]
    assert attention.unknown == []
    world.clock.set(T0 + 7200 - 1801)
    assert (await service(world).needs_attention()).near_deadline == []


async def test_a_team_view_shows_only_that_team(world: World) -> None:
    await world.create()
    other = await world.store.create_team("globex", int(T0))
    attention = await service(world).needs_attention(other.id)
    overview = await service(world).overview(other.id)
    assert attention.near_deadline == [] and overview.org is None
    assert [t.name for t in overview.teams] == ["globex"]
    assert overview.last_24h.total == 0
    assert (await service(world).overview()).last_24h.total == 1
