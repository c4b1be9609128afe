"""Every Prometheus metric the gateway exports, defined once against an injected registry.

Names follow ``gateway_<noun>_<unit>``. No label takes unbounded values: never a key, a video
id or a prompt; team names only when ``metrics.team_labels`` is on; error codes are folded into a
bounded set. Counters and histograms count what *this process* did; the gauges that describe
shared state (jobs by state, money reserved, storage, budget headroom) are read from the
database at scrape time, so every replica reports the same truth.

One uvicorn worker per process is enforced (``gateway serve`` has no workers option): scale with
processes or replicas, each scraped on its own ``/metrics``.
"""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
)

from gateway import __version__
from gateway.metrics_webhooks import WebhookMetrics
from gateway.store.base import MetricsSnapshot

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
JOB_BUCKETS = (5, 10, 20, 30, 45, 60, 90, 120, 180, 300, 600, 1200, 3600)
LAG_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
OTHER = "other"
# Error codes the gateway itself produces; anything else (an upstream's own code) is "other".
KNOWN_CODES = frozenset(
    {
        "timeout",
        "upstream_link_expired",
        "upstream_job_not_found",
        "upstream_failed",
        "submit_interrupted",
        "cancelled",
        "expired",
        "upstream_rejected",
        "upstream_error",
        "upstream_timeout",
        "upstream_unreachable",
        "upstream_auth_error",
        "upstream_quota_error",
        "rate_limit_exceeded",
        "internal_error",
        "upstream_content_expired",
        "incomplete",
        "storage_error",
        "submit_outcome_unknown",
        "record_failed",
        "interrupted",
        "download_too_large",
        "download_too_slow",
        "download_not_media",
        "upstream_link_refused",
        "upstream_answer_too_large",
    }
)
JOB_STATES = ("queued", "running", "awaiting_download", "outcome_unknown")


def bounded_code(code: str | None) -> str:
    return code if code in KNOWN_CODES else OTHER


