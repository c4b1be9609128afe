"""``python -m bench.run --only inflight``: does the job runner keep 10^4 running jobs on
schedule against an upstream that takes 50 ms to answer, and how does it scale with runners?

For each configuration (runner processes x ``poll_concurrency``), a fresh SQLite database is
seeded with ``--inflight-jobs`` running (``in_progress``) jobs whose next poll is spread evenly
over the next ``poll_max_seconds`` (30 s: the steady state of jobs that have been running a
while), starting a few seconds ahead. Then that many ``gateway worker`` processes (the runner
alone, as the chart deploys it) run against ``bench.fastupstream --running --latency 0.05``
(every poll answers ``in_progress`` after 50 ms; the fast upstream, not the Starlette sandbox,
so the upstream's own CPU does not limit the runner on this 2-core machine).

Every 0.5 s the harness reads the database (read-only) and records the *lateness*: now minus the
oldest ``next_check_at`` among due jobs no runner has claimed yet. "On schedule" means every
sample <= 1 s, i.e. every poll started within 1 s of its time. Also polls/s (the upstream's
counter), the runners' CPU per poll (``/proc/<pid>/stat``) and how far behind the runners end.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench import seed
from bench.servers import (
    Pinning,
    ServerProcess,
    start_fast_upstream,
    start_worker,
    write_gateway_config,
)
from gateway.domain.video_request import VideoRequest
from gateway.ids import new_id
from gateway.store.base import Job
from gateway.store.sqlite.rows import INSERT_JOB, job_row

LATENCY_SECONDS = 0.05
POLL_MAX_SECONDS = 30.0
START_AHEAD_SECONDS = 4.0
SAMPLE_SECONDS = 0.5
LATE_SQL = (
    "SELECT MIN(next_check_at), COUNT(*) FROM jobs WHERE next_check_at IS NOT NULL"
    " AND next_check_at <= ? AND (locked_until IS NULL OR locked_until < ?)"
)


@dataclass
class InflightResult:
    jobs: int
    runners: int
    poll_concurrency: int
    seconds: float
    polls: int = 0
    polls_per_second: float = 0.0
    expected_polls_per_second: float = 0.0
    lateness_max: float = 0.0
    lateness_p99: float = 0.0
    lateness_p50: float = 0.0
    backlog_max: int = 0
    cpu_us_per_poll: float | None = None
    cpu_percent_per_runner: list[float] = field(default_factory=list)
    samples: list[tuple[float, float, int]] = field(default_factory=list)  # t, lateness, due

    @property
    def on_schedule(self) -> bool:
        return self.lateness_max <= 1.0


def seed_running(path: Path, jobs: int, start: float) -> None:
    """``jobs`` in_progress jobs (one team's 1,000 keys), next polls over ``POLL_MAX_SECONDS``."""
    now = time.time()
    who, teams, keys = seed.principals(now)
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA synchronous = OFF")
        db.execute("BEGIN")
        db.executemany("INSERT INTO teams (id, name, created_at) VALUES (?, ?, ?)", teams)
        db.executemany(
            "INSERT INTO api_keys (id, team_id, name, key_hash, prefix, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            keys,
        )
        rows = []
        for i in range(jobs):
            k = i % seed.KEYS
            created = now - 600
            rows.append(
                job_row(
                    Job(
                        id=new_id("video", now=created + i / jobs),
                        team_id=who.team_ids[k % seed.TEAMS],
                        key_id=who.key_ids[k],
                        model=seed.MODEL,
                        request=VideoRequest(model=seed.MODEL, prompt=f"inflight {i}"),
                        status="in_progress",
                        created_at=int(created),
                        updated_at=int(created),
                        progress=50,
                        upstream_id=f"inflight_{i}",
                        refreshed_at=created,
                        attempts=6,  # past the back-off ramp: every poll 30 s apart
                        next_check_at=start + i * POLL_MAX_SECONDS / jobs,
                    )
                )
            )
        db.executemany(INSERT_JOB, rows)
        db.execute("COMMIT")
    finally:
        db.close()


def _cpu(processes: list[ServerProcess]) -> list[float]:
    out = []
    for p in processes:
        try:
            out.append(p.cpu_seconds())
        except OSError:
            out.append(0.0)
    return out


def _sample_lateness(
    database: Path,
    workers: list[ServerProcess],
    result: InflightResult,
    seconds: float,
    log: Callable[[str], None],
) -> tuple[list[float], float]:
    """Every ``SAMPLE_SECONDS`` for ``seconds``: how late the oldest due poll is and how many
    are due (into ``result.samples``); (the lateness samples, the seconds measured)."""
    began = time.monotonic()
    lateness: list[float] = []
    db = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)
    try:
        while time.monotonic() - began < seconds:
            time.sleep(SAMPLE_SECONDS)
            now = time.time()
            oldest, due = db.execute(LATE_SQL, (now, now)).fetchone()
            late = max(0.0, now - oldest) if oldest is not None else 0.0
            lateness.append(late)
            result.samples.append((round(time.monotonic() - began, 2), late, int(due)))
            dead = [w for w in workers if not w.alive()]
            if dead:
                log(f"  inflight: {dead[0].name} exited: {dead[0].log_tail()}")
                break
    finally:
        db.close()
    return lateness, time.monotonic() - began


