"""From measurements to figures: medians per target, ratios to nginx and to direct, the target
checks (PASS/FAIL, never failing the run) and the markdown tables printed and written to
bench/RESULTS.md. Pure apart from nothing: every function maps values to values or text.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from bench.measure import DownloadOutcome, RunSample, ScenarioOutcome
from bench.persistence import PersistenceResult
from bench.scenarios import TARGETS

RATIO_METRICS: tuple[tuple[str, str], ...] = (
    ("requests_per_second", "req/s"),
    ("p50_ms", "p50"),
    ("p99_ms", "p99"),
    ("cpu_us_per_request", "CPU/req"),
)
MIB = 1024 * 1024


@dataclass(frozen=True)
class Summary:
    """Medians over a target's runs (non-2xx and requests are totals)."""

    runs: int
    requests: int
    non_2xx: int
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    cpu_us_per_request: float | None
    background_cpu_us_per_request: float | None
    upstream_cpu_us_per_request: float | None
    upstream_calls_per_request: float | None
    upstream_creates_per_request: float | None
    drain_seconds: float


def _median(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def summarize(samples: list[RunSample]) -> Summary:
    def med(get: Callable[[RunSample], float | None]) -> float | None:
        return _median(get(s) for s in samples)

    return Summary(
        runs=len(samples),
        requests=sum(s.requests for s in samples),
        non_2xx=sum(s.non_2xx for s in samples),
        requests_per_second=med(lambda s: s.requests_per_second) or 0.0,
        p50_ms=med(lambda s: s.p50_ms) or 0.0,
        p99_ms=med(lambda s: s.p99_ms) or 0.0,
        cpu_us_per_request=med(lambda s: s.cpu_us_per_request),
        background_cpu_us_per_request=med(lambda s: s.background_cpu_us_per_request),
        upstream_cpu_us_per_request=med(lambda s: s.upstream_cpu_us_per_request),
        upstream_calls_per_request=med(lambda s: s.upstream_calls_per_request),
        upstream_creates_per_request=med(lambda s: s.upstream_creates_per_request),
        drain_seconds=med(lambda s: s.drain_seconds) or 0.0,
    )


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


@dataclass(frozen=True)
class ScenarioFigures:
    name: str
    title: str
    note: str
    summaries: dict[str, Summary]
    unavailable: dict[str, str]
    ratios: dict[str, dict[str, dict[str, float | None]]]  # target -> base -> metric -> ratio


def figures(outcome: ScenarioOutcome) -> ScenarioFigures:
    summaries: dict[str, Summary] = {}
    unavailable: dict[str, str] = {}
    for target, result in outcome.targets.items():
        if result.unavailable is not None:
            unavailable[target] = result.unavailable
        elif result.samples:
            summaries[target] = summarize(result.samples)
        else:
            unavailable[target] = "no runs"
    ratios: dict[str, dict[str, dict[str, float | None]]] = {}
    for target in ("gateway", "nginx"):
        if target not in summaries:
            continue
        for base in ("nginx", "direct"):
            if base == target or base not in summaries:
                continue
            ratios.setdefault(target, {})[base] = {
                metric: _ratio(getattr(summaries[target], metric), getattr(summaries[base], metric))
                for metric, _ in RATIO_METRICS
            }
    s = outcome.scenario
    return ScenarioFigures(s.name, s.title, s.note, summaries, unavailable, ratios)


@dataclass(frozen=True)
class DownloadFigures:
    target: str
    runs: int
    mib_per_second: float | None
    rss_growth_mib: float | None  # the largest over the runs
    hwm_growth_mib: float | None
    unavailable: str | None


def download_figures(outcome: DownloadOutcome) -> DownloadFigures:
    results = outcome.results
    return DownloadFigures(
        target=outcome.target,
        runs=len(results),
        mib_per_second=_median(r.mib_per_second for r in results),
        rss_growth_mib=max((r.rss_growth_mib for r in results), default=None),
        hwm_growth_mib=max((r.hwm_growth_mib for r in results), default=None),
        unavailable=outcome.unavailable or (None if results else "no runs"),
    )


@dataclass(frozen=True)
class PersistenceFigures:
    """The gateway persisting large videos: medians of times and throughputs, RSS growth max."""

    runs: int
    video_mib: float
    create_to_completed_seconds: float | None
    persist_seconds: float | None  # upstream finished -> completed
    mib_per_second: float | None
    copy_seconds: float | None  # runner's lease -> completed
    copy_mib_per_second: float | None
    rss_growth_mib: float | None  # the largest over the runs
    hwm_growth_mib: float | None
    unavailable: str | None


def persistence_figures(
    results: list[PersistenceResult], video_bytes: int, unavailable: str | None = None
) -> PersistenceFigures:
    return PersistenceFigures(
        runs=len(results),
        video_mib=video_bytes / MIB,
        create_to_completed_seconds=_median(r.create_to_completed_seconds for r in results),
        persist_seconds=_median(r.persist_seconds for r in results),
        mib_per_second=_median(r.mib_per_second for r in results),
        copy_seconds=_median(r.copy_seconds for r in results),
        copy_mib_per_second=_median(r.copy_mib_per_second for r in results),
        rss_growth_mib=max((r.rss_growth_mib for r in results), default=None),
        hwm_growth_mib=max((r.hwm_growth_mib for r in results), default=None),
        unavailable=unavailable or (None if results else "not run"),
    )


# -- target checks ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    name: str
    measured: str
    verdict: str  # PASS, FAIL or "n/a (reason)"


def _missing(fig: ScenarioFigures | None, *targets: str) -> str | None:
    if fig is None:
        return "n/a (scenario not run)"
    for target in targets:
        if target in fig.unavailable:
            return f"n/a ({target}: {fig.unavailable[target]})"
        if target not in fig.summaries:
            return f"n/a ({target} not measured)"
    return None


def _throughput_check(fig: ScenarioFigures | None, label: str, floor: float) -> Check:
    name = f"{label}: gateway >= {floor:g}x nginx req/s"
    missing = _missing(fig, "gateway", "nginx")
    if missing is not None or fig is None:
        return Check(name, "", missing or "n/a")
    ratio = fig.summaries["gateway"].requests_per_second / max(
        fig.summaries["nginx"].requests_per_second, 1e-9
    )
    return Check(name, f"{ratio:.3f}x", "PASS" if ratio >= floor else "FAIL")


def _tail_check(fig: ScenarioFigures | None, label: str, factor: float) -> Check:
    name = f"{label}: gateway p99 <= {factor:g}x nginx p99"
    missing = _missing(fig, "gateway", "nginx")
    if missing is not None or fig is None:
        return Check(name, "", missing or "n/a")
    ratio = fig.summaries["gateway"].p99_ms / max(fig.summaries["nginx"].p99_ms, 1e-9)
    return Check(name, f"{ratio:.2f}x", "PASS" if ratio <= factor else "FAIL")


def _latency_check(fig: ScenarioFigures | None, label: str, budget_ms: float) -> Check:
    name = f"{label}: gateway p50 within {budget_ms:g} ms of direct"
    missing = _missing(fig, "gateway", "direct")
    if missing is not None or fig is None:
        return Check(name, "", missing or "n/a")
    delta = fig.summaries["gateway"].p50_ms - fig.summaries["direct"].p50_ms
    return Check(name, f"{delta:+.2f} ms", "PASS" if delta <= budget_ms else "FAIL")


def _rss_check(name: str, growth: float | None, hwm: float | None, missing: str) -> Check:
    if growth is None:
        return Check(name, "", f"n/a ({missing})")
    worst = max(growth, hwm or 0.0)
    return Check(name, f"{worst:.1f} MiB", "PASS" if worst < 30 else "FAIL")


def persistence_check(persistence: PersistenceFigures | None) -> Check:
    name = "200 MiB persistence: gateway RSS growth < 30 MiB"
    if persistence is None:
        return _rss_check(name, None, None, "not run")
    return _rss_check(
        name,
        persistence.rss_growth_mib,
        persistence.hwm_growth_mib,
        persistence.unavailable or "not run",
    )


def checks(
    scenarios: dict[str, ScenarioFigures],
    downloads: dict[str, DownloadFigures],
    persistence: PersistenceFigures | None = None,
) -> list[Check]:
    out = [
        _throughput_check(scenarios.get("poll"), "status poll", 0.15),
        _latency_check(scenarios.get("poll"), "status poll", 2.0),
        _throughput_check(scenarios.get("create"), "create", 0.05),
        _latency_check(scenarios.get("cache_hit"), "cache hit", 2.0),
        _throughput_check(scenarios.get("content"), "1 MiB content", 0.8),
    ]
    out += [
        _throughput_check(scenarios.get("baseline_poll"), "baseline status poll", 0.4),
        _tail_check(scenarios.get("baseline_poll"), "baseline status poll", 3.0),
        _throughput_check(scenarios.get("baseline_content"), "baseline 1 MiB content", 0.8),
        _throughput_check(scenarios.get("baseline_create"), "baseline create (1 MiB)", 0.05),
    ]
    gateway = downloads.get("gateway")
    out.append(
        _rss_check(
            "200 MiB download: gateway RSS growth < 30 MiB",
            gateway.rss_growth_mib if gateway is not None else None,
            gateway.hwm_growth_mib if gateway is not None else None,
            (gateway.unavailable if gateway is not None else None) or "not run",
        )
    )
    out.append(persistence_check(persistence))
    return out


# -- markdown --------------------------------------------------------------------------------


def _num(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "—"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def short_reason(reason: str, limit: int = 160) -> str:
    """One table-safe line: the first and last lines of a multi-line reason (say, "exited with
    code 1:" and the exception at the end of a traceback), pipes escaped, length capped."""
    lines = [line.strip() for line in reason.splitlines() if line.strip()]
    text = lines[0] if len(lines) < 2 else f"{lines[0]} {lines[-1]}"
    text = text.replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def results_table(scenarios: list[ScenarioFigures]) -> str:
    header = ["scenario", "target", "req/s", "p50 ms", "p99 ms", "non-2xx", "CPU µs/req"]
    header += ["background CPU µs/req", "upstream creates / calls per req", "drain s"]
    rows: list[list[str]] = []
    for fig in scenarios:
        for target in TARGETS:
            if target in fig.unavailable:
                na = f"n/a ({short_reason(fig.unavailable[target])})"
                rows.append([fig.title, target, na, "", "", "", "", "", "", ""])
                continue
            s = fig.summaries[target]
            rows.append(
                [
                    fig.title,
                    target,
                    _num(s.requests_per_second, 0),
                    _num(s.p50_ms),
                    _num(s.p99_ms),
                    f"{s.non_2xx} / {s.requests:,}",
                    _num(s.cpu_us_per_request, 0),
                    _num(s.background_cpu_us_per_request, 0),
                    f"{_num(s.upstream_creates_per_request)} / "
                    f"{_num(s.upstream_calls_per_request)}",
                    _num(s.drain_seconds, 1),
                ]
            )
    return _table(header, rows)


def ratio_table(scenarios: list[ScenarioFigures]) -> str:
    header = ["scenario", "target"]
    header += [f"{label} ÷ {base}" for _, label in RATIO_METRICS for base in ("nginx", "direct")]
    rows: list[list[str]] = []
    for fig in scenarios:
        for target in ("gateway", "nginx"):
            if target not in fig.ratios:
                continue
            row = [fig.title, target]
            for metric, _ in RATIO_METRICS:
                for base in ("nginx", "direct"):
                    value = fig.ratios[target].get(base, {}).get(metric)
                    row.append("—" if value is None else f"{value:.2f}")
            rows.append(row)
    return _table(header, rows)


def download_table(downloads: dict[str, DownloadFigures], size_mib: int) -> str:
    header = ["target", "MiB/s (median)", "front process RSS growth, max", "VmHWM growth, max"]
    rows: list[list[str]] = []
    for target in TARGETS:
        fig = downloads.get(target)
        if fig is None:
            continue
        if fig.unavailable is not None:
            rows.append([target, f"n/a ({short_reason(fig.unavailable)})", "", ""])
            continue
        rows.append(
            [
                target,
                _num(fig.mib_per_second, 0),
                f"{_num(fig.rss_growth_mib, 1)} MiB",
                f"{_num(fig.hwm_growth_mib, 1)} MiB",
            ]
        )
    return f"Single {size_mib} MiB download, Python streaming client:\n\n" + _table(header, rows)


def persistence_table(fig: PersistenceFigures) -> str:
    intro = (
        f"{fig.video_mib:.0f} MiB video copied by the gateway's job runner from the sandbox into "
        "its blob store; from upstream finished (the gateway's `upstream_finished_at`) and from "
        "the runner's lease (copy) to the first `GET /v1/videos/{id}` that says completed; "
        f"RSS sampled from create to completed ({fig.runs} job(s), medians, RSS max):"
    )
    header = ["upstream finished → completed", "MiB/s", "copy (lease → completed)", "copy MiB/s"]
    header += ["create → completed", "gateway RSS growth, max", "VmHWM growth, max"]
    if fig.unavailable is not None:
        row = [f"n/a ({short_reason(fig.unavailable)})"] + [""] * (len(header) - 1)
    else:
        row = [
            f"{_num(fig.persist_seconds, 3)} s",
            _num(fig.mib_per_second, 0),
            f"{_num(fig.copy_seconds, 3)} s",
            _num(fig.copy_mib_per_second, 0),
            f"{_num(fig.create_to_completed_seconds, 2)} s",
            f"{_num(fig.rss_growth_mib, 1)} MiB",
            f"{_num(fig.hwm_growth_mib, 1)} MiB",
        ]
    return intro + "\n\n" + _table(header, [row])


def checks_table(found: list[Check]) -> str:
    rows = [[c.name, c.measured, short_reason(c.verdict)] for c in found]
    return _table(["target check", "measured", "verdict"], rows)


def render_markdown(meta: dict[str, Any], body: str) -> str:
    """The RESULTS.md document: a header describing the run, then the tables."""
    lines = [
        "# Benchmark results",
        "",
        f"- date: {meta['date']}",
        f"- machine: {meta['machine']}",
        f"- commit: {meta['commit']}",
        f"- settings: {meta['settings']}",
        f"- pinning: {meta['pinning']}",
    ]
    lines += [f"- note: {note}" for note in meta.get("notes", [])]
    return "\n".join(lines) + "\n\n" + body + "\n"


def render_body(
    scenarios: list[ScenarioFigures],
    downloads: dict[str, DownloadFigures],
    found: list[Check],
    size_mib: int,
    persistence: PersistenceFigures | None = None,
) -> str:
    parts = [
        "## Throughput and latency (median of runs)",
        results_table(scenarios),
        "## Ratios (same run)",
        ratio_table(scenarios),
        "## Large download",
        download_table(downloads, size_mib),
    ]
    if persistence is not None:
        parts += [f"## {size_mib} MiB persistence", persistence_table(persistence)]
    parts += [
        "## Target checks",
        checks_table(found),
    ]
    return "\n\n".join(parts)
