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
