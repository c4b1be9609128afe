"""Every identifier the gateway makes, in one place.

Ids are time-ordered (milliseconds since the epoch, then randomness), so sorting by id sorts by
creation time: list pagination relies on it.
"""

from __future__ import annotations

import secrets
import time


def new_id(prefix: str, *, now: float | None = None) -> str:
    """``<prefix>_<12 hex ms timestamp><16 hex random>``, e.g. ``video_018f3a...``."""
    millis = int((time.time() if now is None else now) * 1000)
    return f"{prefix}_{millis:012x}{secrets.token_hex(8)}"


def new_request_id() -> str:
    """A request id for logs and the ``X-Request-Id`` header."""
    return f"req_{secrets.token_hex(12)}"
