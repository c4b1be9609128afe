"""``python -m bench.run`` (``make bench``): start the sandbox, the gateway and nginx, make the
keys and jobs, run every scenario with wrk, print the tables and write bench/RESULTS.md, the
results block of bench/README.md and bench/out/results.json.

``--quick`` is a smoke run (1 run of 1 s per target, no warm-up) that writes only bench/out/.
``--only persistence`` starts only the sandbox and the gateway and measures ``--runs``
persistences of a 200 MiB video (bench/out/ only).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.machine import describe_machine
from bench.measure import DownloadOutcome, ScenarioOutcome, ScenarioRunner, measure_downloads
from bench.persistence import PersistenceResult, describe, persist
from bench.report import (
    DownloadFigures,
    PersistenceFigures,
    checks,
    checks_table,
    download_figures,
    figures,
    persistence_check,
    persistence_figures,
    persistence_table,
    render_body,
    render_markdown,
)
from bench.scenarios import (
    BASELINE_CREATE_BYTES,
    CONTENT_BYTES,
    CONTENTION_KEYS,
    DOWNLOAD_BYTES,
    POLL_BYTES,
    WRITE_VIDEO_BYTES,
    Deployment,
    Fixtures,
    Scenario,
    ScenarioBuilder,
    Unavailable,
)
from bench.servers import (
    ADMIN_TOKEN,
    ROOT,
    Pinning,
    ServerProcess,
    ServerStartError,
    gateway_database,
    nginx_binary,
    plan_pinning,
    start_fast_upstream,
    start_gateway,
    start_nginx,
    start_sandbox,
)
from bench.settle import Quiescence
from bench.workload import SANDBOX_KEY, Workload, WorkloadError
from bench.wrk import CONNECTIONS, wrk_binary

BENCH_DIR = Path(__file__).resolve().parent
OUT_DIR = BENCH_DIR / "out"
README = BENCH_DIR / "README.md"
RESULTS = BENCH_DIR / "RESULTS.md"
README_BLOCK = re.compile(
    r"(<!-- bench-results:start -->\n).*?(<!-- bench-results:end -->)", re.DOTALL
)
JOB_SIZES = {"poll": POLL_BYTES, "content": CONTENT_BYTES, "download": DOWNLOAD_BYTES}


def log(message: str) -> None:
    print(message, flush=True)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="wrk runs per target (default 3)")
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="warm-up seconds per target")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 1 run of 1 s, no warm-up, bench/out only"
    )
    parser.add_argument("--no-nginx", action="store_true", help="skip the nginx comparison")
    _add_scale_and_inflight_options(parser)
    _add_busy_options(parser)
    parser.add_argument(
        "--write-readme",
        action="store_true",
        help="--only scale/inflight/busy: also write the README block and the plot",
    )
    parser.add_argument(
        "--only",
        choices=["persistence", "baseline", "scale", "inflight", "busy"],
        help="focused run of one measurement (bench/out only): persistence = --runs 200 MiB "
        "jobs persisted by the gateway; baseline = the fast-upstream scenarios only; scale, "
        "inflight, busy: see bench/README.md",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.duration, args.warmup = 1, 1, 0
    if args.runs < 1 or args.duration < 1 or args.warmup < 0:
        parser.error("--runs and --duration must be at least 1, --warmup not negative")
    return args


def _add_scale_and_inflight_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--scale-max",
        type=int,
        default=1_000_000,
        help="--only scale: the largest seeded size (default 10^6; sizes 10^4, 10^5, 10^6 up to it)",
    )
    parser.add_argument(
        "--stores",
        default="sqlite,postgres",
        help="--only scale: the stores to seed and measure (default sqlite,postgres)",
    )
    parser.add_argument(
        "--inflight-jobs", type=int, default=10_000, help="--only inflight: running jobs"
    )
    parser.add_argument(
        "--inflight-configs",
        default="1x16,1x64,2x64",
        help="--only inflight: RUNNERSxPOLL_CONCURRENCY, comma-separated (default 1x16,1x64,2x64)",
    )
    parser.add_argument(
        "--inflight-seconds",
        type=float,
        default=40.0,
        help="--only inflight: seconds measured per configuration (default 40: over a 30 s poll cycle)",
    )


def _add_busy_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--busy-rate", type=float, default=20.0, help="--only busy: creates per second"
    )
    parser.add_argument(
        "--busy-mib", type=int, default=8, help="--only busy: MiB per created video"
    )
    parser.add_argument(
        "--profile", action="store_true", help="--only busy: py-spy the gateway while busy"
    )
    parser.add_argument(
        "--busy-modes",
        default="in-process,split",
        help="--only busy: where the runner runs: in-process (inside serve), split (its own "
        "gateway worker process on the same CPU), split-nice (that, at nice 19); default "
        "in-process,split",
    )


def ensure_tools(notes: list[str]) -> None:
    """Run bench/setup.sh when wrk or nginx is missing; wrk is required, nginx is not."""
    if wrk_binary() is None or nginx_binary() is None:
        log("wrk or nginx missing: running bench/setup.sh")
        subprocess.run(["sh", str(BENCH_DIR / "setup.sh")], check=False)
    if wrk_binary() is None:
        sys.exit("wrk is required and could not be installed (see bench/setup.sh)")
    if nginx_binary() is None:
        notes.append("nginx is not installed: the nginx comparison is skipped")


@contextmanager
def deployment(
    workdir: Path, pinning: Pinning, no_nginx: bool, notes: list[str], fast: bool = False
) -> Iterator[Deployment]:
    """Start the three servers and stop them (by pid) however the block ends. ``fast``: the
    upstream is ``bench.fastupstream`` (the honest baseline) instead of the sandbox."""
    started: list[ServerProcess] = []
    try:
        workdir.mkdir(exist_ok=True)
        sandbox = (
            start_fast_upstream(workdir, pinning, POLL_BYTES)
            if fast
            else start_sandbox(workdir, pinning, POLL_BYTES)
        )
        started.append(sandbox)
        log(f"{sandbox.name}  {sandbox.url} (pid {sandbox.pid})")
        gateway: ServerProcess | Unavailable
        try:
            gateway = start_gateway(workdir, pinning, sandbox.url)
            started.append(gateway)
            log(f"gateway  {gateway.url} (pid {gateway.pid})")
        except ServerStartError as exc:
            gateway = Unavailable(f"gateway did not start: {exc}")
            notes.append(gateway.reason)
        nginx: ServerProcess | Unavailable
        if no_nginx:
            nginx = Unavailable("skipped (--no-nginx)")
        elif nginx_binary() is None:
            nginx = Unavailable("nginx not installed")
        else:
            try:
                nginx = start_nginx(workdir, pinning, sandbox.url)
                started.append(nginx)
                log(f"nginx    {nginx.url} (pid {nginx.pid})")
            except ServerStartError as exc:
                nginx = Unavailable(f"nginx did not start: {exc}")
                notes.append(nginx.reason)
        yield Deployment(sandbox, nginx, gateway)
    finally:
        for server in reversed(started):
            server.stop()


def _attempt(what: str, action: Any, *args: Any) -> Any:
    """``action(*args)``, or an ``Unavailable`` saying what failed."""
    try:
        return action(*args)
    except (WorkloadError, httpx.HTTPError, OSError, KeyError, ValueError) as exc:
        reason = f"{what}: {exc}"
        log(f"  setup: {reason}")
        return Unavailable(reason)


@dataclass
class Persistence:
    """The gateway persisting the 200 MiB fixture job (or why that could not be measured)."""

    results: list[PersistenceResult] = dataclasses.field(default_factory=list)
    unavailable: str | None = None

    def figures(self) -> PersistenceFigures:
        return persistence_figures(self.results, DOWNLOAD_BYTES, self.unavailable)


def _persisted_job(
    deploy: Deployment, workload: Workload, workdir: Path, key: str, prompt: str, out: Persistence
) -> str | Unavailable:
    """The gateway's 200 MiB fixture job, its persistence measured on the way."""
    assert isinstance(deploy.gateway, ServerProcess)
    result: PersistenceResult | Unavailable = _attempt(
        "gateway download job (persistence)",
        persist,
        workload,
        deploy.gateway,
        gateway_database(workdir),
        key,
        prompt,
        DOWNLOAD_BYTES,
    )
    if isinstance(result, Unavailable):
        out.unavailable = result.reason
        return result
    log(f"  persistence: {describe(result)}")
    out.results.append(result)
    job_id: str = result.job_id
    return job_id


