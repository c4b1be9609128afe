"""Measuring a scenario: probe each target, warm it up, then run wrk ``runs`` times per target,
the target order rotating each round so slow drift spreads evenly. Around every wrk run the
front process's CPU time (``/proc/<pid>/stat``) and the sandbox's call counters are read.

Also the single large downloads, one per target and round. Failures become "n/a (reason)".
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import httpx

from bench.download import DownloadResult, download
from bench.scenarios import TARGETS, Probe, Scenario, TargetPlan, Unavailable
from bench.servers import ServerProcess
from bench.wrk import WrkError, WrkJob, run_wrk

UPSTREAM_CALLS = ("create", "poll", "content", "file", "delete")
Counters = Callable[[], dict[str, int]]


@dataclass(frozen=True)
class RunSample:
    """One wrk run against one target."""

    requests: int
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int
    statuses: dict[int, int]
    cpu_us_per_request: float | None  # the front process, during the run
    background_cpu_us_per_request: float | None  # the front process, while draining after it
    upstream_cpu_us_per_request: float | None  # the sandbox behind nginx or the gateway
    upstream_calls_per_request: float | None  # run + drain: creates, polls, downloads
    upstream_creates_per_request: float | None  # run + drain: 1.0 means nothing was deduped
    drain_seconds: float  # until the gateway's background work was done


@dataclass
class TargetOutcome:
    target: str
    samples: list[RunSample] = field(default_factory=list)
    unavailable: str | None = None


@dataclass
class ScenarioOutcome:
    scenario: Scenario
    targets: dict[str, TargetOutcome]


@dataclass
class DownloadOutcome:
    target: str
    results: list[DownloadResult] = field(default_factory=list)
    unavailable: str | None = None


def probe(request: Probe) -> str | None:
    """None when the target answers 2xx, else a short reason ("HTTP 400: ...")."""
    try:
        with (
            httpx.Client(timeout=60) as client,
            client.stream(
                request.method, request.url, headers=request.headers, content=request.body
            ) as response,
        ):
            if response.is_success:
                for _ in response.iter_raw():
                    pass
                return None
            response.read()
            try:
                message = response.json().get("error", {}).get("message")
            except ValueError:
                message = None
            return f"HTTP {response.status_code}: {message or response.text[:120]}".strip()
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"


class ScenarioRunner:
    """Runs scenarios with one set of settings."""

    def __init__(
        self,
        *,
        runs: int,
        seconds: int,
        warmup_seconds: int,
        load_prefix: list[str],
        counters: Counters,
        settle: Callable[[], float],
        log: Callable[[str], None] = print,
    ) -> None:
        self.runs = runs
        self.seconds = seconds
        self.warmup_seconds = warmup_seconds
        self.load_prefix = load_prefix
        self.counters = counters
        self.settle = settle
        self.log = log
        self._run_serial = 0
        self._nonce = f"{int(time.time()):x}"

    def measure(self, scenario: Scenario) -> ScenarioOutcome:
        outcomes = {target: TargetOutcome(target) for target in TARGETS}
        ready = self._prepare(scenario, outcomes)
        order = [t for t in TARGETS if t in ready]
        for round_no in range(self.runs):
            shift = round_no % len(order) if order else 0
            for target in order[shift:] + order[:shift]:
                self._record_run(scenario.name, round_no, ready[target], outcomes[target])
        for outcome in outcomes.values():
            _mark_all_failed(outcome)
        return ScenarioOutcome(scenario, outcomes)

    def _prepare(
        self, scenario: Scenario, outcomes: dict[str, TargetOutcome]
    ) -> dict[str, TargetPlan]:
        """Probe and warm up every target; the ones that answer 2xx are ready."""
        ready: dict[str, TargetPlan] = {}
        for target in TARGETS:
            plan = scenario.plans[target]
            if isinstance(plan, Unavailable):
                outcomes[target].unavailable = plan.reason
                continue
            reason = _dead(plan) or probe(plan.probe)
            self.settle()
            if reason is None and self.warmup_seconds > 0:
                reason = self._warm_up(plan)
            if reason is not None:
                outcomes[target].unavailable = reason
                self.log(f"  {scenario.name}/{target}: n/a ({reason})")
            else:
                ready[target] = plan
        return ready

    def _record_run(
        self, name: str, round_no: int, plan: TargetPlan, outcome: TargetOutcome
    ) -> None:
        if outcome.unavailable is not None:
            return
        try:
            sample = self._one_run(plan)
        except (WrkError, OSError, httpx.HTTPError) as exc:
            outcome.unavailable = f"run failed: {exc}"
            self.log(f"  {name}/{outcome.target}: {outcome.unavailable}")
            return
        outcome.samples.append(sample)
        self.log(
            f"  {name}/{outcome.target} run {round_no + 1}: "
            f"{sample.requests_per_second:,.0f} req/s, p50 {sample.p50_ms:.2f} ms, "
            f"p99 {sample.p99_ms:.2f} ms, non-2xx {sample.non_2xx}, "
            f"drain {sample.drain_seconds:.1f} s"
        )

    def _warm_up(self, plan: TargetPlan) -> str | None:
        try:
            run_wrk(self._job(plan), seconds=self.warmup_seconds, prefix=self.load_prefix)
        except WrkError as exc:
            return f"warm-up failed: {exc}"
        finally:
            self.settle()
        return _dead(plan)

    def _job(self, plan: TargetPlan) -> WrkJob:
        """The plan's wrk job with a fresh run id (unique prompts never repeat across runs)."""
        self._run_serial += 1
        return replace(
            plan.wrk, env={**plan.wrk.env, "BENCH_RUN_ID": f"{self._nonce}r{self._run_serial}"}
        )

    def _one_run(self, plan: TargetPlan) -> RunSample:
        """One wrk run, then the drain; the system was idle when it started."""
        counters_before = self.counters()
        cpu_before = plan.front.cpu_seconds()
        upstream_before = plan.upstream.cpu_seconds() if plan.upstream else 0.0
        result = run_wrk(self._job(plan), seconds=self.seconds, prefix=self.load_prefix)
        cpu_after = plan.front.cpu_seconds()
        upstream_cpu = plan.upstream.cpu_seconds() - upstream_before if plan.upstream else None
        drain = self.settle()
        background_cpu = plan.front.cpu_seconds() - cpu_after
        counters_after = self.counters()
        delta = {k: counters_after.get(k, 0) - counters_before.get(k, 0) for k in UPSTREAM_CALLS}
        n = result.requests

        def per_request(value: float | None, scale: float = 1e6) -> float | None:
            return value * scale / n if n and value is not None else None

        return RunSample(
            requests=n,
            requests_per_second=result.requests_per_second,
            p50_ms=result.p50_ms,
            p99_ms=result.p99_ms,
            non_2xx=result.non_2xx,
            socket_errors=result.socket_errors,
            statuses=result.statuses,
            cpu_us_per_request=per_request(cpu_after - cpu_before),
            background_cpu_us_per_request=per_request(background_cpu),
            upstream_cpu_us_per_request=per_request(upstream_cpu),
            upstream_calls_per_request=per_request(sum(delta.values()), 1.0),
            upstream_creates_per_request=per_request(delta["create"], 1.0),
            drain_seconds=drain,
        )


