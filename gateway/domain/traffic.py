"""Concurrency and rate limits per team and per key: which limits apply, and the pure decisions.

``max_in_flight_jobs`` caps the jobs a team or key has upstream at once (submitted, not
finished; cache hits and joins never count). ``requests_per_minute`` caps creates with a
generic cell rate algorithm (GCRA): up to N at once from idle, then one every 60/N seconds.
It needs one number per owner (the "theoretical arrival time"), has no window edges where a
client could send twice the limit, and tells a refused client exactly when to come back.
The adapters keep that number in the database, so the limits hold across replicas. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from gateway.errors import ConcurrencyLimitExceeded, RequestRateExceeded

TrafficScope = Literal["team", "key"]
TRAFFIC_SCOPES: tuple[TrafficScope, ...] = ("team", "key")
LIMIT_NAMES = ("max_in_flight_jobs", "requests_per_minute")
# A refused job cannot know when another finishes; videos take tens of seconds to minutes.
CONCURRENCY_RETRY_AFTER_SECONDS = 5.0
MAX_LIMIT_VALUE = 1_000_000


@dataclass(frozen=True, slots=True)
class TrafficLimits:
    """One owner's limits. ``None``: not set here (the configured default applies); ``0``: no
    limit."""

    max_in_flight_jobs: int | None = None
    requests_per_minute: int | None = None

    def over(self, default: TrafficLimits) -> TrafficLimits:
        """These limits where set, ``default``'s elsewhere."""
        return TrafficLimits(
            default.max_in_flight_jobs
            if self.max_in_flight_jobs is None
            else self.max_in_flight_jobs,
            default.requests_per_minute
            if self.requests_per_minute is None
            else self.requests_per_minute,
        )


@dataclass(frozen=True, slots=True)
class TrafficDefaults:
    """The configured limits of every team and every key (``[limits]``); 0 means none."""

    team: TrafficLimits = TrafficLimits(0, 0)
    key: TrafficLimits = TrafficLimits(0, 0)

    def effective(
        self, scope: TrafficScope, stored: Mapping[TrafficScope, TrafficLimits]
    ) -> TrafficLimits:
        default = self.team if scope == "team" else self.key
        found = stored.get(scope)
        return found.over(default) if found is not None else default


@dataclass(frozen=True, slots=True)
class RateDecision:
    """GCRA's verdict: admitted (with the new arrival time to store) or refused (retry after)."""

    allowed: bool
    tat: float
    retry_after: float


def rate_decision(tat: float | None, now: float, per_minute: int) -> RateDecision:
    """Admit one more request at ``now`` when the stored arrival time ``tat`` allows it."""
    interval = 60.0 / per_minute
    burst = 60.0 - interval  # how far ahead of now the arrival time may run
    current = max(tat or 0.0, now)
    if current - now > burst + 1e-9:
        return RateDecision(False, current, current - now - burst)
    return RateDecision(True, current + interval, 0.0)


def in_flight_allowed(count: int, limit: int | None) -> bool:
    """May one more job go upstream when ``count`` are in flight?"""
    return not limit or count < limit


def rate_refusal(scope: TrafficScope, limit: int, retry_after: float) -> RequestRateExceeded:
    return RequestRateExceeded(
        f"This {_owner(scope)} may create {limit} videos per minute; retry in"
        f" {max(1, round(retry_after))} s (see Retry-After).",
        scope=scope,
        retry_after=retry_after,
    )


def concurrency_refusal(scope: TrafficScope, limit: int) -> ConcurrencyLimitExceeded:
    return ConcurrencyLimitExceeded(
        f"This {_owner(scope)} already has {limit} videos in progress (its max_in_flight_jobs);"
        " retry when one finishes (see Retry-After).",
        scope=scope,
        retry_after=CONCURRENCY_RETRY_AFTER_SECONDS,
    )


def _owner(scope: TrafficScope) -> str:
    return "team" if scope == "team" else "key"


# A job "went upstream" (and counts against max_in_flight_jobs) unless it was a hit or a join.
UPSTREAM_RESULTS = ("miss", "bypass")


def owners(team_id: str, key_id: str) -> dict[TrafficScope, str]:
    """Who a create is counted against, by scope."""
    return {"team": team_id, "key": key_id}


def rate_checks(limits: Mapping[TrafficScope, TrafficLimits]) -> list[tuple[TrafficScope, int]]:
    """The (scope, requests per minute) a create must fit, in check order (0 or unset: none)."""
    checks = [
        (scope, limits[scope].requests_per_minute) for scope in TRAFFIC_SCOPES if scope in limits
    ]
    return [(scope, per_minute) for scope, per_minute in checks if per_minute]


def in_flight_checks(
    limits: Mapping[TrafficScope, TrafficLimits],
) -> list[tuple[TrafficScope, int]]:
    """The (scope, max in-flight jobs) a job going upstream must fit, in check order."""
    checks = [
        (scope, limits[scope].max_in_flight_jobs) for scope in TRAFFIC_SCOPES if scope in limits
    ]
    return [(scope, limit) for scope, limit in checks if limit]