def prepare_fixtures(
    deploy: Deployment, workload: Workload, workdir: Path, persistence: Persistence
) -> Fixtures:
    """Keys through the admin API, then a finished job of each size on each side; making the
    gateway's 200 MiB job is the persistence measurement."""
    gateway_key: str | Unavailable
    keys_file: Path | Unavailable
    if isinstance(deploy.gateway, Unavailable):
        gateway_key = keys_file = deploy.gateway
    else:
        team = _attempt("admin team", workload.create_team, "bench")
        gateway_key = (
            team
            if isinstance(team, Unavailable)
            else _attempt("admin key", workload.create_key, "bench", "bench")
        )
        keys = _attempt(
            "contention keys",
            workload.create_keys,
            "bench-contention",
            CONTENTION_KEYS,
            workdir / "gateway-keys.txt",
        )
        keys_file = keys if isinstance(keys, Unavailable) else workdir / "gateway-keys.txt"
    fixtures = Fixtures(workdir, gateway_key, keys_file)
    for role, size in JOB_SIZES.items():
        prompt = f"bench setup {role} job"
        fixtures.sandbox_jobs[role] = _attempt(
            f"sandbox {role} job", workload.sandbox_job, prompt, size
        )
        if isinstance(gateway_key, Unavailable):
            fixtures.gateway_jobs[role] = gateway_key
            if role == "download":
                persistence.unavailable = gateway_key.reason
        elif role == "download":
            fixtures.gateway_jobs[role] = _persisted_job(
                deploy, workload, workdir, gateway_key, prompt, persistence
            )
        else:
            fixtures.gateway_jobs[role] = _attempt(
                f"gateway {role} job", workload.gateway_job, gateway_key, prompt, size
            )
    _attempt("sandbox config", workload.set_video_bytes, WRITE_VIDEO_BYTES)
    return fixtures


