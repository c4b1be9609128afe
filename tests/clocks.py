"""Clocks for tests where dates matter: real seconds pass, but counted from a fixed instant.

Budget periods (day, month) and usage dates follow the clock. A test that compares them with
``datetime.now(UTC)`` broke when it ran across UTC midnight or a month's end; one that runs on
an ``AnchoredClock`` always sees the same date, far from either edge.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

# Noon on the 15th: twelve hours from either midnight, two weeks from either month's end.
ANCHOR = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)


class AnchoredClock:
    """``time.time()``'s pace from ``ANCHOR`` on (the gateway's and the CLI's ``clock``)."""

    def __init__(self, anchor: datetime = ANCHOR) -> None:
        self.anchor = anchor
        self._offset = anchor.timestamp() - time.time()

    def __call__(self) -> float:
        return time.time() + self._offset

    def day(self, days: int = 0) -> str:
        """The anchor's UTC date (``days`` later), ``YYYY-MM-DD``."""
        return (self.anchor + timedelta(days=days)).strftime("%Y-%m-%d")

    def month(self) -> str:
        return self.anchor.strftime("%Y-%m")
