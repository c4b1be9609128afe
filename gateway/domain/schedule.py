"""When the job runner looks at a job next: a back-off schedule, pure arithmetic."""

from __future__ import annotations

BACKOFF_FACTOR = 2.5


def next_delay(
    attempts: int, *, minimum: float, maximum: float, retry_after: float | None = None
) -> float:
    """Seconds until the next look after ``attempts`` looks: minimum x 2.5^n capped at
    ``maximum`` (2 s, 5 s, 12.5 s, 30 s ... with the defaults), never sooner than the
    upstream's ``Retry-After``."""
    try:
        grown = minimum * BACKOFF_FACTOR ** max(0, attempts)
    except OverflowError:  # 2.5**n leaves the float range past n = 774: long capped by then
        grown = maximum
    delay = min(maximum, grown)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay


# The poll limit grows when the oldest due job a full claim found was this late.
LATE_SECONDS = 0.5
# ... at most this often: a grown limit needs a few seconds to drain the backlog it found.
GROW_INTERVAL_SECONDS = 2.0


def grown_poll_limit(
    limit: int, *, ceiling: int, lateness: float, claim_was_full: bool, since_grown: float
) -> int:
    """The runner's poll limit after a claim: doubled (up to ``ceiling``) when the claim took
    every free slot and its oldest job was already late by more than ``LATE_SECONDS`` (more
    jobs are due than the polls in flight keep up with: ``limit / upstream latency`` polls a
    second), otherwise unchanged. The limit is a ceiling on polls in flight, not a pace: a high
    one costs nothing while few jobs are due."""
    if claim_was_full and lateness > LATE_SECONDS and since_grown >= GROW_INTERVAL_SECONDS:
        return min(ceiling, limit * 2)
    return limit


def shrunk_poll_limit(limit: int, *, floor: int) -> int:
    """The poll limit after the upstream answered a poll with 429: halved, never below
    ``floor`` (additive growth back only when jobs fall late again)."""
    return max(floor, limit // 2)