def download_targets(
    deploy: Deployment, fixtures: Fixtures
) -> dict[str, tuple[str, dict[str, str], ServerProcess] | Unavailable]:
    targets: dict[str, tuple[str, dict[str, str], ServerProcess] | Unavailable] = {}
    for target, front in (
        ("direct", deploy.sandbox),
        ("nginx", deploy.nginx),
        ("gateway", deploy.gateway),
    ):
        jobs = fixtures.gateway_jobs if target == "gateway" else fixtures.sandbox_jobs
        job = jobs.get("download", Unavailable("no download job"))
        key = fixtures.gateway_key if target == "gateway" else SANDBOX_KEY
        missing = next((v for v in (front, job, key) if isinstance(v, Unavailable)), None)
        if missing is not None:
            targets[target] = missing
            continue
        assert isinstance(front, ServerProcess)
        url = f"{front.url}/v1/videos/{job}/content"
        targets[target] = (url, {"Authorization": f"Bearer {key}"}, front)
    return targets


def _measure(runner: ScenarioRunner, scenario: Scenario) -> ScenarioOutcome:
    log(f"scenario {scenario.name}: {scenario.title}")
    return runner.measure(scenario)


def measure_all(
    args: argparse.Namespace, deploy: Deployment, workdir: Path, pinning: Pinning
) -> tuple[list[ScenarioOutcome], dict[str, DownloadOutcome], Persistence]:
    """Fixtures, then the read scenarios, the large download and the write scenarios."""
    gateway = deploy.gateway if isinstance(deploy.gateway, ServerProcess) else None
    # Without a gateway every gateway target is n/a and its URL is never used.
    workload = Workload(
        gateway.url if gateway else deploy.sandbox.url, deploy.sandbox.url, ADMIN_TOKEN
    )
    persistence = Persistence()
    try:
        fixtures = prepare_fixtures(deploy, workload, workdir, persistence)
        runner = settled_runner(args, deploy, workload, workdir, pinning, "setup")
        builder = ScenarioBuilder(deploy, fixtures)
        outcomes = [_measure(runner, s) for s in builder.reads()]
        log(f"download: {DOWNLOAD_BYTES // 2**20} MiB per target")
        downloads = measure_downloads(download_targets(deploy, fixtures), args.runs, log)
        outcomes += [_measure(runner, s) for s in builder.writes()]
    finally:
        workload.close()
    return outcomes, downloads, persistence


