"""``python -m bench.run --only busy``: status and 1 MiB content while the runner persists.

A gateway (SQLite, default configuration, runner in the serve process) in front of
``bench.fastupstream`` is measured twice with wrk (``-c16``, ``--runs`` x ``--duration``):
idle, and busy, while the harness keeps creating ``--busy-rate`` videos per second of
``--busy-mib`` MiB each (unique prompts, paced from a thread pool on the load CPU), so the
runner keeps polling, downloading, hashing, writing and fsyncing large files into its storage.
Busy runs start once the first busy videos are completed (the runner is at work), and the
pacing goes on through every busy run.

Targets (issue #18): busy status p99 <= 10 ms; busy 1 MiB content >= 0.5x its idle rate. With
``--profile``, py-spy records the gateway during one busy status run (bench/out/busy-*.txt).
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import statistics
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.servers import (
    ADMIN_TOKEN,
    Pinning,
    ServerProcess,
    start_fast_upstream,
    start_gateway,
    start_worker,
)
from bench.settle import Quiescence
from bench.workload import Workload, create_body
from bench.wrk import WrkError, WrkJob, WrkResult, run_wrk

MIB = 1024 * 1024
COMPLETED_SQL = "SELECT COUNT(*) FROM jobs WHERE status = 'completed'"


@dataclass
class Phase:
    """wrk runs of one path in one phase (idle or busy)."""

    runs: list[dict[str, float]] = field(default_factory=list)

    def add(self, result: WrkResult, cpu_us: float) -> None:
        self.runs.append(
            {
                "requests_per_second": result.requests_per_second,
                "p50_ms": result.p50_ms,
                "p99_ms": result.p99_ms,
                "non_2xx": float(result.non_2xx),
                "cpu_us_per_request": cpu_us,
            }
        )

    def median(self, key: str) -> float | None:
        values = [r[key] for r in self.runs]
        return statistics.median(values) if values else None


@dataclass
class BusyResult:
    rate: float
    video_mib: int
    mode: str = "in-process"
    idle: dict[str, Phase] = field(default_factory=dict)
    busy: dict[str, Phase] = field(default_factory=dict)
    creates_sent: int = 0
    create_errors: int = 0
    completed_during_busy: int = 0
    busy_seconds: float = 0.0
    profile: str | None = None

    @property
    def persisted_mib_per_second(self) -> float:
        return self.completed_during_busy * self.video_mib / max(self.busy_seconds, 1e-9)


class Pacer:
    """Sends ``rate`` unique creates per second until stopped (a few threads, fixed schedule)."""

    def __init__(self, url: str, key: str, rate: float) -> None:
        self.url, self.key, self.rate = url, key, rate
        self.sent = 0
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._local = threading.local()

    def _client(self) -> httpx.Client:
        client: httpx.Client | None = getattr(self._local, "client", None)
        if client is None:
            client = httpx.Client(timeout=60)
            self._local.client = client
        return client

    def _one(self, n: int) -> None:
        try:
            response = self._client().post(
                self.url,
                json=create_body(f"busy {time.time_ns()} {n}"),
                headers={"Authorization": f"Bearer {self.key}"},
            )
            if not response.is_success:
                self.errors += 1
        except httpx.HTTPError:
            self.errors += 1

    def _run(self) -> None:
        with ThreadPoolExecutor(max_workers=8) as pool:
            start = time.monotonic()
            while not self._stop.is_set():
                due = start + self.sent / self.rate
                delay = due - time.monotonic()
                if delay > 0:
                    self._stop.wait(delay)
                    continue
                pool.submit(self._one, self.sent)
                self.sent += 1

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _completed(database: Path) -> int:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5) as db:
        return int(db.execute(COMPLETED_SQL).fetchone()[0])


class BusyRun:
    def __init__(
        self,
        workdir: Path,
        pinning: Pinning,
        runs: int,
        seconds: int,
        log: Callable[[str], None],
    ) -> None:
        self.workdir, self.pinning, self.runs, self.seconds, self.log = (
            workdir,
            pinning,
            runs,
            seconds,
            log,
        )

    def _load(
        self, gateway: ServerProcess, jobs: dict[str, WrkJob], phase: dict[str, Phase]
    ) -> None:
        for run in range(self.runs):
            for name, job in jobs.items():
                before = gateway.cpu_seconds()
                try:
                    result = run_wrk(job, seconds=self.seconds, prefix=self.pinning.load_prefix())
                except WrkError as exc:
                    self.log(f"  busy {name}: {exc}")
                    continue
                cpu = (gateway.cpu_seconds() - before) * 1e6 / max(result.requests, 1)
                phase.setdefault(name, Phase()).add(result, cpu)
                self.log(
                    f"  {name} run {run + 1}: {result.requests_per_second:,.0f} req/s, "
                    f"p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms, "
                    f"non-2xx {result.non_2xx}"
                )

    def run(
        self, rate: float, video_mib: int, profile: bool, split: bool = False, nice: bool = False
    ) -> BusyResult:
        """``split``: the runner in its own ``gateway worker`` process (``jobs.runner = false``
        on ``serve``), pinned to the same server CPU: the two share the core through the OS
        scheduler instead of one interpreter's GIL and event loop. ``nice``: that worker at
        ``nice 19``, so the scheduler gives the API process the core first (a bounded share
        for background work, as a CPU limit on a separate worker Deployment would)."""
        mode = ("split, nice 19" if nice else "split") if split else "in-process"
        result = BusyResult(rate, video_mib, mode=mode)
        upstream = start_fast_upstream(self.workdir, self.pinning, MIB)
        extra = "\n[jobs]\nrunner = false\n" if split else ""
        gateway = start_gateway(self.workdir, self.pinning, upstream.url, extra=extra)
        prefix = (["nice", "-n", "19"] if nice else []) + self.pinning.server_prefix()
        worker = start_worker(self.workdir, 0, prefix) if split else None
        workload = Workload(gateway.url, upstream.url, ADMIN_TOKEN)
        database = self.workdir / "gateway.db"
        try:
            workload.create_team("busy")
            key = workload.create_key("busy", "busy")
            content_job = workload.gateway_job(key, "busy content fixture", MIB)
            poll_job = workload.gateway_job(key, "busy poll fixture", 64 * 1024)
            workload.set_video_bytes(video_mib * MIB)
            watched = [gateway, upstream] + ([worker] if worker is not None else [])
            quiet = Quiescence(database, watched, workload.upstream_counters, self.log)
            quiet.wait()
            base = f"{gateway.url}/v1/videos"
            jobs = {
                "status": WrkJob(f"{base}/{poll_job}", "get.lua", {"BENCH_KEY": key}),
                "content": WrkJob(
                    f"{base}/{content_job}/content",
                    "get.lua",
                    {"BENCH_KEY": key, "BENCH_RECORD_STATUS": "0"},
                ),
            }
            self.log("busy: idle runs")
            self._load(gateway, jobs, result.idle)
            quiet.wait()
            self.log(f"busy: pacing {rate:g} creates/s of {video_mib} MiB videos")
            self._busy_runs(gateway, jobs, Pacer(base, key, rate), database, profile, result)
            quiet.wait()
        finally:
            workload.close()
            if worker is not None:
                worker.stop()
            gateway.stop()
            upstream.stop()
        return result

    def _busy_runs(
        self,
        gateway: ServerProcess,
        jobs: dict[str, WrkJob],
        pacer: Pacer,
        database: Path,
        profile: bool,
        result: BusyResult,
    ) -> None:
        """The runs while ``pacer`` sends creates, from once the runner persists videos."""
        pacer.start()
        try:
            first = _completed(database)
            deadline = time.monotonic() + 30
            while _completed(database) < first + 2 and time.monotonic() < deadline:
                time.sleep(0.1)
            began, done_before = time.monotonic(), _completed(database)
            if profile:
                result.profile = self._profile(gateway, jobs["status"])
            self._load(gateway, jobs, result.busy)
            result.busy_seconds = time.monotonic() - began
            result.completed_during_busy = _completed(database) - done_before
        finally:
            pacer.stop()
        result.creates_sent, result.create_errors = pacer.sent, pacer.errors
        self.log(
            f"busy: {pacer.sent} creates sent ({pacer.errors} errors), "
            f"{result.completed_during_busy} completed in {result.busy_seconds:.0f} s "
            f"= {result.persisted_mib_per_second:,.0f} MiB/s persisted"
        )

    def _profile(self, gateway: ServerProcess, job: WrkJob) -> str | None:
        """py-spy on the gateway during one busy status run; the top frames, as text."""
        spy = shutil.which("py-spy") or str(
            Path(__file__).resolve().parent.parent / ".venv/bin/py-spy"
        )
        if not Path(spy).exists():
            return None
        out = Path(__file__).resolve().parent / "out"
        out.mkdir(exist_ok=True)
        raw = out / "busy-profile.txt"
        spy_process = subprocess.Popen(
            [
                spy,
                "record",
                "--nonblocking",
                "-r",
                "200",
                "-f",
                "raw",
                "-o",
                str(raw),
                "-p",
                str(gateway.pid),
                "-d",
                str(self.seconds + 1),
                "--threads",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        with contextlib.suppress(WrkError):
            run_wrk(job, seconds=self.seconds, prefix=self.pinning.load_prefix())
        spy_process.wait(timeout=self.seconds + 30)
        return str(raw) if raw.exists() else None


def busy_table(results: list[BusyResult]) -> str:
    header = [
        "runner",
        "path",
        "idle req/s",
        "idle p50 / p99 ms",
        "busy req/s",
        "busy p50 / p99 ms",
    ]
    header += ["busy ÷ idle req/s", "CPU µs/req idle → busy"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for result, name in ((r, n) for r in results for n in ("status", "content")):
        idle, busy = result.idle.get(name), result.busy.get(name)
        if idle is None or busy is None or not idle.runs or not busy.runs:
            lines.append(f"| {result.mode} | {name} | n/a |  |  |  |  |  |")
            continue
        ratio = (busy.median("requests_per_second") or 0) / max(
            idle.median("requests_per_second") or 0, 1e-9
        )
        lines.append(
            f"| {result.mode} | {name} | {idle.median('requests_per_second'):,.0f} | "
            f"{idle.median('p50_ms'):.2f} / {idle.median('p99_ms'):.2f} | "
            f"{busy.median('requests_per_second'):,.0f} | "
            f"{busy.median('p50_ms'):.2f} / {busy.median('p99_ms'):.2f} | {ratio:.2f} | "
            f"{idle.median('cpu_us_per_request'):,.0f} → {busy.median('cpu_us_per_request'):,.0f} |"
        )
    return "\n".join(lines)


def busy_checks(results: list[BusyResult]) -> list[tuple[str, str, str]]:
    out: list[tuple[str, str, str]] = []
    for result in results:
        out += _checks(result)
    return out


def _checks(result: BusyResult) -> list[tuple[str, str, str]]:
    out: list[tuple[str, str, str]] = []
    status = result.busy.get("status")
    p99 = status.median("p99_ms") if status else None
    out.append(
        (
            f"busy ({result.mode} runner): status p99 <= 10 ms",
            "—" if p99 is None else f"{p99:.2f} ms",
            "n/a" if p99 is None else ("PASS" if p99 <= 10 else "FAIL"),
        )
    )
    idle, busy = result.idle.get("content"), result.busy.get("content")
    if idle and busy and idle.runs and busy.runs:
        ratio = (busy.median("requests_per_second") or 0) / max(
            idle.median("requests_per_second") or 0, 1e-9
        )
        out.append(
            (
                f"busy ({result.mode} runner): 1 MiB content >= 0.5x idle",
                f"{ratio:.2f}x",
                "PASS" if ratio >= 0.5 else "FAIL",
            )
        )
    return out


def to_json(result: BusyResult) -> dict[str, Any]:
    return {**asdict(result), "persisted_mib_per_second": result.persisted_mib_per_second}
