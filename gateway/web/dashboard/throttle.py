"""Slowing down token guessing at the sign-in form: after ``limit`` failed sign-ins from one
client address within ``window`` seconds, that address may not try again until the oldest
failure ages out. In memory, per process (a bound on guessing, not an account lock-out)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

FAILURES_ALLOWED = 10
WINDOW_SECONDS = 300.0
MAX_ADDRESSES = 10_000  # beyond this many tracked addresses the oldest records are dropped


class SignInThrottle:
    def __init__(
        self,
        *,
        limit: int = FAILURES_ALLOWED,
        window: float = WINDOW_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limit = limit
        self._window = window
        self._monotonic = monotonic
        self._failures: dict[str, deque[float]] = {}

    def retry_after(self, address: str) -> float | None:
        """Seconds until ``address`` may try again, or None when it may try now."""
        failures = self._recent(address)
        if len(failures) < self._limit:
            return None
        return max(0.0, failures[0] + self._window - self._monotonic())

    def failed(self, address: str) -> None:
        if address not in self._failures and len(self._failures) >= MAX_ADDRESSES:
            self._failures.pop(next(iter(self._failures)))
        self._recent(address).append(self._monotonic())

    def succeeded(self, address: str) -> None:
        self._failures.pop(address, None)

    def _recent(self, address: str) -> deque[float]:
        failures = self._failures.setdefault(address, deque())
        cutoff = self._monotonic() - self._window
        while failures and failures[0] <= cutoff:
            failures.popleft()
        return failures