def plot_link(alt: str, plot: Path | None) -> str:
    """The README's Markdown for a plot the bench wrote (None: matplotlib is not installed)."""
    return f"![{alt}](plots/{plot.name})" if plot else "(matplotlib missing: no plot)"


def settled_runner(
    args: argparse.Namespace,
    deploy: Deployment,
    workload: Workload,
    workdir: Path,
    pinning: Pinning,
    setup: str,
) -> ScenarioRunner:
    """Wait until the setup's background work is done, then a runner that waits the same way
    between runs (``setup`` names what was set up, for the log line)."""
    gateway_db = gateway_database(workdir) if isinstance(deploy.gateway, ServerProcess) else None
    servers = [deploy.sandbox, deploy.gateway, deploy.nginx]
    quiet = Quiescence(
        gateway_db,
        [p for p in servers if isinstance(p, ServerProcess)],
        workload.upstream_counters,
        log,
    )
    log(f"settled after {setup} in {quiet.wait():.1f} s")
    return ScenarioRunner(
        runs=args.runs,
        seconds=args.duration,
        warmup_seconds=args.warmup,
        load_prefix=pinning.load_prefix(),
        counters=workload.upstream_counters,
        settle=quiet.wait,
        log=log,
    )


def baseline_fixtures(deploy: Deployment, workload: Workload, workdir: Path) -> Fixtures:
    """A key, and a finished 64 KiB (poll) and 1 MiB (content) job on each side; creates
    from then on get 1 MiB videos (the runner's copy of a 1 MiB video is part of a create)."""
    gateway_key: str | Unavailable
    if isinstance(deploy.gateway, Unavailable):
        gateway_key = deploy.gateway
    else:
        team = _attempt("admin team", workload.create_team, "bench")
        gateway_key = (
            team
            if isinstance(team, Unavailable)
            else _attempt("admin key", workload.create_key, "bench", "bench")
        )
    fixtures = Fixtures(workdir, gateway_key, Unavailable("not used by the baseline"))
    for role, size in (("poll", POLL_BYTES), ("content", CONTENT_BYTES)):
        prompt = f"bench baseline {role} job"
        fixtures.sandbox_jobs[role] = _attempt(
            f"upstream {role} job", workload.sandbox_job, prompt, size
        )
        fixtures.gateway_jobs[role] = (
            gateway_key
            if isinstance(gateway_key, Unavailable)
            else _attempt(f"gateway {role} job", workload.gateway_job, gateway_key, prompt, size)
        )
    _attempt("upstream config", workload.set_video_bytes, BASELINE_CREATE_BYTES)
    return fixtures


def measure_baseline(
    args: argparse.Namespace, deploy: Deployment, workdir: Path, pinning: Pinning
) -> list[ScenarioOutcome]:
    """The honest baseline: status, 1 MiB content and create (1 MiB videos, the runner's copy
    included) against the fast upstream, nginx and the gateway in front of it."""
    gateway = deploy.gateway if isinstance(deploy.gateway, ServerProcess) else None
    workload = Workload(
        gateway.url if gateway else deploy.sandbox.url, deploy.sandbox.url, ADMIN_TOKEN
    )
    try:
        fixtures = baseline_fixtures(deploy, workload, workdir)
        runner = settled_runner(args, deploy, workload, workdir, pinning, "baseline setup")
        return [_measure(runner, s) for s in ScenarioBuilder(deploy, fixtures).baseline()]
    finally:
        workload.close()


def run_baseline(
    args: argparse.Namespace, workdir: Path, pinning: Pinning, notes: list[str]
) -> list[ScenarioOutcome]:
    """Start the fast upstream, nginx and a gateway in ``workdir`` and measure the baseline."""
    log("baseline: fast upstream (bench.fastupstream), nginx and the gateway in front of it")
    with deployment(workdir, pinning, args.no_nginx, notes, fast=True) as deploy:
        return measure_baseline(args, deploy, workdir, pinning)