def _dead(plan: TargetPlan) -> str | None:
    for process in (plan.front, plan.upstream):
        if process is not None and not process.alive():
            return f"{process.name} exited with code {process.process.returncode}"
    return None


def _mark_all_failed(outcome: TargetOutcome) -> None:
    """A target whose every response was an error is n/a, not a throughput figure."""
    if outcome.unavailable is not None or not outcome.samples:
        return
    total = sum(s.requests for s in outcome.samples)
    failed = sum(s.non_2xx for s in outcome.samples)
    if total and failed == total:
        codes: dict[int, int] = {}
        for sample in outcome.samples:
            for code, n in sample.statuses.items():
                codes[code] = codes.get(code, 0) + n
        shown = ", ".join(f"HTTP {c} x{n}" for c, n in sorted(codes.items())) or f"{failed}"
        outcome.unavailable = f"every response was an error ({shown})"


def measure_downloads(
    targets: dict[str, tuple[str, dict[str, str], ServerProcess] | Unavailable],
    runs: int,
    log: Callable[[str], None] = print,
) -> dict[str, DownloadOutcome]:
    """Download the large video ``runs`` times from each target (rounds rotate the order)."""
    outcomes = {target: DownloadOutcome(target) for target in TARGETS}
    for target, spec in targets.items():
        if isinstance(spec, Unavailable):
            outcomes[target].unavailable = spec.reason
    live = [t for t in TARGETS if outcomes[t].unavailable is None and t in targets]
    for round_no in range(runs):
        shift = round_no % len(live) if live else 0
        for target in live[shift:] + live[:shift]:
            outcome = outcomes[target]
            spec = targets[target]
            if outcome.unavailable is not None or isinstance(spec, Unavailable):
                continue
            url, headers, watched = spec
            try:
                result = download(url, headers, watched)
            except OSError as exc:
                outcome.unavailable = f"{type(exc).__name__}: {exc}"
                continue
            if not 200 <= result.status < 300:
                outcome.unavailable = f"HTTP {result.status}"
                continue
            outcome.results.append(result)
            log(
                f"  download/{target} run {round_no + 1}: {result.mib_per_second:,.0f} MiB/s, "
                f"{watched.name} RSS +{result.rss_growth_mib:.1f} MiB"
            )
    return outcomes
