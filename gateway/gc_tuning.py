"""Garbage-collector settings for the long-running processes (``gateway serve``, ``worker``).

Measured (bench/README.md, History "gc"): with CPython's default thresholds (700, 10, 10), a
gateway answering 16 concurrent status requests ran a full (generation 2) collection about once
a second, each walking every object the imports made (~50,000), with the event loop stopped:
the largest stalls in its status p99. The objects of requests in flight outlive the young
collections and are promoted, so the old generation keeps growing by the quarter that triggers
the next full collection.
"""

from __future__ import annotations

import gc

# Net new container objects before a young collection: CPython's 700 is a few requests' worth.
YOUNG_THRESHOLD = 10_000


def settle_heap() -> None:
    """Once start-up has built its long-lived objects (modules, the app): collect, move them out
    of every later collection (they live as long as the process), and let the young generation
    grow to ``YOUNG_THRESHOLD`` so requests in flight are not promoted. Reference cycles are
    still collected, a little later."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, 10, 10)