def measure_persistence(args: argparse.Namespace, deploy: Deployment, workdir: Path) -> Persistence:
    """``--only persistence``: a key, then ``--runs`` 200 MiB jobs, each persisted alone."""
    persistence = Persistence()
    if isinstance(deploy.gateway, Unavailable):
        persistence.unavailable = deploy.gateway.reason
        return persistence
    workload = Workload(deploy.gateway.url, deploy.sandbox.url, ADMIN_TOKEN)
    try:
        key = _attempt("admin team", workload.create_team, "bench")
        if not isinstance(key, Unavailable):
            key = _attempt("admin key", workload.create_key, "bench", "bench")
        if isinstance(key, Unavailable):
            persistence.unavailable = key.reason
            return persistence
        quiet = Quiescence(
            gateway_database(workdir),
            [deploy.sandbox, deploy.gateway],
            workload.upstream_counters,
            log,
        )
        for run in range(args.runs):
            quiet.wait()
            prompt = f"bench persistence job {run}"  # distinct: identical creates are deduped
            if isinstance(
                _persisted_job(deploy, workload, workdir, key, prompt, persistence), Unavailable
            ):
                break
    finally:
        workload.close()
    return persistence


def main_persistence(args: argparse.Namespace, notes: list[str]) -> int:
    """Sandbox and gateway only; prints the persistence table and writes bench/out/."""
    machine = describe_machine()
    pinning = plan_pinning()
    log(f"pinning: {pinning.note}")
    started = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="gateway-bench-") as tmp:
        workdir = Path(tmp)
        with deployment(workdir, pinning, True, notes) as deploy:
            persistence = measure_persistence(args, deploy, workdir)
    elapsed = (datetime.now(UTC) - started).total_seconds()
    fig = persistence.figures()
    found = [persistence_check(fig)]
    size_mib = DOWNLOAD_BYTES // 2**20
    meta = {
        "date": started.strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine.line(),
        "commit": machine.commit,
        "settings": f"--only persistence: {args.runs} job(s); whole run {elapsed:.0f} s",
        "pinning": pinning.note,
        "notes": notes,
    }
    body = "\n\n".join(
        [
            f"## {size_mib} MiB persistence",
            persistence_table(fig),
            "## Target checks",
            checks_table(found),
        ]
    )
    document = render_markdown(meta, body)
    log("")
    log(document)
    data = {
        **meta,
        "only": "persistence",
        "persistence": dataclasses.asdict(fig),
        "persistence_runs": [
            {**dataclasses.asdict(r), **_persistence_derived(r)} for r in persistence.results
        ],
        "checks": [dataclasses.asdict(c) for c in found],
    }
    OUT_DIR.mkdir(exist_ok=True)
    (OUT_DIR / "results.json").write_text(json.dumps(data, indent=2, default=str) + "\n")
    (OUT_DIR / "RESULTS-persistence.md").write_text(document)
    log(f"wrote {OUT_DIR / 'results.json'} and {OUT_DIR / 'RESULTS-persistence.md'}")
    return 0


def _persistence_derived(result: PersistenceResult) -> dict[str, float | None]:
    return {
        "create_to_completed_seconds": result.create_to_completed_seconds,
        "persist_seconds": result.persist_seconds,
        "mib_per_second": result.mib_per_second,
        "copy_seconds": result.copy_seconds,
        "copy_mib_per_second": result.copy_mib_per_second,
        "rss_growth_mib": result.rss_growth_mib,
        "hwm_growth_mib": result.hwm_growth_mib,
    }


def ratio_plot(scenario_figures: list[Any]) -> str:
    """bench/plots/bench.png: the gateway's req/s and p99 as multiples of nginx's, per scenario
    (markdown linking it, or a note when matplotlib is missing)."""
    from bench.plots import PLOTS_DIR, plot_bars

    groups: dict[str, dict[str, float]] = {}
    for fig in scenario_figures:
        ratios = fig.ratios.get("gateway", {}).get("nginx")
        if ratios:
            label = fig.name.replace("baseline_", "fast ")
            groups[label] = {
                "req/s ÷ nginx": ratios.get("requests_per_second") or 0.0,
                "p99 ÷ nginx": ratios.get("p99_ms") or 0.0,
            }
    plot = plot_bars(
        groups,
        ylabel="gateway ÷ nginx (same run)",
        title="gateway vs nginx: sandbox upstream, and the fast upstream (fast ...)",
        path=PLOTS_DIR / "bench.png",
        logy=True,
    )
    return plot_link("gateway vs nginx", plot)


