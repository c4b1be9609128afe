"""Job changes more than one use case writes (typed ``JobChanges``: mypy checks every key)."""

from __future__ import annotations

from gateway.store.base import Job, JobChanges
from gateway.upstream.job import UpstreamJob


def release(next_check_at: float | None) -> JobChanges:
    """Give the lease back; the job is due again at ``next_check_at`` (None: never)."""
    return {"lease_owner": None, "locked_until": None, "next_check_at": next_check_at}


def finished_upstream_changes(polled: UpstreamJob, job: Job, now: float) -> JobChanges:
    """A job the upstream reports finished: ready for the runner to store its video."""
    return {
        "delivered_seconds": polled.duration or job.request.duration,
        "status": "downloading",
        "progress": 99,
        "refreshed_at": now,
        "upstream_finished_at": now,
        "upstream_video_url": polled.video_url,
        "upstream_last_frame_url": polled.last_frame_url,
        "attempts": 0,
    }
