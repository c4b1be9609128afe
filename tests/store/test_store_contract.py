"""The contract every ``Store`` adapter keeps, written against the protocol only.

The ``store`` fixture (conftest) is parametrized over adapters, so each test runs on each one.
"""

from __future__ import annotations

import dataclasses

import pytest

from gateway.domain.video_request import VideoRequest
from gateway.errors import Conflict, NotFound
from gateway.ids import new_id
from gateway.store.base import UPDATABLE_JOB_FIELDS, ApiKey, Job, JobStatus, Order, Store, Team

from .conftest import NOW


def make_job(
    key: ApiKey, *, at: float = NOW, status: JobStatus = "queued", model: str = "seedance-1"
) -> Job:
    return Job(
        id=new_id("video", now=at),
        team_id=key.team_id,
        key_id=key.id,
        model=model,
        request=VideoRequest(model=model, prompt="a cat — on a skateboard", duration=5, seed=7),
        status=status,
        created_at=int(at),
        updated_at=int(at),
    )


# -- migrations -----------------------------------------------------------------------------


async def test_migrate_is_idempotent(store: Store) -> None:
    latest = await store.latest_version()
    assert latest >= 1
    assert await store.schema_version() == latest
    assert await store.migrate() == latest
    assert await store.migrate() == latest
    assert await store.schema_version() == latest


# -- teams ----------------------------------------------------------------------------------


async def test_create_team_and_look_it_up(store: Store) -> None:
    team = await store.create_team("acme", NOW)
    assert team.id.startswith("team_")
    assert (team.name, team.created_at) == ("acme", NOW)
    assert await store.team_by_name("acme") == team
    assert await store.team_by_id(team.id) == team
    assert await store.team_by_name("nobody") is None
    assert await store.team_by_id("team_missing") is None


async def test_duplicate_team_name_conflicts(store: Store, team: Team) -> None:
    with pytest.raises(Conflict):
        await store.create_team(team.name, NOW + 1)
    assert await store.list_teams() == [team]


async def test_list_teams_by_name(store: Store) -> None:
    zeta = await store.create_team("zeta", NOW)
    alpha = await store.create_team("alpha", NOW + 1)
    assert await store.list_teams() == [alpha, zeta]


# -- keys -----------------------------------------------------------------------------------


async def test_create_key_and_find_it_by_hash(store: Store, team: Team) -> None:
    key = await store.create_key(
        team_id=team.id, name="ci", key_hash="h1", prefix="sk-gw-abcd", now=NOW
    )
    assert key.id.startswith("key_")
    assert (key.team_id, key.name, key.prefix, key.created_at) == (team.id, "ci", "sk-gw-abcd", NOW)
    assert key.active
    assert await store.key_by_hash("h1") == key
    assert await store.key_by_hash("h2") is None


async def test_duplicate_key_hash_conflicts(store: Store, key: ApiKey) -> None:
    with pytest.raises(Conflict):
        await store.create_key(
            team_id=key.team_id, name="again", key_hash="hash-acme", prefix="x", now=NOW
        )


