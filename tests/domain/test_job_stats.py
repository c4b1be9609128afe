"""The overview's numbers from a day of jobs: percentile, error rate, savings, budget levels."""

from __future__ import annotations

import math

from gateway.domain.job_stats import job_stats, percentile, usage_level, usage_share
from gateway.domain.video_request import VideoRequest
from gateway.store.base import Job


def job(status: str, cache: str | None = "miss", **fields: object) -> Job:
    values: dict[str, object] = {
        "id": "video_x",
        "team_id": "team_a",
        "key_id": "key_a",
        "model": "m",
        "request": VideoRequest(model="m", prompt="p"),
        "status": status,
        "created_at": 1000,
        "updated_at": 1000,
        "cache_result": cache,
        "price_micros": 500_000,
        "cost_micros": 500_000,
        **fields,
    }
    return Job(**values)  # type: ignore[arg-type]


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 0.95) is None
    assert percentile([7.0], 0.95) == 7.0
    assert percentile([float(n) for n in range(1, 101)], 0.95) == 95.0
    assert percentile([10.0, 1.0, 5.0], 0.5) == 5.0


def test_stats_count_upstream_failures_and_completion_times() -> None:
    jobs = [
        job("completed", completed_at=1010, charged_micros=500_000),
        job("completed", completed_at=1100),
        job("failed"),
        job("in_progress"),
        # Hits and joins went nowhere upstream: not in the error rate, but in the savings.
        job("completed", "hit", cost_micros=0, completed_at=1000),
        job("completed", "coalesced", cost_micros=0, completed_at=1050),
        job("failed", "coalesced", cost_micros=0),
    ]
    stats = job_stats(jobs)
    assert stats.total == 7
    assert stats.by_status == {"completed": 4, "failed": 2, "in_progress": 1}
    assert stats.by_cache == {"miss": 4, "hit": 1, "coalesced": 2}
    assert (stats.upstream_finished, stats.upstream_failed) == (3, 1)
    assert stats.error_rate == 1 / 3
    assert stats.p95_seconds == 100.0
    assert stats.saved_micros == 1_000_000  # the failed join saved nothing


def test_no_finished_jobs_means_no_rate() -> None:
    stats = job_stats([job("queued")])
    assert stats.error_rate is None and stats.p95_seconds is None


def test_budget_levels_turn_amber_then_red() -> None:
    assert usage_share(5, None) is None and usage_level(None) == "ok"
    assert usage_level(usage_share(74, 100)) == "ok"
    assert usage_level(usage_share(75, 100)) == "warn"
    assert usage_level(usage_share(90, 100)) == "over"
    assert usage_level(usage_share(150, 100)) == "over"
    assert usage_share(0, 0) == 1.0 and usage_share(1, 0) == math.inf


def test_hourly_buckets_put_each_job_in_its_creation_hour() -> None:
    from gateway.domain.job_stats import hourly

    now = 100_000.0
    jobs = [
        job("completed", created_at=int(now) - 10),  # this hour
        job("failed", created_at=int(now) - 3_599),  # this hour
        job("completed", created_at=int(now) - 3_600),  # the hour before
        job("failed", created_at=int(now) - 23 * 3_600 - 1),  # the oldest hour
        job("completed", created_at=int(now) - 24 * 3_600),  # too old
        job("completed", created_at=int(now) + 5),  # from the future (clock skew): left out
    ]
    buckets = hourly(jobs, now)
    assert len(buckets) == 24
    assert buckets[-1] == (2, 1) and buckets[-2] == (1, 0) and buckets[0] == (1, 1)
    assert sum(created for created, _ in buckets) == 4