def replace_block(name: str, text: str) -> None:
    """Replace bench/README.md's ``<!-- bench-NAME:start -->`` ... ``end`` block."""
    pattern = re.compile(
        rf"(<!-- bench-{name}:start -->\n).*?(<!-- bench-{name}:end -->)", re.DOTALL
    )
    readme = README.read_text()
    if not pattern.search(readme):
        log(f"bench/README.md has no bench-{name} block: not written")
        return
    README.write_text(pattern.sub(lambda m: m.group(1) + text + "\n" + m.group(2), readme))
    log(f"wrote the bench-{name} block of bench/README.md")


def publish(
    name: str, data: dict[str, Any], document: str, write_readme: bool, **dump: Any
) -> None:
    """A focused run's results: logged, bench/out/NAME.json and RESULTS-NAME.md, and (asked
    for) the README's bench-NAME block."""
    log("")
    log(document)
    OUT_DIR.mkdir(exist_ok=True)
    (OUT_DIR / f"{name}.json").write_text(json.dumps(data, indent=2, **dump))
    (OUT_DIR / f"RESULTS-{name}.md").write_text(document + "\n")
    if write_readme:
        replace_block(name, document)


def checks_markdown(found: list[tuple[str, str, str]]) -> str:
    """A focused run's checks as a table."""
    return "\n".join(
        ["| check | measured | verdict |", "|---|---|---|"]
        + [f"| {a} | {b} | {c} |" for a, b, c in found]
    )


def load_note() -> str:
    """The load average when a focused scenario starts (the machine is shared)."""
    return "load average " + " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main_scale(args: argparse.Namespace, notes: list[str]) -> int:
    """``--only scale``: seed each store size by size and measure (see bench/scale.py)."""
    from bench.plots import PLOTS_DIR, plot_scale
    from bench.scale import run_scale, scale_checks, scale_table, to_json

    machine = describe_machine()
    pinning = plan_pinning()
    started = datetime.now(UTC)
    load = load_note()
    log(f"pinning: {pinning.note}; {load}")
    with tempfile.TemporaryDirectory(prefix="gateway-bench-scale-") as tmp:
        results = run_scale(
            Path(tmp),
            pinning,
            args.duration,
            args.scale_max,
            [s.strip() for s in args.stores.split(",") if s.strip()],
            log,
        )
    elapsed = (datetime.now(UTC) - started).total_seconds()
    header = (
        f"Run: {started:%Y-%m-%d %H:%M} UTC, commit {machine.commit}, {machine.line()}; "
        f"{load} at the start; wrk -c{CONNECTIONS}, {args.duration} s per path, one run; "
        f"whole run {elapsed:.0f} s."
    )
    found = scale_checks(results)
    checks_md = checks_markdown(found)
    rows = to_json(results)
    plot = plot_scale(rows, header[:120], PLOTS_DIR / "scale.png")
    document = "\n\n".join([header, scale_table(results), checks_md, plot_link("scale plot", plot)])
    publish("scale", {"header": header, "results": rows}, document, args.write_readme)
    return 0


def main_inflight(args: argparse.Namespace, notes: list[str]) -> int:
    """``--only inflight``: runners keeping running jobs on schedule (see bench/inflight.py)."""
    from bench.inflight import inflight_table, run_inflight, to_json
    from bench.plots import PLOTS_DIR, plot_series

    machine = describe_machine()
    pinning = plan_pinning()
    started = datetime.now(UTC)
    load = load_note()
    configs = [tuple(int(n) for n in c.split("x")) for c in args.inflight_configs.split(",")]
    with tempfile.TemporaryDirectory(prefix="gateway-bench-inflight-") as tmp:
        results = run_inflight(
            Path(tmp),
            pinning,
            args.inflight_jobs,
            [(r, c) for r, c in configs],
            args.inflight_seconds,
            log,
        )
    elapsed = (datetime.now(UTC) - started).total_seconds()
    header = (
        f"Run: {started:%Y-%m-%d %H:%M} UTC, commit {machine.commit}, {machine.line()}; "
        f"{load} at the start; {args.inflight_seconds:.0f} s per configuration, upstream "
        f"latency 50 ms, runners not pinned; whole run {elapsed:.0f} s."
    )
    series = {
        f"{r.runners} x {r.poll_concurrency}": (
            [s[0] for s in r.samples],
            [s[1] for s in r.samples],
        )
        for r in results
    }
    plot = plot_series(
        series,
        xlabel="seconds",
        ylabel="lateness of the oldest unclaimed due poll, s",
        title=f"{args.inflight_jobs:,} running jobs, 50 ms upstream: runners x poll_concurrency",
        path=PLOTS_DIR / "inflight.png",
        hline=(1.0, "1 s target"),
    )
    document = "\n\n".join([header, inflight_table(results), plot_link("in-flight plot", plot)])
    data = {"header": header, "results": to_json(results)}
    publish("inflight", data, document, args.write_readme)
    return 0


