"""Running wrk with one of the ``bench/lua`` scripts and reading its report.

``run_wrk`` returns a ``WrkResult`` (throughput, p50/p99 from ``--latency``, non-2xx counts from
the Lua status line or wrk's own line); ``parse_wrk_output`` is pure and tested on text alone.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

LUA_DIR = Path(__file__).resolve().parent / "lua"
CONNECTIONS = 16
THREADS = 1
TIMEOUT_SECONDS = 10

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_PERCENTILE = re.compile(r"^\s*(50|75|90|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$", re.M)
_TOTAL = re.compile(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h)", re.M)
_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.M)
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_SOCKET = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", re.M)
_STATUS = re.compile(r"^BENCH_STATUS(.*)$", re.M)


class WrkError(RuntimeError):
    """wrk failed to run or printed nothing we could read."""


@dataclass(frozen=True)
class WrkResult:
    """One wrk run. Latencies in milliseconds; ``statuses`` is empty when not recorded."""

    requests: int
    seconds: float
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int
    statuses: dict[int, int] = field(default_factory=dict)


def parse_wrk_output(text: str) -> WrkResult:
    """Read wrk's ``--latency`` report (plus the ``BENCH_STATUS`` line of our Lua scripts)."""
    percentiles = {p: float(v) * _UNITS[u] for p, v, u in _PERCENTILE.findall(text)}
    total, rps = _TOTAL.search(text), _RPS.search(text)
    if total is None or rps is None or "50" not in percentiles or "99" not in percentiles:
        raise WrkError(f"unreadable wrk output:\n{text[-800:]}")
    statuses: dict[int, int] = {}
    status_line = _STATUS.search(text)
    if status_line is not None:
        for part in status_line.group(1).split():
            code, _, count = part.partition("=")
            statuses[int(code)] = int(count)
    if statuses:
        non_2xx = sum(n for code, n in statuses.items() if not 200 <= code < 300)
    else:
        match = _NON_2XX.search(text)
        non_2xx = int(match.group(1)) if match else 0
    socket = _SOCKET.search(text)
    return WrkResult(
        requests=int(total.group(1)),
        seconds=float(total.group(2)) * _UNITS[total.group(3)] / 1e3,
        requests_per_second=float(rps.group(1)),
        p50_ms=percentiles["50"],
        p99_ms=percentiles["99"],
        non_2xx=non_2xx,
        socket_errors=sum(int(n) for n in socket.groups()) if socket else 0,
        statuses=statuses,
    )


def wrk_binary() -> str | None:
    return shutil.which("wrk")


@dataclass(frozen=True)
class WrkJob:
    """What to run: a script from ``bench/lua`` against a URL, with its environment."""

    url: str
    script: str
    env: dict[str, str]


def run_wrk(
    job: WrkJob,
    *,
    seconds: int,
    prefix: list[str],
    connections: int = CONNECTIONS,
) -> WrkResult:
    """Run ``wrk -t1 -c<connections> -d<seconds> --latency`` (behind ``prefix``, e.g. taskset)."""
    binary = wrk_binary()
    if binary is None:
        raise WrkError("wrk is not installed (run bench/setup.sh)")
    command = [
        *prefix,
        binary,
        f"-t{THREADS}",
        f"-c{connections}",
        f"-d{max(1, seconds)}s",
        f"--timeout={TIMEOUT_SECONDS}s",
        "--latency",
        "-s",
        str(LUA_DIR / job.script),
        job.url,
    ]
    env = {**os.environ, "BENCH_LUA_DIR": str(LUA_DIR), **job.env}
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            env=env,
            timeout=seconds + TIMEOUT_SECONDS + 30,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise WrkError("wrk did not finish in time") from exc
    if done.returncode != 0:
        raise WrkError(f"wrk exited with {done.returncode}: {done.stderr.strip()[-500:]}")
    return parse_wrk_output(done.stdout)
