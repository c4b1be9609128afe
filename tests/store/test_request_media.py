"""Request media references and the purge of old failed/rejected jobs, on every adapter."""

from __future__ import annotations

from gateway.store.base import ApiKey, Store

from .conftest import NOW
from .test_runner_queries import asset, make_job

DAY = 86400


async def failed_job(store: Store, key: ApiKey, *, at: int, status: str = "failed") -> str:
    job = make_job(key, status="submitting", next_check_at=None)
    await store.insert_job(job)
    failed = await store.fail_job(
        job.id, owner=None, code="upstream_rejected", message="no", now=at,
        rejected=status == "rejected",
    )  # fmt: skip
    assert failed is not None and failed.status == status
    return job.id


async def test_media_references_are_counted_once_per_job(store: Store, key: ApiKey) -> None:
    image = asset("image", "image/png")
    first, second = make_job(key), make_job(key)
    await store.insert_job(first)
    await store.insert_job(second)

    await store.attach_media(first.id, [image, image], NOW)
    await store.attach_media(first.id, [image], NOW)  # a repeated call changes nothing
    await store.attach_media(second.id, [image], NOW)

    assert await store.known_assets([image.key]) == {image.key}
    got = await store.get_asset(image.key)
    assert got is not None and (got.size, got.content_type) == (image.size, "image/png")


async def test_purge_removes_old_failed_and_rejected_jobs_and_releases_media(
    store: Store, key: ApiKey
) -> None:
    shared, own = asset("shared", "image/png"), asset("own", "image/jpeg")
    old_failed = await failed_job(store, key, at=NOW)
    old_rejected = await failed_job(store, key, at=NOW + 1, status="rejected")
    recent = await failed_job(store, key, at=NOW + 40 * DAY)
    await store.attach_media(old_failed, [shared, own], NOW)
    await store.attach_media(old_rejected, [shared], NOW)
    await store.attach_media(recent, [shared], NOW)
    running = make_job(key)
    await store.insert_job(running)

    deletions = await store.purge_ended_jobs(NOW + 30 * DAY, 100)

    assert sorted(d.job_id for d in deletions) == sorted([old_failed, old_rejected])
    assert [key for d in deletions for key in d.released] == [own.key]
    assert await store.known_assets([shared.key, own.key]) == {shared.key}
    for gone in (old_failed, old_rejected):
        assert await store.get_job(gone, include_deleted=True) is None
    assert await store.get_job(recent) is not None
    assert await store.get_job(running.id) is not None
    assert await store.purge_ended_jobs(NOW + 30 * DAY, 100) == []

    [last] = await store.purge_ended_jobs(NOW + 80 * DAY, 100)
    assert (last.job_id, last.released) == (recent, (shared.key,))


async def test_lists_read_only_what_a_list_renders(store: Store, key: ApiKey) -> None:
    signed = "https://cdn.example/v.mp4?X-Signature=" + "s" * 1000
    job = make_job(
        key,
        upstream_video_url=signed,
        upstream_last_frame_url=signed,
        lease_owner="runner-a",
        last_frame_asset=asset("frame").key,
        cost_micros=77,
    )
    await store.insert_job(job)

    [listed], _ = await store.list_jobs(key.team_id, after=None, limit=10, order="asc")

    assert listed.upstream_video_url is None and listed.upstream_last_frame_url is None
    assert (listed.lease_owner, listed.upstream_id, listed.cache_key) == (None, None, None)
    rendered = ("id", "status", "request", "created_at", "last_frame_asset", "cost_micros")
    assert all(getattr(listed, name) == getattr(job, name) for name in rendered)
    full = await store.get_job(job.id)
    assert full is not None and full.upstream_video_url == signed
