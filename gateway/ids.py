"""Every identifier the gateway makes, in one place.

Ids are time-ordered (milliseconds since the epoch, then randomness), so sorting by id sorts by
creation time: list pagination relies on it.

The randomness comes from ``os.urandom``, drawn 4 KiB at a time (``RandomPool``) rather than
one system call per id: ``os.urandom`` releases the GIL, and a request id is made for every
request on the event loop, so each call let a busy worker thread (SQLite, blob writes) take the
interpreter mid-request (bench/README.md, History). The bytes are the same CSPRNG output.
"""

from __future__ import annotations

import os
import threading
import time

POOL_BYTES = 4096


class RandomPool:
    """Slices of one ``os.urandom`` draw, each handed out once (a lock: threads make ids too);
    a forked child starts a pool of its own, never reusing its parent's bytes."""

    def __init__(self, size: int = POOL_BYTES) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._pool = b""
        self._offset = 0

    def reset(self) -> None:
        self._pool, self._offset = b"", 0

    def hex(self, nbytes: int) -> str:
        with self._lock:
            if self._offset + nbytes > len(self._pool):
                self._pool, self._offset = os.urandom(max(self._size, nbytes)), 0
            start = self._offset
            self._offset += nbytes
            return self._pool[start : start + nbytes].hex()


_POOL = RandomPool()
os.register_at_fork(after_in_child=_POOL.reset)


def new_id(prefix: str, *, now: float | None = None) -> str:
    """``<prefix>_<12 hex ms timestamp><16 hex random>``, e.g. ``video_018f3a...``."""
    millis = int((time.time() if now is None else now) * 1000)
    return f"{prefix}_{millis:012x}{_POOL.hex(8)}"


def new_request_id() -> str:
    """A request id for logs and the ``X-Request-Id`` header."""
    return f"req_{_POOL.hex(12)}"
