"""When and how long to wait before trying an upstream call again.

Pure policy: which failures are safe to retry for a given method, exponential backoff with full
jitter, and reading ``Retry-After``. The sleeping itself is the client's (through an injected
``sleep``). Imports httpx only for its exception classes; performs no I/O.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Final

import httpx

RETRY_AFTER_CAP: Final = 60.0
"""The longest ``Retry-After`` the client waits before trying again."""

RETRYABLE_STATUSES: Final = frozenset({429, 502, 503, 504})
RETRY_AFTER_STATUSES: Final = frozenset({429, 503})

# The request certainly never reached the upstream: safe even for a non-idempotent POST.
_NOT_SENT: Final = (httpx.ConnectError, httpx.ConnectTimeout)
# Safe for GET/DELETE only: the request may have been processed, repeating it changes nothing.
_IDEMPOTENT_SAFE: Final = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with full jitter: attempt n waits uniform(0, min(max, base*2**n))."""

    base: float = 0.2
    cap: float = 5.0
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def delay(self, attempt: int) -> float:
        """The pause after failed attempt number ``attempt`` (0 for the first one)."""
        ceiling = min(self.cap, self.base * 2 ** min(attempt, 62))
        return self.rng.uniform(0.0, max(0.0, ceiling))


def is_retryable_error(exc: httpx.RequestError, *, idempotent: bool) -> bool:
    """Whether a transport failure may be retried; a POST only when it was never sent."""
    if isinstance(exc, _NOT_SENT):
        return True
    return idempotent and isinstance(exc, _IDEMPOTENT_SAFE)


def is_retryable_status(status: int, *, idempotent: bool) -> bool:
    """Whether an answer's status may be retried; never for a POST (no double submissions)."""
    return idempotent and status in RETRYABLE_STATUSES


def parse_retry_after(headers: Mapping[str, str], *, now: datetime) -> float | None:
    """Seconds to wait per ``Retry-After`` (delta seconds or HTTP date) or ``retry-after-ms``.

    ``None`` when absent or unreadable; a date in the past gives 0. ``now`` must be aware (UTC).
    """
    millis = headers.get("retry-after-ms")
    if millis is not None:
        seconds = _finite(millis)
        if seconds is not None:
            return max(0.0, seconds / 1000.0)
    value = headers.get("retry-after")
    if value is None:
        return None
    seconds = _finite(value)
    if seconds is not None:
        return max(0.0, seconds)
    try:
        when = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000": UTC with unknown origin
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def _finite(value: str) -> float | None:
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None
