"""A full disk while storing a video: a storage error with its own metrics, retried without a
traceback, then failed (upstream_link_expired: a video lost) and refunded when the link runs
out; never completed, never charged."""

from __future__ import annotations

import errno
import logging
from collections.abc import AsyncIterable
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from gateway.blobs.base import BlobInfo
from gateway.blobs.filesystem import FilesystemBlobStore
from gateway.metrics import Metrics
from gateway.services.events import JobEvents

from .conftest import MakeWorld
from .support import World


class FullDisk(FilesystemBlobStore):
    """The real filesystem adapter on a disk that is full: every write fails with ENOSPC
    (what a 1 MiB tmpfs does) until ``full`` is cleared."""

    full = True

    async def _write(
        self, temp: Path, chunks: AsyncIterable[bytes], expected_size: int | None
    ) -> BlobInfo:
        if not self.full:
            return await super()._write(temp, chunks, expected_size)
        async for _ in chunks:
            raise OSError(errno.ENOSPC, "No space left on device")
        raise AssertionError("the download sent no bytes")


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


async def full_disk_world(make_world: MakeWorld) -> tuple[World, CollectorRegistry]:
    registry = CollectorRegistry()
    world = await make_world(
        blob_store=FullDisk, events=JobEvents(Metrics(registry)), link_ttl_seconds=600.0
    )
    return world, registry


async def downloading_after_one_failure(world: World) -> str:
    job = await world.create()
    for _ in range(3):
        job = await world.tick(job.id)
    assert (job.status, job.attempts) == ("downloading", 1)
    assert job.video_asset is None
    return job.id


async def test_full_disk_is_a_storage_error_retried_without_a_traceback(
    make_world: MakeWorld, caplog: pytest.LogCaptureFixture
) -> None:
    world, registry = await full_disk_world(make_world)
    caplog.set_level(logging.WARNING)
    job_id = await downloading_after_one_failure(world)

    assert sample(registry, "gateway_download_failures_total", reason="storage_error") == 1
    assert sample(registry, "gateway_blob_errors_total", reason="ENOSPC") == 1
    assert not [r for r in caplog.records if r.exc_info], "no traceback for a full disk"
    assert world.temporary_files() == []

    assert isinstance(world.blobs, FullDisk)
    world.blobs.full = False  # space freed: the next attempt stores the video
    job = await world.settle(job_id)
    assert (job.status, job.money_state, job.error_code) == ("completed", "charged", None)


async def test_disk_full_until_the_link_expires_fails_and_refunds(make_world: MakeWorld) -> None:
    world, registry = await full_disk_world(make_world)
    job_id = await downloading_after_one_failure(world)

    job = await world.settle(job_id)

    # A usable video was lost to our storage: the code the VideoLost alert watches.
    assert (job.status, job.error_code) == ("failed", "upstream_link_expired")
    assert job.money_state == "refunded"
    assert not job.charged_micros
    assert world.object_files() == world.temporary_files() == []
    assert sample(registry, "gateway_blob_errors_total", reason="ENOSPC") >= 2