class Metrics:
    def __init__(self, registry: CollectorRegistry, *, team_labels: bool = False) -> None:
        self.registry = registry
        self.team_labels = team_labels
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
        Info("gateway_build", "Version and git commit of this gateway.", registry=registry).info(
            {"version": __version__, "commit": _git_commit(), "python": platform.python_version()}
        )

        self._define_http(registry)
        self._define_upstream(registry)
        self._define_jobs(registry)
        self._define_money(registry)
        self._define_cache(registry)
        self._define_storage(registry)
        self._define_edges(registry)
        for state in JOB_STATES:
            self.jobs_current.labels(state)
        self.webhooks = WebhookMetrics(registry)

    def _define_http(self, registry: CollectorRegistry) -> None:
        """Requests answered, and how long they took."""
        self.http_requests = Counter(
            "gateway_http_requests_total",
            "HTTP requests answered, by route template, method and status.",
            ["route", "method", "status"],
            registry=registry,
        )
        self.http_duration = Histogram(
            "gateway_http_request_duration_seconds",
            "Time to answer an HTTP request (headers sent), by route template.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )

    def _define_upstream(self, registry: CollectorRegistry) -> None:
        """Calls to the upstream: outcomes, latency, retries, in flight."""
        self.upstream_requests = Counter(
            "gateway_upstream_requests_total",
            "Calls to the upstream, by operation and outcome.",
            ["operation", "outcome"],
            registry=registry,
        )
        self.upstream_duration = Histogram(
            "gateway_upstream_request_duration_seconds",
            "Upstream call latency (to the response headers), by operation.",
            ["operation"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.upstream_retries = Counter(
            "gateway_upstream_retries_total",
            "Upstream calls repeated after a failure, by operation.",
            ["operation"],
            registry=registry,
        )
        self.upstream_in_flight = Gauge(
            "gateway_upstream_requests_in_flight",
            "Upstream calls in progress in this process, by operation.",
            ["operation"],
            registry=registry,
        )

    def _define_jobs(self, registry: CollectorRegistry) -> None:
        """Jobs created, finished and failed; generation time and persistence lag."""
        self.jobs_created = Counter(
            "gateway_jobs_created_total",
            "Jobs submitted upstream, by model and resolution.",
            ["model", "resolution"],
            registry=registry,
        )
        self.jobs_completed = Counter(
            "gateway_jobs_completed_total",
            "Jobs finished and stored, by model and resolution.",
            ["model", "resolution"],
            registry=registry,
        )
        self.jobs_failed = Counter(
            "gateway_jobs_failed_total",
            "Jobs that failed, by model, resolution and error code (unknown codes: other).",
            ["model", "resolution", "code"],
            registry=registry,
        )
        self.generation_duration = Histogram(
            "gateway_job_generation_duration_seconds",
            "Time from submission to the upstream reporting the job finished, by model.",
            ["model"],
            buckets=JOB_BUCKETS,
            registry=registry,
        )
        self.persistence_lag = Histogram(
            "gateway_job_persistence_lag_seconds",
            "Time from the upstream finishing a job to its video being in our storage.",
            buckets=LAG_BUCKETS,
            registry=registry,
        )
        self.jobs_current = Gauge(
            "gateway_jobs",
            "Unfinished jobs now, by state (queued, running, awaiting_download, outcome_unknown:"
            " the upstream may or may not have the job; its price stays reserved).",
            ["state"],
            registry=registry,
        )

    def _define_money(self, registry: CollectorRegistry) -> None:
        """Spend, refunds, reservations, limits and budgets."""
        money_labels = ["model", "team"] if self.team_labels else ["model"]
        self.spend = Counter(
            "gateway_spend_usd_total",
            "Money charged for finished jobs, in USD.",
            money_labels,
            registry=registry,
        )
        self.refunds = Counter(
            "gateway_refunds_usd_total",
            "Reservations released because a job did not finish, in USD.",
            ["model"],
            registry=registry,
        )
        self.reserved = Gauge(
            "gateway_reserved_usd",
            "Money reserved by unfinished jobs now, in USD.",
            registry=registry,
        )
        self.limit_rejections = Counter(
            "gateway_limit_rejections_total",
            "Creates refused by a concurrency or rate limit, by limit"
            " (max_in_flight_jobs, requests_per_minute) and scope (team, key).",
            ["limit", "scope"],
            registry=registry,
        )
        self.budget_rejections = Counter(
            "gateway_budget_rejections_total",
            "Requests refused because a budget would be exceeded, by scope and window.",
            ["scope", "window"],
            registry=registry,
        )
        budget_labels = ["scope", "team", "window"] if self.team_labels else ["scope", "window"]
        self.budget_limit = Gauge(
            "gateway_budget_limit_usd",
            "Configured budget limits, in USD (team scope only with team labels on).",
            budget_labels,
            registry=registry,
        )
        self.budget_remaining = Gauge(
            "gateway_budget_remaining_usd",
            "What remains of each budget limit in its current window, in USD.",
            budget_labels,
            registry=registry,
        )

    def _define_cache(self, registry: CollectorRegistry) -> None:
        """What the cache did and what it saved."""
        self.cache_lookups = Counter(
            "gateway_cache_lookups_total",
            "Creates by what the cache did: hit, coalesced, miss or bypass.",
            ["result"],
            registry=registry,
        )
        self.cache_saved_usd = Counter(
            "gateway_cache_saved_usd_total",
            "Money not spent because a request was served by a hit or joined a running job.",
            registry=registry,
        )
        self.cache_saved_seconds = Counter(
            "gateway_cache_saved_video_seconds_total",
            "Seconds of video not generated again thanks to the cache.",
            registry=registry,
        )

    def _define_storage(self, registry: CollectorRegistry) -> None:
        """Stored videos and frames, and what failed on the way in."""
        self.stored_bytes = Gauge(
            "gateway_storage_bytes", "Bytes of videos and frames stored.", registry=registry
        )
        self.stored_objects = Gauge(
            "gateway_storage_objects", "Videos and frames stored.", registry=registry
        )
        self.download_failures = Counter(
            "gateway_download_failures_total",
            "Failed attempts to copy a finished video into storage, by reason.",
            ["reason"],
            registry=registry,
        )
        self.blob_errors = Counter(
            "gateway_blob_errors_total",
            "Blob store operations the operating system refused, by errno name (ENOSPC ...).",
            ["reason"],
            registry=registry,
        )
        self.assets_expired = Counter(
            "gateway_storage_expired_total",
            "Videos removed because their retention ended.",
            registry=registry,
        )

    def _define_edges(self, registry: CollectorRegistry) -> None:
        """Money at the edges: lost answers, operators' resolutions, client retries."""
        self.outcomes_unknown = Counter(
            "gateway_submit_outcome_unknown_total",
            "Submits whose outcome is unknown (answer lost, crash, id not recorded), by reason;"
            " each keeps its price reserved until evidence, an operator or the deadline.",
            ["reason"],
            registry=registry,
        )
        self.outcomes_resolved = Counter(
            "gateway_unknown_outcomes_resolved_total",
            "Unknown outcomes settled: charged, refunded, or evidence (the upstream id turned up).",
            ["resolution"],
            registry=registry,
        )
        self.create_retries = Counter(
            "gateway_create_retries_total",
            "POST /v1/videos requests a client SDK marked as retries (x-stainless-retry-count).",
            registry=registry,
        )
        self.idempotency_conflicts = Counter(
            "gateway_idempotency_keys_total",
            "Creates whose Idempotency-Key was already bound: replayed (same body: the bound"
            " video), reused (different body: 409), in_use (still submitting: 409).",
            ["outcome"],
            registry=registry,
        )

    def apply(self, shared: MetricsSnapshot) -> None:
        """Set the database-derived gauges from a fresh snapshot."""
        for state in JOB_STATES:
            self.jobs_current.labels(state).set(shared.jobs_by_state.get(state, 0))
        self.reserved.set(shared.reserved_micros / 1_000_000)
        self.stored_bytes.set(shared.stored_bytes)
        self.stored_objects.set(shared.stored_objects)
        self.budget_limit.clear()
        self.budget_remaining.clear()
        for (scope, team, window), (limit, remaining) in shared.budgets.items():
            if scope == "team" and not self.team_labels:
                continue
            labels = (scope, team, window) if self.team_labels else (scope, window)
            self.budget_limit.labels(*labels).set(limit / 1_000_000)
            self.budget_remaining.labels(*labels).set(remaining / 1_000_000)

    def spend_labels(self, model: str, team: str) -> tuple[str, ...]:
        return (model, team) if self.team_labels else (model,)

    # The upstream client's observer (gateway.upstream.client.UpstreamObserver).
    def upstream_started(self, operation: str) -> None:
        self.upstream_in_flight.labels(operation).inc()

    def upstream_finished(self, operation: str, outcome: str, seconds: float) -> None:
        self.upstream_in_flight.labels(operation).dec()
        self.upstream_requests.labels(operation, outcome).inc()
        self.upstream_duration.labels(operation).observe(seconds)

    def upstream_retried(self, operation: str) -> None:
        self.upstream_retries.labels(operation).inc()


def _git_commit() -> str:
    """The commit this code came from, when it runs from a git checkout ("unknown" otherwise)."""
    root = Path(__file__).resolve().parents[1]
    if not (root / ".git").exists():
        return "unknown"
    try:
        out = subprocess.run(  # noqa: S603 - fixed command, no input
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],  # noqa: S607
            capture_output=True,
            text=True,
            timeout=2,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"
