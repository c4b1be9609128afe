"""The job runner's queries, on every adapter: leases, conditional updates, asset references,
retention.

Reference counts are not part of the protocol: ``target.asset_refs`` reads them straight from
the database.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
from typing import Any

import pytest

from gateway.domain.media import MediaFacts
from gateway.domain.video_request import VideoRequest
from gateway.ids import new_id
from gateway.store.base import ApiKey, Asset, Job, JobStatus, Store, Team

from .conftest import NOW, StoreTarget

LEASE = 60.0
DONE: dict[str, Any] = {
    "status": "completed",
    "progress": 100,
    "completed_at": NOW,
    "updated_at": NOW,
    "lease_owner": None,
    "locked_until": None,
    "next_check_at": None,
}


def asset(name: str, content_type: str = "video/mp4") -> Asset:
    return Asset(
        key=hashlib.sha256(name.encode()).hexdigest(), size=len(name), content_type=content_type
    )


def make_job(
    key: ApiKey,
    *,
    status: JobStatus = "queued",
    next_check_at: float | None = NOW,
    **fields: Any,
) -> Job:
    return Job(
        id=new_id("video", now=NOW),
        team_id=key.team_id,
        key_id=key.id,
        model="seedance",
        request=VideoRequest(model="seedance", prompt="p"),
        status=status,
        created_at=NOW,
        updated_at=NOW,
        upstream_id="cgt-1",
        next_check_at=next_check_at,
        **fields,
    )


async def insert(store: Store, key: ApiKey, **fields: Any) -> Job:
    job = make_job(key, **fields)
    await store.insert_job(job)
    return job


async def raw(store: Store, job_id: str) -> Job:
    """The row whatever its state (``update_job`` with no changes reads deleted jobs too)."""
    job = await store.update_job(job_id, {})
    assert job is not None
    return job


async def claim(store: Store, owner: str, now: float = NOW, limit: int = 100) -> list[Job]:
    return await store.claim_due_jobs(owner=owner, now=now, lease_seconds=LEASE, limit=limit)


async def completed(
    store: Store,
    key: ApiKey,
    *,
    video: Asset | None,
    last_frame: Asset | None = None,
    **changes: Any,
) -> Job:
    """A job taken through claim -> complete_job with these assets."""
    job = await insert(store, key, status="downloading", next_check_at=NOW - 1_000_000)
    [claimed] = await claim(store, "runner", now=NOW - 1_000_000 + 1, limit=1)
    assert claimed.id == job.id
    done = await store.complete_job(
        job.id, owner="runner", changes={**DONE, **changes}, video=video, last_frame=last_frame
    )
    assert done is not None
    return done


# -- claiming ----------------------------------------------------------------------------


async def test_claim_takes_only_due_runnable_unleased_jobs(store: Store, key: ApiKey) -> None:
    wanted = {
        (await insert(store, key, next_check_at=NOW - 10)).id,
        (await insert(store, key, next_check_at=NOW)).id,  # due exactly now
        (await insert(store, key, status="submitting")).id,
        (await insert(store, key, status="in_progress")).id,
        (await insert(store, key, status="downloading")).id,
        # a lease that has run out is free again
        (await insert(store, key, lease_owner="crashed", locked_until=NOW - 0.5)).id,
    }
    await insert(store, key, next_check_at=NOW + 0.5)  # not due yet
    await insert(store, key, next_check_at=None)  # never scheduled
    for status in ("completed", "failed", "rejected"):
        await insert(store, key, status=status)  # finished: never claimed
    await insert(store, key, lease_owner="other", locked_until=NOW + 5)  # leased
    await insert(store, key, lease_owner="other", locked_until=NOW)  # leased to this instant

    claimed = await claim(store, "me")

    assert {job.id for job in claimed} == wanted
    for job in claimed:
        assert (job.lease_owner, job.locked_until) == ("me", NOW + LEASE)
        assert await raw(store, job.id) == job  # the lease is stored, not just returned
    assert await claim(store, "someone-else") == []


async def test_claim_takes_the_most_overdue_first_up_to_the_limit(
    store: Store, key: ApiKey
) -> None:
    jobs = [await insert(store, key, next_check_at=NOW - n) for n in (5, 50, 1, 30)]
    first = await claim(store, "me", limit=2)
    assert {job.id for job in first} == {jobs[1].id, jobs[3].id}  # RETURNING order is unspecified
    second = await claim(store, "me", limit=2)
    assert {job.id for job in second} == {jobs[0].id, jobs[2].id}
    assert await claim(store, "me", limit=0) == []


async def test_deleted_jobs_are_still_claimed_so_the_runner_can_settle_them(
    store: Store, key: ApiKey
) -> None:
    job = await insert(store, key)
    assert await store.delete_job(job.id, key.team_id, NOW) is not None
    assert [c.id for c in await claim(store, "me")] == [job.id]


async def test_an_expired_lease_can_be_reclaimed(store: Store, key: ApiKey) -> None:
    job = await insert(store, key)
    [held] = await claim(store, "a", now=NOW)
    assert held.locked_until == NOW + LEASE

    assert await claim(store, "b", now=NOW + LEASE - 1) == []
    assert await claim(store, "b", now=NOW + LEASE) == []  # the lease runs to its last instant
    [taken] = await claim(store, "b", now=NOW + LEASE + 0.5)

    assert taken.id == job.id
    assert (taken.lease_owner, taken.locked_until) == ("b", NOW + 2 * LEASE + 0.5)
    # The old owner can no longer touch it; the new one can.
    assert await store.update_leased_job(job.id, owner="a", changes={"progress": 5}) is None
    assert not await store.extend_lease(job.id, owner="a", until=NOW + 1000)
    assert await store.extend_lease(job.id, owner="b", until=NOW + 1000)
    assert (await raw(store, job.id)).locked_until == NOW + 1000


async def test_two_stores_on_one_database_never_claim_the_same_job(
    target: StoreTarget, store: Store, key: ApiKey
) -> None:
    jobs = [await insert(store, key, next_check_at=NOW - i) for i in range(60)]
    other = await target.open()
    try:
        stores = [store, other]
        results = await asyncio.gather(
            *(
                stores[i % 2].claim_due_jobs(
                    owner=f"runner-{i}", now=NOW, lease_seconds=LEASE, limit=3
                )
                for i in range(40)
            )
        )
    finally:
        await other.close()

    claimed = [(i, job.id) for i, batch in enumerate(results) for job in batch]
    ids = [job_id for _, job_id in claimed]
    assert len(ids) == len(set(ids)), "a job was claimed twice"
    assert set(ids) == {job.id for job in jobs}
    for i, job_id in claimed:
        assert (await raw(store, job_id)).lease_owner == f"runner-{i}"


# -- conditional updates -----------------------------------------------------------------


async def test_update_leased_job_only_for_the_owner(store: Store, key: ApiKey) -> None:
    job = await insert(store, key)
    await claim(store, "me")

    assert await store.update_leased_job(job.id, owner="intruder", changes={"progress": 50}) is None
    assert (await raw(store, job.id)).progress == 0

    updated = await store.update_leased_job(
        job.id, owner="me", changes={"progress": 50, "attempts": 2}
    )
    assert updated is not None
    assert (updated.progress, updated.attempts, updated.lease_owner) == (50, 2, "me")

    released = await store.update_leased_job(
        job.id, owner="me", changes={"lease_owner": None, "locked_until": None}
    )
    assert released is not None and released.lease_owner is None
    # Once released, the former owner holds nothing.
    assert await store.update_leased_job(job.id, owner="me", changes={"progress": 60}) is None
    assert (
        await store.update_leased_job("video_missing", owner="me", changes={"progress": 1}) is None
    )


async def test_update_leased_job_refuses_identity_fields(store: Store, key: ApiKey) -> None:
    job = await insert(store, key)
    await claim(store, "me")
    with pytest.raises(ValueError, match="team_id"):
        await store.update_leased_job(job.id, owner="me", changes={"team_id": "team_x"})


async def test_update_job_if_status_needs_the_status_and_no_lease(
    store: Store, key: ApiKey
) -> None:
    free = await insert(store, key, status="in_progress")
    leased = await insert(store, key, status="in_progress", next_check_at=NOW + 100)
    await store.update_job(leased.id, {"lease_owner": "runner", "locked_until": NOW + 60})
    downloading = await insert(store, key, status="downloading")
    statuses = ("queued", "in_progress")

    updated = await store.update_job_if_status(free.id, statuses=statuses, changes={"progress": 40})
    assert updated is not None and updated.progress == 40
    assert (
        await store.update_job_if_status(leased.id, statuses=statuses, changes={"progress": 40})
        is None
    )
    assert (
        await store.update_job_if_status(
            downloading.id, statuses=statuses, changes={"progress": 40}
        )
        is None
    )
    assert (await raw(store, leased.id)).progress == 0
    assert (await raw(store, downloading.id)).progress == 0


# -- completion and asset references -----------------------------------------------------


async def test_complete_job_records_assets_and_shared_ones_are_released_last(
    target: StoreTarget, store: Store, key: ApiKey
) -> None:
    video, frame_a, frame_b = asset("video"), asset("frame-a", "image/png"), asset("frame-b")
    first = await completed(store, key, video=video, last_frame=frame_a)
    second = await completed(store, key, video=video, last_frame=frame_b)

    assert (first.status, first.video_asset, first.last_frame_asset) == (
        "completed",
        video.key,
        frame_a.key,
    )
    assert first.lease_owner is None and first.next_check_at is None
    assert (await target.asset_refs(video.key), await target.asset_refs(frame_a.key)) == (2, 1)
    assert await store.get_asset(video.key) == video
    assert await store.get_asset(frame_a.key) == frame_a
    assert await store.known_assets([video.key, frame_a.key, frame_b.key]) == {
        video.key,
        frame_a.key,
        frame_b.key,
    }

    deletion = await store.delete_job(first.id, key.team_id, NOW)
    assert deletion is not None
    assert deletion.released == (frame_a.key,)  # the video is still shared
    assert await target.asset_refs(video.key) == 1
    assert await store.get_asset(video.key) == video

    deletion = await store.delete_job(second.id, key.team_id, NOW)
    assert deletion is not None
    assert set(deletion.released) == {video.key, frame_b.key}
    assert await target.asset_refs(video.key) is None
    assert await store.get_asset(video.key) is None
    assert await store.known_assets([video.key, frame_a.key, frame_b.key]) == set()
    # Deleting again finds nothing to delete and releases nothing twice.
    assert await store.delete_job(second.id, key.team_id, NOW) is None


async def test_probed_figures_are_kept_with_the_asset(
    target: StoreTarget, store: Store, key: ApiKey
) -> None:
    facts = MediaFacts("mp4", "h264", 160, 90, 5000, True, 120)
    video = dataclasses.replace(asset("probed"), media=facts)
    unprobed = asset("old-video")
    first = await completed(store, key, video=video, last_frame=None)
    await completed(store, key, video=dataclasses.replace(video, media=None), last_frame=None)
    await completed(store, key, video=unprobed, last_frame=None)
    assert await target.asset_refs(video.key) == 2
    found = await store.asset_media([video.key, unprobed.key, "missing"])
    assert found == {video.key: facts}  # a later reference without figures keeps them
    assert first.video_asset == video.key
    assert await store.asset_media([]) == {}


async def test_complete_job_without_the_lease_changes_nothing(
    target: StoreTarget, store: Store, key: ApiKey
) -> None:
    video = asset("video")
    job = await insert(store, key, status="downloading")
    await claim(store, "owner")
    done = await store.complete_job(
        job.id, owner="intruder", changes=DONE, video=video, last_frame=None
    )
    assert done is None
    after = await raw(store, job.id)
    assert (after.status, after.video_asset, after.lease_owner) == ("downloading", None, "owner")
    assert await target.asset_refs(video.key) is None


async def test_complete_job_of_a_deleted_job_keeps_no_assets(
    target: StoreTarget, store: Store, key: ApiKey
) -> None:
    """Deleted while its video downloaded: no reference that nothing would ever release."""
    video, shared = asset("video"), asset("shared")
    keeper = await completed(store, key, video=shared)
    job = await insert(store, key, status="downloading")
    await claim(store, "runner")
    await store.delete_job(job.id, key.team_id, NOW)

    done = await store.complete_job(
        job.id, owner="runner", changes=DONE, video=video, last_frame=shared
    )

    assert done is not None
    assert (done.status, done.video_asset, done.last_frame_asset) == ("completed", None, None)
    assert await target.asset_refs(video.key) is None  # an orphan blob for the sweep
    assert await target.asset_refs(shared.key) == 1  # only the keeper's reference
    assert keeper.video_asset == shared.key


# -- retention ----------------------------------------------------------------------------


async def test_expire_jobs_hides_them_and_releases_their_assets(
    target: StoreTarget, store: Store, key: ApiKey, team: Team
) -> None:
    shared, own = asset("shared"), asset("own")
    due = await completed(store, key, video=own, last_frame=shared, expires_at=NOW + 10)
    later = await completed(store, key, video=shared, expires_at=NOW + 20)
    forever = await completed(store, key, video=shared)  # expires_at NULL: kept

    assert await store.expire_jobs(NOW + 9, 100) == []

    [deletion] = await store.expire_jobs(NOW + 10, 100)
    assert deletion.job_id == due.id
    assert deletion.released == (own.key,)
    assert await target.asset_refs(shared.key) == 2
    assert await store.get_job(due.id) is None
    assert (await raw(store, due.id)).deleted_at == NOW + 10
    page, _ = await store.list_jobs(team.id, after=None, limit=10, order="asc")
    assert {job.id for job in page} == {later.id, forever.id}

    # Already expired jobs are not expired again.
    [deletion] = await store.expire_jobs(NOW + 1000, 100)
    assert deletion.job_id == later.id
    assert deletion.released == ()
    assert await target.asset_refs(shared.key) == 1
    assert await store.expire_jobs(NOW + 2000, 100) == []
    assert await store.get_job(forever.id) is not None


async def test_expire_jobs_respects_the_limit(store: Store, key: ApiKey) -> None:
    for n in range(5):
        await completed(store, key, video=asset(f"v{n}"), expires_at=NOW)
    first = await store.expire_jobs(NOW, 3)
    second = await store.expire_jobs(NOW, 3)
    assert (len(first), len(second)) == (3, 2)
    assert {d.job_id for d in first}.isdisjoint({d.job_id for d in second})
    assert all(len(d.released) == 1 for d in [*first, *second])


async def test_expire_jobs_leaves_deleted_jobs_alone(store: Store, key: ApiKey) -> None:
    job = await completed(store, key, video=asset("v"), expires_at=NOW)
    deletion = await store.delete_job(job.id, key.team_id, NOW - 5)
    assert deletion is not None and deletion.released == (asset("v").key,)
    assert await store.expire_jobs(NOW, 10) == []
    assert (await raw(store, job.id)).deleted_at == NOW - 5


async def test_known_assets(store: Store, key: ApiKey) -> None:
    stored = [asset(f"stored-{n}") for n in range(3)]
    for item in stored:
        await completed(store, key, video=item)
    strangers = [asset(f"stranger-{n}").key for n in range(1200)]  # several query batches

    assert await store.known_assets([]) == set()
    assert await store.known_assets(strangers[:3]) == set()
    keys = [*strangers[:700], *(a.key for a in stored), *strangers[700:]]
    assert await store.known_assets(keys) == {a.key for a in stored}
    assert await store.known_assets({stored[0].key}) == {stored[0].key}