def main_busy(args: argparse.Namespace, notes: list[str]) -> int:
    """``--only busy``: status and content idle vs while the runner persists (bench/busy.py)."""
    from bench.busy import BusyRun, busy_checks, busy_table, to_json
    from bench.plots import PLOTS_DIR, plot_bars

    machine = describe_machine()
    pinning = plan_pinning()
    started = datetime.now(UTC)
    load = load_note()
    results = []
    for mode in args.busy_modes.split(","):
        split, nice = mode.startswith("split"), mode == "split-nice"
        with tempfile.TemporaryDirectory(prefix="gateway-bench-busy-") as tmp:
            log(f"busy: runner {mode}")
            results.append(
                BusyRun(Path(tmp), pinning, args.runs, args.duration, log).run(
                    args.busy_rate, args.busy_mib, args.profile and not split, split, nice
                )
            )
    elapsed = (datetime.now(UTC) - started).total_seconds()
    sent = ", ".join(
        f"{r.mode}: {r.creates_sent} sent, {r.create_errors} errors, {r.completed_during_busy} "
        f"persisted during the busy runs = {r.persisted_mib_per_second:,.0f} MiB/s"
        for r in results
    )
    header = (
        f"Run: {started:%Y-%m-%d %H:%M} UTC, commit {machine.commit}, {machine.line()}; "
        f"{load} at the start; {pinning.note}; wrk -c{CONNECTIONS}, {args.runs} x "
        f"{args.duration} s per path and phase, medians; busy = {args.busy_rate:g} creates/s of "
        f"{args.busy_mib} MiB videos ({sent}); whole run {elapsed:.0f} s."
    )
    found = busy_checks(results)
    checks_md = checks_markdown(found)
    plot = plot_bars(
        busy_groups(results),
        ylabel="ms",
        title=f"idle vs busy ({args.busy_rate:g} creates/s of {args.busy_mib} MiB)",
        path=PLOTS_DIR / "busy.png",
    )
    document = "\n\n".join([header, busy_table(results), checks_md, plot_link("busy plot", plot)])
    data = {"header": header, "results": [to_json(r) for r in results]}
    publish("busy", data, document, args.write_readme, default=str)
    return 0


def busy_groups(results: list[Any]) -> dict[str, dict[str, float]]:
    """The busy plot's bars: status and content medians, idle and busy, per runner mode."""
    groups: dict[str, dict[str, float]] = {}
    for r in results:
        for name, metric in (("status", "p99_ms"), ("status", "p50_ms"), ("content", "p99_ms")):
            for phase in ("idle", "busy"):
                measured = getattr(r, phase).get(name)
                if measured is not None:
                    groups.setdefault(f"{name} {metric}", {})[f"{phase}, {r.mode} runner"] = (
                        measured.median(metric) or 0.0
                    )
    return groups


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    notes: list[str] = []
    ensure_tools(notes)
    if args.only == "persistence":
        return main_persistence(args, notes)
    if args.only == "scale":
        return main_scale(args, notes)
    if args.only == "inflight":
        return main_inflight(args, notes)
    if args.only == "busy":
        return main_busy(args, notes)
    return main_scenarios(args, notes)


