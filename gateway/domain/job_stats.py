"""What a day of jobs says at a glance: counts by state and cache outcome, what the cache saved,
the upstream's error rate and the 95th percentile time to completion. Pure: jobs in, numbers out."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

UPSTREAM_RESULTS = ("miss", "bypass", None)  # cache outcomes that sent a job upstream
FINISHED = ("completed", "failed")


@dataclass(frozen=True, slots=True)
class JobStats:
    total: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    by_cache: dict[str, int] = field(default_factory=dict)
    saved_micros: int = 0  # list price minus what was charged, for hits and joins
    upstream_finished: int = 0
    upstream_failed: int = 0
    p95_seconds: float | None = None

    @property
    def error_rate(self) -> float | None:
        """Failed share of upstream jobs that finished; None before any finished."""
        if not self.upstream_finished:
            return None
        return self.upstream_failed / self.upstream_finished


def hourly(jobs: Iterable[Any], now: float, hours: int = 24) -> list[tuple[int, int]]:
    """(created, failed) per hour for the last ``hours`` hours, oldest first: the shape of a
    day at a glance (a failure counts in the hour its job was created)."""
    buckets = [[0, 0] for _ in range(hours)]
    for job in jobs:
        age = now - job.created_at
        if 0 <= age < hours * 3600:
            bucket = buckets[hours - 1 - int(age // 3600)]
            bucket[0] += 1
            if job.status == "failed":
                bucket[1] += 1
    return [(created, failed) for created, failed in buckets]


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """The nearest-rank percentile (no interpolation: an observed value); None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def job_stats(jobs: Iterable[Any]) -> JobStats:
    """Stats over ``jobs`` (``store.base.Job`` records; duck-typed to keep this module pure)."""
    statuses: Counter[str] = Counter()
    caches: Counter[str] = Counter()
    saved = finished = failed = 0
    durations: list[float] = []
    total = 0
    for job in jobs:
        total += 1
        statuses[job.status] += 1
        caches[job.cache_result or "none"] += 1
        if job.cache_result in ("hit", "coalesced") and job.status != "failed":
            saved += max(0, job.price_micros - (job.charged_micros or job.cost_micros))
        if job.cache_result in UPSTREAM_RESULTS and job.status in FINISHED:
            finished += 1
            if job.status == "failed":
                failed += 1
            elif job.completed_at is not None:
                durations.append(float(job.completed_at - job.created_at))
    return JobStats(
        total=total,
        by_status=dict(statuses),
        by_cache=dict(caches),
        saved_micros=saved,
        upstream_finished=finished,
        upstream_failed=failed,
        p95_seconds=percentile(durations, 0.95),
    )


def usage_share(used: int, limit: int | None) -> float | None:
    """How much of a budget is used (0.0-1.0+); None without a limit."""
    if limit is None:
        return None
    if limit == 0:
        return 1.0 if used == 0 else math.inf
    return used / limit


def usage_level(share: float | None) -> str:
    """ "ok" below 75 %, "warn" from 75 %, "over" from 90 % (amber and red on the bars)."""
    if share is None or share < 0.75:
        return "ok"
    return "warn" if share < 0.9 else "over"
