"""Persisting one large video: a job created through the gateway whose video the gateway's job
runner copies from the sandbox into its blob store before the job reads ``completed``.

Measured from the create until ``GET /v1/videos/{id}`` first says ``completed`` (polled every
few milliseconds): the gateway's resident memory (the same ``VmRSS`` sampler as the large
download, ``VmHWM`` before and after as the cross-check), and the time from the upstream
finishing to ``completed``. The sandbox runs with no queue or run time, so the upstream is
finished at once; the gateway records the moment it learns so (its first poll of the job,
``upstream_finished_at`` in its database, read-only), and that is where persistence starts.
The runner's lease on the job (seen in the database while the job is ``downloading``) marks when
the copy itself began, so "copy" time leaves out the wait for the runner to pick the job up.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from bench.download import RssWatcher
from bench.servers import ServerProcess
from bench.workload import Workload, WorkloadError, create_body

POLL_SECONDS = 0.005
TIMEOUT_SECONDS = 120.0
# The gateway's default ``[jobs] lease_seconds``: a lease's locked_until minus this is its start.
GATEWAY_LEASE_SECONDS = 60.0
JOB_SQL = "SELECT status, lease_owner, locked_until, upstream_finished_at FROM jobs WHERE id = ?"


@dataclass(frozen=True)
class PersistenceResult:
    """One large job persisted by the gateway; times are wall-clock seconds (``time.time``)."""

    job_id: str
    video_bytes: int
    created_at: float  # just before the create request
    upstream_finished_at: float | None  # when the gateway learnt the upstream had finished
    copy_started_at: float | None  # the runner's lease on the downloading job
    completed_at: float  # the first GET that said completed
    rss_before_kib: int
    rss_peak_kib: int
    hwm_before_kib: int
    hwm_after_kib: int

    @property
    def create_to_completed_seconds(self) -> float:
        return self.completed_at - self.created_at

    @property
    def persist_seconds(self) -> float | None:
        """Upstream finished (as the gateway recorded it) until completed."""
        if self.upstream_finished_at is None:
            return None
        return self.completed_at - self.upstream_finished_at

    @property
    def copy_seconds(self) -> float | None:
        if self.copy_started_at is None:
            return None
        return self.completed_at - self.copy_started_at

    def _throughput(self, seconds: float | None) -> float | None:
        return self.video_bytes / 2**20 / seconds if seconds and seconds > 0 else None

    @property
    def mib_per_second(self) -> float | None:
        return self._throughput(self.persist_seconds)

    @property
    def copy_mib_per_second(self) -> float | None:
        return self._throughput(self.copy_seconds)

    @property
    def rss_growth_mib(self) -> float:
        return max(0, self.rss_peak_kib - self.rss_before_kib) / 1024

    @property
    def hwm_growth_mib(self) -> float:
        return max(0, self.hwm_after_kib - self.hwm_before_kib) / 1024


def _job_row(database: Path, job_id: str) -> tuple[str, str | None, float | None, float | None]:
    uri = f"file:{database}?mode=ro"
    with sqlite3.connect(uri, uri=True, timeout=1.0) as db:
        row = db.execute(JOB_SQL, (job_id,)).fetchone()
    if row is None:
        raise WorkloadError(f"job {job_id} not in the gateway's database")
    return row[0], row[1], row[2], row[3]


def _await_completion(
    workload: Workload, database: Path, job_id: str, auth: dict[str, str]
) -> tuple[float, float | None]:
    """Poll the job until it is completed: (when it was seen completed, when its copy into
    storage started, read from the download lease while it was held)."""
    copy_started: float | None = None
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while True:
        response = workload.gateway.get(f"/v1/videos/{job_id}", headers=auth)
        seen = time.time()
        if not response.is_success:
            raise WorkloadError(f"gateway poll: HTTP {response.status_code}")
        status = response.json().get("status")
        if status == "completed":
            return seen, copy_started
        if status == "failed":
            raise WorkloadError(f"gateway job failed: {response.json().get('error')}")
        if copy_started is None:
            copy_started = _copy_started(database, job_id)
        if time.monotonic() > deadline:
            raise WorkloadError(f"gateway job still {status} after {TIMEOUT_SECONDS:.0f} s")
        time.sleep(POLL_SECONDS)


def _copy_started(database: Path, job_id: str) -> float | None:
    """When the runner took the download lease (None while it is not downloading)."""
    try:
        db_status, owner, locked_until, _ = _job_row(database, job_id)
    except sqlite3.Error:
        return None
    if db_status == "downloading" and owner is not None and locked_until:
        return locked_until - GATEWAY_LEASE_SECONDS
    return None


def persist(
    workload: Workload,
    gateway: ServerProcess,
    database: Path,
    key: str,
    prompt: str,
    video_bytes: int,
) -> PersistenceResult:
    """Create a ``video_bytes`` job through the gateway and wait until it is completed, while
    sampling the gateway's memory and the job's row."""
    workload.set_video_bytes(video_bytes)
    auth = {"Authorization": f"Bearer {key}"}
    rss_before, hwm_before = gateway.memory_kib()
    watcher = RssWatcher(gateway)
    watcher.peak = rss_before
    watcher.start()
    try:
        created = time.time()
        response = workload.gateway.post("/v1/videos", json=create_body(prompt), headers=auth)
        if not response.is_success:
            raise WorkloadError(f"gateway create: HTTP {response.status_code}: {response.text}")
        job_id: str = response.json()["id"]
        completed, copy_started = _await_completion(workload, database, job_id, auth)
    finally:
        peak = watcher.finish()
    _, hwm_after = gateway.memory_kib()
    try:
        upstream_finished = _job_row(database, job_id)[3]
    except sqlite3.Error:
        upstream_finished = None
    return PersistenceResult(
        job_id=job_id,
        video_bytes=video_bytes,
        created_at=created,
        upstream_finished_at=upstream_finished,
        copy_started_at=copy_started,
        completed_at=completed,
        rss_before_kib=rss_before,
        rss_peak_kib=peak,
        hwm_before_kib=hwm_before,
        hwm_after_kib=hwm_after,
    )


def describe(result: PersistenceResult) -> str:
    """One log line."""

    def num(value: float | None, fmt: str) -> str:
        return "n/a" if value is None else format(value, fmt)

    return (
        f"{result.video_bytes // 2**20} MiB persisted: create->completed "
        f"{result.create_to_completed_seconds:.2f} s, upstream finished->completed "
        f"{num(result.persist_seconds, '.3f')} s ({num(result.mib_per_second, ',.0f')} MiB/s), "
        f"copy {num(result.copy_seconds, '.3f')} s ({num(result.copy_mib_per_second, ',.0f')} "
        f"MiB/s), RSS +{result.rss_growth_mib:.1f} MiB, VmHWM +{result.hwm_growth_mib:.1f} MiB"
    )