def _summarise(
    result: InflightResult, lateness: list[float], elapsed: float, polls: int, used: list[float]
) -> None:
    """The run's figures from its samples, poll count and CPU seconds used per runner."""
    result.seconds = elapsed
    result.polls = polls
    result.polls_per_second = polls / elapsed
    result.expected_polls_per_second = result.jobs / POLL_MAX_SECONDS
    result.lateness_max = max(lateness, default=0.0)
    result.lateness_p99 = _quantile(lateness, 0.99)
    result.lateness_p50 = _quantile(lateness, 0.5)
    result.backlog_max = max((s[2] for s in result.samples), default=0)
    result.cpu_us_per_poll = sum(used) * 1e6 / polls if polls else None
    result.cpu_percent_per_runner = [100 * u / elapsed for u in used]


def measure_one(
    workdir: Path,
    pinning: Pinning,
    jobs: int,
    runners: int,
    concurrency: int,
    seconds: float,
    log: Callable[[str], None],
) -> InflightResult:
    workdir.mkdir(parents=True, exist_ok=True)
    upstream = start_fast_upstream(
        workdir, pinning, 64 * 1024, running=True, latency=LATENCY_SECONDS, name="slowupstream"
    )
    workers: list[ServerProcess] = []
    result = InflightResult(jobs, runners, concurrency, seconds)
    try:
        extra = (
            f"\n[jobs]\npoll_concurrency = {concurrency}\npoll_max_seconds = {POLL_MAX_SECONDS}\n"
        )
        write_gateway_config(workdir, upstream.url, extra=extra)
        database = workdir / "gateway.db"
        asyncio.run(seed.migrate(f"sqlite:///{database}"))
        start = time.time() + START_AHEAD_SECONDS + 2.0 * runners
        seed_running(database, jobs, start)
        workers = [start_worker(workdir, n, []) for n in range(runners)]
        with httpx.Client(base_url=upstream.url, timeout=10) as client:
            polls_before = client.get("/_sandbox/stats").json().get("poll", 0)
            while time.time() < start:
                time.sleep(0.05)
            cpu_before = _cpu(workers)
            lateness, elapsed = _sample_lateness(database, workers, result, seconds, log)
            cpu_after = _cpu(workers)
            polls = client.get("/_sandbox/stats").json().get("poll", 0) - polls_before
        used = [a - b for a, b in zip(cpu_after, cpu_before, strict=True)]
        _summarise(result, lateness, elapsed, polls, used)
        log(
            f"inflight {jobs:,} jobs, {runners} runner(s) x {concurrency}: "
            f"{result.polls_per_second:,.0f} polls/s (schedule {result.expected_polls_per_second:,.0f}), "
            f"lateness max {result.lateness_max:.2f} s p99 {result.lateness_p99:.2f} s, "
            f"CPU {result.cpu_us_per_poll or 0:,.0f} µs/poll, "
            f"runners {', '.join(f'{c:.0f}%' for c in result.cpu_percent_per_runner)}"
        )
    finally:
        for w in workers:
            w.stop()
        upstream.stop()
    return result


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_inflight(
    workdir: Path,
    pinning: Pinning,
    jobs: int,
    configs: list[tuple[int, int]],
    seconds: float,
    log: Callable[[str], None],
) -> list[InflightResult]:
    return [
        measure_one(workdir / f"r{r}c{c}", pinning, jobs, r, c, seconds, log) for r, c in configs
    ]


def inflight_table(results: list[InflightResult]) -> str:
    header = [
        "running jobs",
        "runners x poll_concurrency",
        "polls/s (schedule needs)",
        "lateness p50 / p99 / max s",
        "due backlog max",
        "CPU µs/poll",
        "runner CPU %",
        "on schedule (max <= 1 s)",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in results:
        lines.append(
            "| "
            + " | ".join(
                [
                    f"{r.jobs:,}",
                    f"{r.runners} x {r.poll_concurrency}",
                    f"{r.polls_per_second:,.0f} ({r.expected_polls_per_second:,.0f})",
                    f"{r.lateness_p50:.2f} / {r.lateness_p99:.2f} / {r.lateness_max:.2f}",
                    f"{r.backlog_max:,}",
                    "—" if r.cpu_us_per_poll is None else f"{r.cpu_us_per_poll:,.0f}",
                    ", ".join(f"{c:.0f}" for c in r.cpu_percent_per_runner),
                    "PASS" if r.on_schedule else "FAIL",
                ]
            )
            + " |"
        )
    return "\n".join(lines)


def to_json(results: list[InflightResult]) -> list[dict[str, Any]]:
    return [{**asdict(r), "on_schedule": r.on_schedule} for r in results]
