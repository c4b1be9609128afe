"""Housekeeping of stored videos: crash leftovers, two-phase orphan removal, retention expiry."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.domain.video_request import VideoRequest
from gateway.errors import NotFound
from gateway.services import maintenance
from gateway.services.maintenance import EXPIRY_BATCH, Maintenance, SweepReport
from gateway.settings import JobSettings
from gateway.store.base import Asset, Job

from .conftest import MakeWorld
from .support import T0, World

DAY = 86400


async def chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def put(world: World, data: bytes) -> str:
    info = await world.blobs.put(chunks(data), expected_size=len(data))
    return info.key


def sweeper(world: World, **settings: Any) -> Maintenance:
    return Maintenance(world.store, world.blobs, JobSettings(**settings), clock=world.clock)


async def record(world: World, key: str) -> Job:
    """A finished job that refers to the blob ``key`` (as the runner records one)."""
    job = Job(
        id=f"video_{key[:24]}",
        team_id=world.principal.team_id,
        key_id=world.principal.key_id,
        model="m",
        request=VideoRequest(model="m", prompt="p"),
        status="downloading",
        created_at=int(T0),
        updated_at=int(T0),
        next_check_at=world.clock(),
    )
    await world.store.insert_job(job)
    [claimed] = await world.store.claim_due_jobs(
        owner="recorder", now=world.clock(), lease_seconds=60, limit=1
    )
    done = await world.store.complete_job(
        claimed.id,
        owner="recorder",
        changes={"status": "completed", "lease_owner": None, "next_check_at": None},
        video=Asset(key=key, size=1, content_type="video/mp4"),
        last_frame=None,
    )
    assert done is not None
    return done


async def test_old_temporary_files_are_removed(world: World) -> None:
    old = world.blobs.tmp / "crashed.part"
    fresh = world.blobs.tmp / "writing.part"
    for path in (old, fresh):
        path.write_bytes(b"partial upload")
    an_hour_ago = time.time() - 3601
    os.utime(old, (an_hour_ago, an_hour_ago))

    report = await sweeper(world, temp_max_age_seconds=3600).run()

    assert report == SweepReport(1, 0, 0, 0)
    assert world.temporary_files() == [fresh]


async def test_orphan_is_removed_only_when_a_second_sweep_still_finds_it(world: World) -> None:
    sweep = sweeper(world)
    first = await put(world, b"first orphan")

    assert (await sweep.run()).orphans_removed == 0  # seen once: maybe being recorded right now
    assert await world.blobs.stat(first) is not None

    second = await put(world, b"second orphan")
    assert (await sweep.run()).orphans_removed == 1
    assert await world.blobs.stat(first) is None
    assert await world.blobs.stat(second) is not None  # only seen once so far

    assert (await sweep.run()).orphans_removed == 1
    assert world.object_files() == []


async def test_blob_recorded_between_sweeps_is_kept(world: World) -> None:
    sweep = sweeper(world)
    key = await put(world, b"a download being recorded")
    await sweep.run()
    await record(world, key)
    for _ in range(3):
        assert (await sweep.run()).orphans_removed == 0
    assert await world.blobs.stat(key) is not None


async def test_a_new_sweeper_starts_from_scratch(world: World) -> None:
    """Candidates are per process: a restarted runner needs two sweeps of its own."""
    key = await put(world, b"orphan")
    await sweeper(world).run()
    assert (await sweeper(world).run()).orphans_removed == 0
    assert await world.blobs.stat(key) is not None


async def test_orphans_are_found_across_key_batches(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(maintenance, "KEY_BATCH", 2)
    kept = [await put(world, f"kept {n}".encode()) for n in range(3)]
    for key in kept:
        await record(world, key)
    orphans = [await put(world, f"orphan {n}".encode()) for n in range(5)]
    sweep = sweeper(world)

    await sweep.run()
    assert (await sweep.run()).orphans_removed == len(orphans)
    assert sorted(p.name for p in world.object_files()) == sorted(kept)


async def test_completed_videos_expire_after_the_retention_period(make_world: MakeWorld) -> None:
    world = await make_world(retention_days=1)
    job = await world.settle((await world.create()).id)
    assert job.status == "completed" and job.video_asset is not None
    assert job.expires_at == int(T0 + 9) + DAY
    blob = world.blobs.path_for(job.video_asset)

    world.clock.set(job.expires_at - 1)
    assert (await world.runner.maintenance.run()).videos_expired == 0
    assert (await world.videos.content(world.principal, job.id, "video")).asset.key == blob.name

    world.clock.set(job.expires_at)
    report = await world.runner.maintenance.run()

    assert (report.videos_expired, report.blobs_released) == (1, 1)
    assert await world.store.get_job(job.id) is None
    with pytest.raises(NotFound):
        await world.videos.get(world.principal, job.id)
    assert not blob.exists()
    assert await world.store.get_asset(blob.name) is None
    assert (await world.runner.maintenance.run()).videos_expired == 0  # expired once only


async def test_expiry_keeps_a_blob_another_job_still_shares(make_world: MakeWorld) -> None:
    world = await make_world(retention_days=1)
    first = await world.settle((await world.create(seed=7, return_last_frame=True)).id)
    world.clock.advance(1000)
    second = await world.settle((await world.create(seed=7, return_last_frame=True)).id)
    assert first.video_asset == second.video_asset  # same seed, same body: same bytes
    assert first.last_frame_asset == second.last_frame_asset
    assert first.expires_at is not None and second.expires_at is not None
    assert second.expires_at - first.expires_at >= 1000

    world.clock.set(first.expires_at)
    report = await world.runner.maintenance.run()
    assert (report.videos_expired, report.blobs_released) == (1, 0)
    assert await world.store.get_job(first.id) is None
    stored = await world.videos.content(world.principal, second.id, "video")
    assert b"".join([chunk async for chunk in stored.read()])[4:8] == b"ftyp"

    world.clock.set(second.expires_at)
    report = await world.runner.maintenance.run()
    assert (report.videos_expired, report.blobs_released) == (1, 2)
    assert world.object_files() == []


async def test_without_retention_videos_are_kept(world: World) -> None:
    job = await world.settle((await world.create()).id)
    assert job.expires_at is None
    world.clock.advance(10 * 365 * DAY)
    report = await world.runner.maintenance.run()
    assert report.videos_expired == 0
    assert await world.store.get_job(job.id) is not None
    assert len(world.object_files()) == 1


async def test_expiry_goes_through_every_batch(world: World) -> None:
    count = EXPIRY_BATCH + 5
    for n in range(count):
        await world.store.insert_job(
            Job(
                id=f"video_{n:06d}",
                team_id=world.principal.team_id,
                key_id=world.principal.key_id,
                model="m",
                request=VideoRequest(model="m", prompt="p"),
                status="completed",
                created_at=int(T0),
                updated_at=int(T0),
                expires_at=int(T0),
            )
        )
    report = await sweeper(world).run()
    assert report.videos_expired == count
    page, more = await world.store.list_jobs(
        world.principal.team_id, after=None, limit=10, order="asc"
    )
    assert (page, more) == ([], False)


async def test_deleting_a_video_removes_its_blob_at_once(world: World) -> None:
    job = await world.settle((await world.create()).id)
    assert job.video_asset is not None and len(world.object_files()) == 1
    await world.videos.delete(world.principal, job.id)
    assert world.object_files() == []


async def test_sweep_purges_failed_jobs_and_their_media_after_the_retention(
    world: World,
) -> None:
    from gateway.sandbox import FaultRule

    world.sandbox.add_fault(FaultRule(op="create", kind="fail_job"))
    failed = await world.settle((await world.create()).id)
    assert failed.status == "failed" and failed.completed_at is not None
    image = await put(world, b"\x89PNG\r\n\x1a\n an inline first frame")
    await world.store.attach_media(failed.id, [Asset(image, 30, "image/png")], int(T0))
    purging = Maintenance(
        world.store, world.blobs, JobSettings(), clock=world.clock, purge_after_days=30
    )

    world.clock.set(failed.completed_at + 29 * DAY)
    assert (await purging.run()).jobs_purged == 0
    world.clock.set(failed.completed_at + 30 * DAY + 1)
    report = await purging.run()

    assert (report.jobs_purged, report.blobs_released) == (1, 1)
    assert await world.store.get_job(failed.id, include_deleted=True) is None
    assert world.object_files() == []
    assert (await sweeper(world).run()).jobs_purged == 0  # off unless configured
