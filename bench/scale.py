"""``python -m bench.run --only scale``: what the request paths, ``usage`` and ``audit`` cost as
the stored work grows, on SQLite and on PostgreSQL.

Per store, the database is seeded (``bench.seed``: straight into the tables, in bulk) to each
size in turn (10^4, 10^5, 10^6 finished videos by default; ``--scale-max`` caps it), and at
each size a fresh ``gateway serve`` over it (the sandbox upstream, the runner on, as deployed)
is measured with wrk (``-c16``, ``--duration`` seconds per path, one run):

- status: ``GET /v1/videos/{id}`` of a seeded video in the middle of its team's history;
- list: ``GET /v1/videos?limit=20`` (first page) and the same ``after=`` an id half-way back
  (a deep page);
- create: unique prompts (4 KiB videos; the runner's work drains afterwards);
- cache hit: the same seeded create every time;

then, timed from the harness over HTTP (median of a few calls): ``GET /admin/usage`` for one team
since the first of this month (a team-month) and since the beginning, ``GET /admin/audit`` for
that team and this month, for that team (every window), and for the whole ledger against every
counter (information: it reads every ledger row by design); and ``GET /metrics`` (its snapshot
counts jobs and sums the assets table on every scrape). Database bytes per video: SQLite's file size, or
``pg_database_size``, divided by the videos; also the ``jobs`` table alone (with its indexes); both minus the empty migrated database, so a fixed overhead (about 7 MiB
for an empty PostgreSQL database) is not spread over the videos.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench import seed
from bench.servers import (
    ADMIN_TOKEN,
    Pinning,
    ServerProcess,
    start_gateway,
    start_sandbox,
)
from bench.settle import PENDING_SQL, Quiescence
from bench.workload import Workload
from bench.wrk import WrkError, WrkJob, run_wrk

SIZES = (10_000, 100_000, 1_000_000)
POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
WRITE_VIDEO_BYTES = 4 * 1024
ADMIN_CALLS = 5


@dataclass
class PathResult:
    requests_per_second: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    non_2xx: int = 0
    error: str | None = None


@dataclass
class SizeResult:
    store: str
    videos: int
    seed_seconds: float
    db_bytes: int | None
    jobs_bytes: int | None
    paths: dict[str, PathResult] = field(default_factory=dict)
    admin_seconds: dict[str, float | None] = field(default_factory=dict)
    audit_clean: bool | None = None

    @property
    def bytes_per_video(self) -> float | None:
        return self.db_bytes / self.videos if self.db_bytes is not None else None

    @property
    def jobs_bytes_per_video(self) -> float | None:
        return self.jobs_bytes / self.videos if self.jobs_bytes is not None else None


# -- databases --------------------------------------------------------------------------------


@contextlib.contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    """A new database on the local server, dropped afterwards; yields its URL."""
    name = f"bench_scale_{uuid.uuid4().hex[:10]}"

    async def run(sql: str) -> None:
        db = await asyncpg.connect(admin_url)
        try:
            await db.execute(sql)
        finally:
            await db.close()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def sqlite_sizes(path: Path) -> tuple[int, int | None]:
    """File bytes (database + WAL) and the jobs table with its indexes (``dbstat``)."""
    total = sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            row = db.execute(
                "SELECT SUM(pgsize) FROM dbstat WHERE name = 'jobs' OR name IN"
                " (SELECT name FROM sqlite_master WHERE tbl_name = 'jobs' AND type = 'index')"
                " OR name LIKE 'sqlite_autoindex_jobs%'"
            ).fetchone()
        return total, int(row[0]) if row and row[0] is not None else None
    except sqlite3.Error:
        return total, None


async def postgres_sizes(url: str) -> tuple[int, int]:
    db = await asyncpg.connect(url)
    try:
        await db.execute("VACUUM ANALYZE")
        total = await db.fetchval("SELECT pg_database_size(current_database())")
        jobs = await db.fetchval("SELECT pg_total_relation_size('jobs')")
        return int(total), int(jobs)
    finally:
        await db.close()


def _sample_video(store: str, url: str, team_id: str) -> tuple[str, str]:
    """A video half-way back in the team's history (status) and the id for a deep page."""
    sql = "SELECT id FROM jobs WHERE team_id = {p} ORDER BY id LIMIT 1 OFFSET {p2}"
    if store == "sqlite":
        with sqlite3.connect(seed.parse_sqlite_url(url)) as db:
            count = db.execute("SELECT COUNT(*) FROM jobs WHERE team_id = ?", (team_id,))
            half = int(count.fetchone()[0]) // 2
            row = db.execute(sql.format(p="?", p2="?"), (team_id, half)).fetchone()
        return str(row[0]), str(row[0])

    async def fetch() -> str:
        db = await asyncpg.connect(url)
        try:
            n = await db.fetchval("SELECT COUNT(*) FROM jobs WHERE team_id = $1", team_id)
            return str(await db.fetchval(sql.format(p="$1", p2="$2"), team_id, int(n) // 2))
        finally:
            await db.close()

    found = asyncio.run(fetch())
    return found, found


class PostgresQuiescence(Quiescence):
    """Quiescence that counts unfinished jobs in the PostgreSQL database."""

    def __init__(self, url: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(None, *args, **kwargs)
        self.url = url

    def pending_jobs(self) -> int | None:
        async def count() -> int:
            db = await asyncpg.connect(self.url)
            try:
                sql = PENDING_SQL
                return int(await db.fetchval(sql))
            finally:
                await db.close()

        return asyncio.run(count())


# -- measuring one size ----------------------------------------------------------------------


class ScaleRun:
    """Seeds one store size by size and measures a gateway over it at each size."""

    def __init__(
        self,
        workdir: Path,
        pinning: Pinning,
        sandbox: ServerProcess,
        seconds: int,
        log: Callable[[str], None],
    ) -> None:
        self.workdir = workdir
        self.pinning = pinning
        self.sandbox = sandbox
        self.seconds = seconds
        self.log = log

    def _sizes(self, store: str, url: str) -> tuple[int, int | None]:
        if store == "sqlite":
            return sqlite_sizes(Path(seed.parse_sqlite_url(url)))
        return asyncio.run(postgres_sizes(url))

    def run_store(
        self, store: str, url: str, sizes: list[int], results: list[SizeResult]
    ) -> list[SizeResult]:
        """Seed and measure each size; every result is appended to ``results`` as it comes
        (and written to bench/out/scale-partial.json), so a failure later keeps it."""
        asyncio.run(seed.migrate(url))
        empty, empty_jobs = self._sizes(store, url)  # subtracted: bytes a video adds
        who: seed.Principals | None = None
        done = 0
        for size in sizes:
            started = time.monotonic()
            if store == "sqlite":
                who = seed.seed_sqlite(url, who, done, size - done, sizes[-1])
            else:
                who = asyncio.run(seed.seed_postgres(url, who, done, size - done, sizes[-1]))
            seeded = time.monotonic() - started
            done = size
            db_bytes, jobs_bytes = self._sizes(store, url)
            result = SizeResult(
                store,
                size,
                seeded,
                db_bytes - empty,
                None if jobs_bytes is None else jobs_bytes - (empty_jobs or 0),
            )
            self.log(
                f"scale/{store}: {size:,} videos seeded (+{seeded:.1f} s), "
                f"{(db_bytes or 0) / size:,.0f} B/video"
            )
            assert who is not None
            self.measure(result, url, who)
            results.append(result)
            partial = Path(__file__).resolve().parent / "out" / "scale-partial.json"
            partial.parent.mkdir(exist_ok=True)
            partial.write_text(json.dumps(to_json(results), indent=2))
        return results

    def measure(self, result: SizeResult, url: str, who: seed.Principals) -> None:
        workdir = self.workdir / f"{result.store}-{result.videos}"
        workdir.mkdir(parents=True, exist_ok=True)
        gateway = start_gateway(
            workdir,
            self.pinning,
            self.sandbox.url,
            database_url=url,
        )
        workload = Workload(gateway.url, self.sandbox.url, ADMIN_TOKEN)
        try:
            video, deep_after = _sample_video(result.store, url, who.team_ids[0])
            key = seed.key_plaintext(0)  # key 0 belongs to team 0
            quiet: Quiescence = (
                Quiescence(
                    Path(seed.parse_sqlite_url(url)),
                    [gateway, self.sandbox],
                    workload.upstream_counters,
                    self.log,
                )
                if result.store == "sqlite"
                else PostgresQuiescence(
                    url, [gateway, self.sandbox], workload.upstream_counters, self.log
                )
            )
            quiet.wait()
            base = f"{gateway.url}/v1/videos"
            gets = {
                "status": f"{base}/{video}",
                "list": f"{base}?limit=20",
                "list_deep": f"{base}?limit=20&after={deep_after}",
            }
            for name, target in gets.items():
                env = {"BENCH_KEY": key, "BENCH_RECORD_STATUS": "1"}
                result.paths[name] = self._wrk(WrkJob(target, "get.lua", env), result, name)
            for name, mode in (("create", "unique"), ("cache_hit", "fixed")):
                env = {"BENCH_KEY": key, "BENCH_PROMPT": mode, "BENCH_RUN_ID": f"{result.videos}"}
                result.paths[name] = self._wrk(WrkJob(base, "create.lua", env), result, name)
                quiet.wait()
            self._admin(result, gateway.url, who)
        finally:
            workload.close()
            gateway.stop()

    def _wrk(self, job: WrkJob, result: SizeResult, name: str) -> PathResult:
        try:
            out = run_wrk(job, seconds=self.seconds, prefix=self.pinning.load_prefix())
        except WrkError as exc:
            self.log(f"  scale/{result.store}/{result.videos}/{name}: {exc}")
            return PathResult(error=str(exc)[:200])
        self.log(
            f"  scale/{result.store}/{result.videos:,}/{name}: {out.requests_per_second:,.0f} "
            f"req/s, p50 {out.p50_ms:.2f} ms, p99 {out.p99_ms:.2f} ms, non-2xx {out.non_2xx}"
        )
        return PathResult(out.requests_per_second, out.p50_ms, out.p99_ms, out.non_2xx)

    def _admin(self, result: SizeResult, url: str, who: seed.Principals) -> None:
        month = datetime.now(UTC).strftime("%Y-%m-01")
        team = seed.team_name(0)
        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        calls = {
            "usage_team_month": f"/admin/usage?team={team}&since={month}&by=model",
            "usage_team_all": f"/admin/usage?team={team}&by=model",
            "audit_team_month": f"/admin/audit?team={team}&month={month[:7]}",
            "audit_team_all": f"/admin/audit?team={team}",
            "audit": "/admin/audit",
            "metrics": "/metrics",
        }
        with httpx.Client(base_url=url, headers=admin, timeout=600) as client:
            for name, path in calls.items():
                times: list[float] = []
                for _ in range(ADMIN_CALLS if name != "audit" else 1):
                    started = time.perf_counter()
                    response = client.get(path)
                    times.append(time.perf_counter() - started)
                    if not response.is_success:
                        self.log(
                            f"  scale {name}: HTTP {response.status_code} {response.text[:200]}"
                        )
                        times = []
                        break
                    if name.startswith("audit"):
                        clean = bool(response.json().get("clean"))
                        result.audit_clean = clean and result.audit_clean is not False
                result.admin_seconds[name] = statistics.median(times) if times else None
                shown = result.admin_seconds[name]
                self.log(
                    f"  scale/{result.store}/{result.videos:,}/{name}: "
                    + (f"{shown * 1000:,.1f} ms" if shown is not None else "failed")
                )


def run_scale(
    workdir: Path,
    pinning: Pinning,
    seconds: int,
    max_videos: int,
    stores: list[str],
    log: Callable[[str], None],
) -> list[SizeResult]:
    sizes = [s for s in SIZES if s <= max_videos] or [max_videos]
    if max_videos not in sizes and max_videos > sizes[-1]:
        sizes.append(max_videos)
    sandbox = start_sandbox(workdir, pinning, WRITE_VIDEO_BYTES)
    results: list[SizeResult] = []
    try:
        run = ScaleRun(workdir, pinning, sandbox, seconds, log)
        for store in stores:
            try:
                if store == "sqlite":
                    url = f"sqlite:///{workdir / 'scale.db'}"
                    run.run_store(store, url, sizes, results)
                    with contextlib.suppress(OSError):
                        for suffix in ("", "-wal", "-shm"):
                            Path(f"{workdir / 'scale.db'}{suffix}").unlink()
                else:
                    with postgres_database(POSTGRES_ADMIN_URL) as url:
                        run.run_store(store, url, sizes, results)
            except Exception as exc:  # keep what was measured; say what stopped the rest
                log(f"scale/{store}: stopped: {type(exc).__name__}: {exc}")
    finally:
        sandbox.stop()
    return results


# -- report ----------------------------------------------------------------------------------

PATHS = ("status", "list", "list_deep", "create", "cache_hit")
ADMIN = (
    "usage_team_month",
    "usage_team_all",
    "audit_team_month",
    "audit_team_all",
    "audit",
    "metrics",
)


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:,.2f}"


def scale_table(results: list[SizeResult]) -> str:
    header = ["store", "videos", "seed s", "B/video (DB)", "B/video (jobs+idx)"]
    header += [f"{p} p50 / p99 ms (req/s)" for p in PATHS]
    header += ["usage team-month ms", "usage team all-time ms", "audit team-month ms"]
    header += ["audit team all-time ms", "audit whole ledger ms (all clean)", "GET /metrics ms"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in results:
        row = [
            r.store,
            f"{r.videos:,}",
            f"{r.seed_seconds:.1f}",
            f"{r.bytes_per_video:,.0f}" if r.bytes_per_video else "—",
            f"{r.jobs_bytes_per_video:,.0f}" if r.jobs_bytes_per_video else "—",
        ]
        for p in PATHS:
            pr = r.paths.get(p, PathResult(error="not run"))
            if pr.error:
                row.append(f"n/a ({pr.error[:40]})")
            else:
                row.append(
                    f"{_ms(pr.p50_ms)} / {_ms(pr.p99_ms)} ({pr.requests_per_second or 0:,.0f})"
                    + (f", {pr.non_2xx} non-2xx" if pr.non_2xx else "")
                )
        for a in ADMIN:
            s = r.admin_seconds.get(a)
            cell = "—" if s is None else f"{s * 1000:,.1f}"
            if a == "audit" and r.audit_clean is not None:
                cell += " (clean)" if r.audit_clean else " (PROBLEMS)"
            row.append(cell)
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def scale_checks(results: list[SizeResult]) -> list[tuple[str, str, str]]:
    """(check, measured, verdict) per store: p50 at the largest size within 1.5x of the
    smallest, team-month usage and audit under 1 s, <= 4 KiB per video."""
    out: list[tuple[str, str, str]] = []
    for store in sorted({r.store for r in results}):
        mine = sorted((r for r in results if r.store == store), key=lambda r: r.videos)
        small, large = mine[0], mine[-1]
        for p in PATHS:
            a, b = small.paths.get(p), large.paths.get(p)
            if a is None or b is None or a.p50_ms is None or b.p50_ms is None:
                continue
            ratio = b.p50_ms / max(a.p50_ms, 1e-9)
            out.append(
                (
                    f"{store}: {p} p50 at {large.videos:,} within 1.5x of {small.videos:,}",
                    f"{ratio:.2f}x ({a.p50_ms:.2f} → {b.p50_ms:.2f} ms)",
                    "PASS" if ratio <= 1.5 else "FAIL",
                )
            )
        for a_name in ("usage_team_month", "audit_team_month"):
            s = large.admin_seconds.get(a_name)
            out.append(
                (
                    f"{store}: {a_name} at {large.videos:,} under 1 s",
                    "—" if s is None else f"{s:.3f} s",
                    "n/a" if s is None else ("PASS" if s < 1.0 else "FAIL"),
                )
            )
        per = large.bytes_per_video
        out.append(
            (
                f"{store}: database bytes per video (all tables, no media) <= 4 KiB",
                "—" if per is None else f"{per:,.0f} B",
                "n/a" if per is None else ("PASS" if per <= 4096 else "FAIL"),
            )
        )
    return out


def to_json(results: list[SizeResult]) -> list[dict[str, Any]]:
    return [
        {
            **asdict(r),
            "bytes_per_video": r.bytes_per_video,
            "jobs_bytes_per_video": r.jobs_bytes_per_video,
        }
        for r in results
    ]