async def test_key_for_unknown_team_is_refused(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.create_key(team_id="team_missing", name="k", key_hash="h", prefix="p", now=NOW)


async def test_list_keys_by_team(store: Store, team: Team, key: ApiKey, other_key: ApiKey) -> None:
    second = await store.create_key(
        team_id=team.id, name="second", key_hash="hash-2", prefix="sk-gw-2", now=NOW + 5
    )
    assert await store.list_keys(team.id) == [key, second]
    assert await store.list_keys(other_key.team_id) == [other_key]
    assert {k.id for k in await store.list_keys()} == {key.id, second.id, other_key.id}
    assert await store.list_keys("team_missing") == []


async def test_revoke_key(store: Store, key: ApiKey) -> None:
    assert await store.revoke_key(key.id, NOW + 10) is True
    revoked = await store.key_by_hash("hash-acme")
    assert revoked is not None
    assert not revoked.active
    assert revoked.revoked_at == NOW + 10
    assert await store.revoke_key(key.id, NOW + 20) is False
    assert await store.revoke_key("key_missing", NOW) is False
    again = await store.key_by_hash("hash-acme")
    assert again is not None
    assert again.revoked_at == NOW + 10


# -- jobs -----------------------------------------------------------------------------------


async def test_insert_and_get_job(store: Store, key: ApiKey, other_key: ApiKey) -> None:
    job = make_job(key)
    await store.insert_job(job)
    assert await store.get_job(job.id) == job
    assert await store.get_job(job.id, team_id=key.team_id) == job
    assert await store.get_job(job.id, team_id=other_key.team_id) is None
    assert await store.get_job("video_missing") is None
    fetched = await store.get_job(job.id)
    assert fetched is not None
    assert fetched.request == job.request


async def test_duplicate_job_id_conflicts(store: Store, key: ApiKey) -> None:
    job = make_job(key)
    await store.insert_job(job)
    with pytest.raises(Conflict):
        await store.insert_job(job)


async def test_job_for_unknown_key_is_refused(store: Store, key: ApiKey) -> None:
    with pytest.raises(NotFound):
        await store.insert_job(dataclasses.replace(make_job(key), key_id="key_missing"))


async def test_update_job_allowed_fields(store: Store, key: ApiKey) -> None:
    job = make_job(key)
    await store.insert_job(job)
    changes = {
        "status": "completed",
        "progress": 100,
        "upstream_id": "cgt-123",
        "completed_at": NOW + 60,
        "refreshed_at": NOW + 60.25,
        "upstream_video_url": "https://example.test/v.mp4",
        "upstream_last_frame_url": "https://example.test/f.png",
        "updated_at": NOW + 60,
    }
    updated = await store.update_job(job.id, changes)
    expected = dataclasses.replace(job, **changes)  # type: ignore[arg-type]
    assert updated == expected
    assert await store.get_job(job.id) == expected
    failed = await store.update_job(job.id, {"error_code": "x", "error_message": "boom"})
    assert failed is not None
    assert (failed.error_code, failed.error_message, failed.progress) == ("x", "boom", 100)


async def test_every_updatable_field_is_a_job_field() -> None:
    assert {field.name for field in dataclasses.fields(Job)} >= UPDATABLE_JOB_FIELDS


async def test_update_job_refuses_other_fields(store: Store, key: ApiKey) -> None:
    job = make_job(key)
    await store.insert_job(job)
    for forbidden in ("team_id", "id", "request", "deleted_at", "nonsense"):
        with pytest.raises(ValueError, match=forbidden):
            await store.update_job(job.id, {"status": "failed", forbidden: "x"})
    assert await store.get_job(job.id) == job


async def test_update_missing_job_returns_none(store: Store) -> None:
    assert await store.update_job("video_missing", {"progress": 5}) is None
    assert await store.update_job("video_missing", {}) is None


async def test_deleted_job_can_still_be_updated_by_the_runner(store: Store, key: ApiKey) -> None:
    job = make_job(key, status="in_progress")
    await store.insert_job(job)
    assert await store.delete_job(job.id, key.team_id, NOW + 1)
    updated = await store.update_job(job.id, {"status": "completed", "progress": 100})
    assert updated is not None
    assert (updated.status, updated.deleted_at) == ("completed", NOW + 1)
    assert await store.get_job(job.id) is None


async def test_delete_job(store: Store, key: ApiKey, other_key: ApiKey) -> None:
    job = make_job(key)
    await store.insert_job(job)
    assert await store.delete_job(job.id, other_key.team_id, NOW) is None
    assert await store.get_job(job.id) == job
    assert await store.delete_job(job.id, key.team_id, NOW + 1) is not None
    assert await store.get_job(job.id) is None
    assert await store.get_job(job.id, team_id=key.team_id) is None
    assert await store.delete_job(job.id, key.team_id, NOW + 2) is None
    assert await store.delete_job("video_missing", key.team_id, NOW) is None


async def test_rejected_job_cannot_be_deleted(store: Store, key: ApiKey) -> None:
    job = make_job(key, status="rejected")
    await store.insert_job(job)
    assert await store.delete_job(job.id, key.team_id, NOW) is None


async def test_list_jobs_pages_both_ways(store: Store, key: ApiKey, other_key: ApiKey) -> None:
    visible = [make_job(key, at=NOW + i) for i in range(7)]
    deleted = make_job(key, at=NOW + 7.5)
    rejected = make_job(key, at=NOW + 8, status="rejected")
    foreign = make_job(other_key, at=NOW + 3.5)
    for job in [*visible, deleted, rejected, foreign]:
        await store.insert_job(job)
    assert await store.delete_job(deleted.id, key.team_id, NOW + 9)
    ids = [job.id for job in visible]
    assert ids == sorted(ids)

    async def pages(order: Order) -> list[tuple[list[str], bool]]:
        result: list[tuple[list[str], bool]] = []
        after: str | None = None
        while True:
            jobs, has_more = await store.list_jobs(key.team_id, after=after, limit=3, order=order)
            result.append(([job.id for job in jobs], has_more))
            if not has_more:
                return result
            after = jobs[-1].id

    assert await pages("asc") == [(ids[0:3], True), (ids[3:6], True), (ids[6:7], False)]
    newest_first = ids[::-1]
    assert await pages("desc") == [
        (newest_first[0:3], True),
        (newest_first[3:6], True),
        (newest_first[6:7], False),
    ]


async def test_list_jobs_edges(store: Store, key: ApiKey, other_key: ApiKey) -> None:
    jobs = [make_job(key, at=NOW + i) for i in range(3)]
    for job in jobs:
        await store.insert_job(job)
    listed, has_more = await store.list_jobs(key.team_id, after=None, limit=3, order="desc")
    assert (listed, has_more) == (jobs[::-1], False)
    assert await store.list_jobs(key.team_id, after=jobs[2].id, limit=5, order="asc") == ([], False)
    assert await store.list_jobs(key.team_id, after=jobs[0].id, limit=5, order="desc") == (
        [],
        False,
    )
    middle, has_more = await store.list_jobs(key.team_id, after=jobs[1].id, limit=1, order="desc")
    assert (middle, has_more) == ([jobs[0]], False)
    assert await store.list_jobs(other_key.team_id, after=None, limit=10, order="asc") == (
        [],
        False,
    )
