"""One large download measured from Python: throughput of a streaming client that reads into a
reused buffer, and how far a watched server process's resident memory rises meanwhile.

The watcher samples ``VmRSS`` from ``/proc/<pid>/status`` in a thread; ``VmHWM`` (the kernel's
own peak) is read before and after as a cross-check that no sample missed a spike.
"""

from __future__ import annotations

import http.client
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from bench.servers import ServerProcess

BUFFER_BYTES = 1024 * 1024
SAMPLE_SECONDS = 0.005


@dataclass(frozen=True)
class DownloadResult:
    """Bytes received, wall time, and the watched process's memory (KiB) around the download."""

    status: int
    received: int
    seconds: float
    rss_before_kib: int
    rss_peak_kib: int
    hwm_before_kib: int
    hwm_after_kib: int

    @property
    def mib_per_second(self) -> float:
        return self.received / (1024 * 1024) / self.seconds if self.seconds > 0 else 0.0

    @property
    def rss_growth_mib(self) -> float:
        """Peak sampled RSS during the download minus RSS just before, in MiB."""
        return max(0, self.rss_peak_kib - self.rss_before_kib) / 1024

    @property
    def hwm_growth_mib(self) -> float:
        return max(0, self.hwm_after_kib - self.hwm_before_kib) / 1024


class RssWatcher(threading.Thread):
    def __init__(self, server: ServerProcess) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.peak = 0
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            try:
                self.peak = max(self.peak, self.server.memory_kib()[0])
            except (OSError, ValueError):
                return
            self._done.wait(SAMPLE_SECONDS)

    def finish(self) -> int:
        self._done.set()
        self.join()
        return self.peak


def download(url: str, headers: dict[str, str], watched: ServerProcess) -> DownloadResult:
    """GET ``url`` to the end, discarding the body, while watching ``watched``'s memory."""
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    rss_before, hwm_before = watched.memory_kib()
    watcher = RssWatcher(watched)
    watcher.peak = rss_before
    buffer = memoryview(bytearray(BUFFER_BYTES))
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=60)
    received = 0
    watcher.start()
    started = time.perf_counter()
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        while True:
            n = response.readinto(buffer)
            if not n:
                break
            received += n
        seconds = time.perf_counter() - started
    finally:
        conn.close()
        peak = watcher.finish()
    _, hwm_after = watched.memory_kib()
    return DownloadResult(
        status=response.status,
        received=received,
        seconds=seconds,
        rss_before_kib=rss_before,
        rss_peak_kib=peak,
        hwm_before_kib=hwm_before,
        hwm_after_kib=hwm_after,
    )
