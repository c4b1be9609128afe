"""What happened to jobs and money, told once: a structured log line per transition and the
matching Prometheus metrics. Services call these; nothing here changes state."""

from __future__ import annotations

import logging

from gateway.metrics import Metrics, bounded_code
from gateway.store.base import Job

log = logging.getLogger("gateway.jobs")
MICROS = 1_000_000


class JobEvents:
    def __init__(self, metrics: Metrics | None = None) -> None:
        self.metrics = metrics
        self._team_names: dict[str, str] = {}

    @property
    def wants_team_names(self) -> bool:
        return self.metrics is not None and self.metrics.team_labels

    def remember_team(self, team_id: str, name: str) -> None:
        self._team_names[team_id] = name

    def _team(self, team_id: str) -> str:
        return self._team_names.get(team_id, team_id)

    def admitted(self, job: Job, outcome: str) -> None:
        """A create was decided: a new upstream job, a join, or a hit."""
        log.info(
            "job admitted",
            extra={
                "job_id": job.id,
                "team_id": job.team_id,
                "model": job.model,
                "cache": outcome,
                "cost_micros": job.cost_micros,
            },
        )
        if self.metrics is None:
            return
        self.metrics.cache_lookups.labels(outcome).inc()
        if outcome in ("hit", "coalesced"):
            saved = max(0, job.price_micros - job.cost_micros)
            self.metrics.cache_saved_usd.inc(saved / MICROS)
            self.metrics.cache_saved_seconds.inc(job.request.duration)

    def submitted(self, job: Job) -> None:
        log.info("job submitted", extra={"job_id": job.id, "upstream_id": job.upstream_id})
        if self.metrics is not None:
            self.metrics.jobs_created.labels(job.model, job.request.resolution).inc()

    def budget_rejected(self, scope: str, window: str) -> None:
        log.info("budget rejected", extra={"scope": scope, "window": window})
        if self.metrics is not None:
            self.metrics.budget_rejections.labels(scope, window).inc()

    def limit_rejected(self, limit: str, scope: str) -> None:
        log.info("traffic limit rejected", extra={"limit": limit, "scope": scope})
        if self.metrics is not None:
            self.metrics.limit_rejections.labels(limit, scope).inc()

    def failed(self, job: Job, code: str, refunded: int) -> None:
        log.warning(
            "job failed",
            extra={"job_id": job.id, "error_code": code, "refunded_micros": refunded},
        )
        if self.metrics is None:
            return
        resolution = job.request.resolution
        self.metrics.jobs_failed.labels(job.model, resolution, bounded_code(code)).inc()
        if refunded:
            self.metrics.refunds.labels(job.model).inc(refunded / MICROS)

    def completed(self, job: Job, charged: int, now: float) -> None:
        finished = job.upstream_finished_at or now
        lag = max(0.0, now - finished)
        log.info(
            "job completed",
            extra={"job_id": job.id, "charged_micros": charged, "persistence_lag_s": round(lag, 3)},
        )
        if self.metrics is None:
            return
        metrics = self.metrics
        metrics.jobs_completed.labels(job.model, job.request.resolution).inc()
        metrics.generation_duration.labels(job.model).observe(max(0.0, finished - job.created_at))
        metrics.persistence_lag.observe(lag)
        if charged:
            metrics.spend.labels(*metrics.spend_labels(job.model, self._team(job.team_id))).inc(
                charged / MICROS
            )

    def blob_failed(self, reason: str) -> None:
        """A blob store operation failed (``reason``: an errno name such as ENOSPC)."""
        if self.metrics is not None:
            self.metrics.blob_errors.labels(reason).inc()

    def download_failed(self, job: Job, reason: str, attempt: int) -> None:
        log.warning(
            "download failed", extra={"job_id": job.id, "attempt": attempt, "error": reason}
        )
        if self.metrics is not None:
            self.metrics.download_failures.labels(bounded_code(reason)).inc()

    def outcome_unknown(self, job: Job, reason: str) -> None:
        """A submit whose outcome is unknown: its money stays reserved until it is settled."""
        log.error(
            "submit outcome unknown",
            extra={"job_id": job.id, "reason": reason, "reserved_micros": job.cost_micros},
        )
        if self.metrics is not None:
            self.metrics.outcomes_unknown.labels(bounded_code(reason)).inc()

    def unknown_resolved(self, job: Job, resolution: str, actor: str = "") -> None:
        """An unknown outcome settled: ``charged`` / ``refunded`` (operator or deadline) or
        ``evidence`` (the upstream id turned up: the job runs on)."""
        log.warning(
            "unknown outcome resolved",
            extra={"job_id": job.id, "resolution": resolution, "actor": actor},
        )
        if self.metrics is not None:
            self.metrics.outcomes_resolved.labels(resolution).inc()

    def idempotency(self, outcome: str) -> None:
        """A create whose Idempotency-Key was already bound: replayed, reused, in_use."""
        if self.metrics is not None:
            self.metrics.idempotency_conflicts.labels(outcome).inc()

    def expired(self, count: int) -> None:
        if self.metrics is not None and count:
            self.metrics.assets_expired.inc(count)