def main_scenarios(args: argparse.Namespace, notes: list[str]) -> int:
    """The whole run (or ``--only baseline``): every scenario against the gateway and nginx."""
    machine = describe_machine()  # before pinning: nproc counts the CPUs we may use
    pinning = plan_pinning()
    log(f"pinning: {pinning.note}")
    started = datetime.now(UTC)
    outcomes, downloads, persistence = measure_everything(args, pinning, notes)
    elapsed = (datetime.now(UTC) - started).total_seconds()

    scenario_figures = [figures(o) for o in outcomes]
    download_figs = {t: download_figures(o) for t, o in downloads.items()}
    persistence_figs = persistence.figures()
    found = checks({f.name: f for f in scenario_figures}, download_figs, persistence_figs)
    meta = {
        "date": started.strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine.line(),
        "commit": machine.commit,
        "settings": (
            f"{args.runs} run(s) x {args.duration} s per target, wrk -t1 -c{CONNECTIONS}, "
            f"warm-up {args.warmup} s, medians; whole run {elapsed:.0f} s"
            + (" (--quick smoke run)" if args.quick else "")
        ),
        "pinning": pinning.note,
        "notes": notes,
    }
    body = render_body(
        scenario_figures, download_figs, found, DOWNLOAD_BYTES // 2**20, persistence_figs
    )
    if not (args.quick or args.only):
        body += "\n\n" + ratio_plot(scenario_figures)
    document = render_markdown(meta, body)
    log("")
    log(document)
    data = {
        **meta,
        "quick": args.quick,
        "scenarios": [dataclasses.asdict(f) for f in scenario_figures],
        "runs": {o.scenario.name: _runs_json(o) for o in outcomes},
        **_downloads_json(download_figs, persistence_figs, persistence.results),
        "checks": [dataclasses.asdict(c) for c in found],
    }
    write_outputs(args.quick or args.only is not None, data, document, body, args.only or "quick")
    return 0


def measure_everything(
    args: argparse.Namespace, pinning: Pinning, notes: list[str]
) -> tuple[list[ScenarioOutcome], dict[str, DownloadOutcome], Persistence]:
    """The whole deployment's scenarios (unless ``--only baseline``), then the baseline."""
    with tempfile.TemporaryDirectory(prefix="gateway-bench-") as tmp:
        workdir = Path(tmp)
        if args.only == "baseline":
            outcomes, downloads, persistence = [], {}, Persistence(unavailable="not run")
        else:
            with deployment(workdir, pinning, args.no_nginx, notes) as deploy:
                outcomes, downloads, persistence = measure_all(args, deploy, workdir, pinning)
        outcomes += run_baseline(args, workdir / "baseline", pinning, notes)
    return outcomes, downloads, persistence


def _downloads_json(
    download_figs: dict[str, DownloadFigures],
    persistence_figs: PersistenceFigures,
    persistence_runs: list[PersistenceResult],
) -> dict[str, Any]:
    return {
        "download": {t: dataclasses.asdict(f) for t, f in download_figs.items()},
        "persistence": dataclasses.asdict(persistence_figs),
        "persistence_runs": [
            {**dataclasses.asdict(r), **_persistence_derived(r)} for r in persistence_runs
        ],
    }


def _runs_json(outcome: ScenarioOutcome) -> dict[str, Any]:
    return {
        target: {
            "unavailable": result.unavailable,
            "samples": [dataclasses.asdict(s) for s in result.samples],
        }
        for target, result in outcome.targets.items()
    }


def write_outputs(
    quick: bool, data: dict[str, Any], document: str, body: str, name: str = "quick"
) -> None:
    """results.json always; RESULTS.md and the README block only from a normal run."""
    OUT_DIR.mkdir(exist_ok=True)
    (OUT_DIR / "results.json").write_text(json.dumps(data, indent=2, default=str) + "\n")
    if quick:
        (OUT_DIR / f"RESULTS-{name}.md").write_text(document)
        log(f"wrote {OUT_DIR / 'results.json'} and {OUT_DIR / f'RESULTS-{name}.md'}")
        return
    RESULTS.write_text(document)
    if README.exists():
        text = README.read_text()
        block = f"Last run: {data['date']}, commit {data['commit']}, {data['machine']}.\n\n"
        nested = re.sub(r"^## ", "### ", body, flags=re.M)  # under the README's own "##"
        new = README_BLOCK.sub(lambda m: m.group(1) + block + nested + "\n" + m.group(2), text)
        README.write_text(new)
    log(f"wrote {RESULTS.relative_to(ROOT)}, bench/README.md and {OUT_DIR / 'results.json'}")


if __name__ == "__main__":
    raise SystemExit(main())
