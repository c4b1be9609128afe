"""The processes under test: the sandbox upstream, the gateway and nginx, each a subprocess on
127.0.0.1 with a free port, pinned to the server core, and read from ``/proc`` for CPU and RSS.

Readiness is learnt by polling an HTTP URL, never by sleeping a fixed time. Imports nothing
from ``gateway``: the harness drives the gateway only through its command line and HTTP.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
ADMIN_TOKEN = "bench-admin-token-0123456789abcdef"
READY_TIMEOUT = 30.0
READY_POLL = 0.05
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class ServerStartError(RuntimeError):
    """A server exited or did not answer its readiness URL in time."""


@dataclass(frozen=True)
class Pinning:
    """Which CPUs the servers and the load generator use, and how that was arranged."""

    server_cpus: frozenset[int] | None
    load_cpus: frozenset[int] | None
    note: str

    def server_prefix(self) -> list[str]:
        return _taskset(self.server_cpus)

    def load_prefix(self) -> list[str]:
        return _taskset(self.load_cpus)


def _taskset(cpus: frozenset[int] | None) -> list[str]:
    if cpus is None or shutil.which("taskset") is None:
        return []
    return ["taskset", "-c", ",".join(str(c) for c in sorted(cpus))]


def plan_pinning() -> Pinning:
    """Servers on the first allowed CPU, load on the second; no pinning on one CPU.

    The harness process itself (the Python download client) moves to the load CPU too.
    """
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        return Pinning(None, None, f"not pinned: only {len(allowed)} CPU available")
    server, load = frozenset({allowed[0]}), frozenset({allowed[1]})
    os.sched_setaffinity(0, load)
    tool = "taskset" if shutil.which("taskset") else "sched_setaffinity"
    note = (
        f"servers (sandbox, gateway, nginx) on CPU {allowed[0]}; wrk and the Python download "
        f"client on CPU {allowed[1]} ({tool}); {len(allowed)} CPUs allowed"
    )
    return Pinning(server, load, note)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def venv_python() -> str:
    candidate = ROOT / ".venv" / "bin" / "python"
    return str(candidate) if candidate.exists() else sys.executable


def gateway_command() -> list[str]:
    candidate = ROOT / ".venv" / "bin" / "gateway"
    if candidate.exists():
        return [str(candidate)]
    return [venv_python(), "-m", "gateway"]


@dataclass
class ServerProcess:
    """One running server; ``stop`` it when done (it is also safe to stop twice)."""

    name: str
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def cpu_seconds(self) -> float:
        """utime + stime of the process so far (``/proc/<pid>/stat``)."""
        raw = Path(f"/proc/{self.pid}/stat").read_text()
        fields = raw[raw.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def memory_kib(self) -> tuple[int, int]:
        """``(VmRSS, VmHWM)`` in KiB from ``/proc/<pid>/status``."""
        rss = hwm = 0
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
        return rss, hwm

    def wait_ready(self, path: str, timeout: float = READY_TIMEOUT) -> None:
        """Poll ``GET url+path`` until it answers 2xx; raise with the log tail otherwise."""
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        with httpx.Client(timeout=1.0) as client:
            while time.monotonic() < deadline:
                if not self.alive():
                    raise ServerStartError(
                        f"{self.name} exited with code {self.process.returncode}:\n"
                        f"{self.log_tail()}"
                    )
                try:
                    response = client.get(self.url + path)
                    if response.is_success:
                        return
                    last = f"HTTP {response.status_code}"
                except httpx.HTTPError as exc:
                    last = type(exc).__name__
                time.sleep(READY_POLL)
        self.stop()
        raise ServerStartError(f"{self.name} not ready after {timeout:.0f} s ({last})")

    def stop(self, grace: float = 10.0) -> None:
        if not self.alive():
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(grace)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _spawn(
    name: str, command: list[str], url: str, workdir: Path, env: dict[str, str] | None = None
) -> ServerProcess:
    log_path = workdir / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=ROOT,
            env=env,
        )
    return ServerProcess(name, url, process, log_path)


def _clean_env() -> dict[str, str]:
    """The harness's environment without anything that would reconfigure the gateway."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("GATEWAY_") and k != "AIHUBMIX_API_KEY"
    }


def start_sandbox(workdir: Path, pinning: Pinning, video_bytes: int) -> ServerProcess:
    """The fake AIHubMix with no artificial latency: jobs complete the moment they are made."""
    port = free_port()
    command = [
        *pinning.server_prefix(),
        venv_python(),
        "-m",
        "gateway.sandbox",
        "--port",
        str(port),
        "--queue-seconds",
        "0",
        "--run-seconds",
        "0",
        "--video-bytes",
        str(video_bytes),
    ]
    server = _spawn("sandbox", command, f"http://127.0.0.1:{port}", workdir, _clean_env())
    server.wait_ready("/_sandbox/stats")
    return server


def start_fast_upstream(
    workdir: Path,
    pinning: Pinning,
    video_bytes: int,
    *,
    running: bool = False,
    latency: float = 0.0,
    name: str = "fastupstream",
) -> ServerProcess:
    """``bench.fastupstream``: a raw asyncio upstream nginx cannot saturate (the honest
    baseline), or with ``running``/``latency`` a slow upstream whose jobs never finish."""
    port = free_port()
    command = [
        *pinning.server_prefix(),
        venv_python(),
        "-m",
        "bench.fastupstream",
        "--port",
        str(port),
        "--video-bytes",
        str(video_bytes),
        "--latency",
        str(latency),
    ]
    if running:
        command.append("--running")
    server = _spawn(name, command, f"http://127.0.0.1:{port}", workdir, _clean_env())
    server.wait_ready("/_sandbox/stats")
    return server


GATEWAY_CONFIG = """\
[database]
url = "sqlite:///{database}"

[storage]
url = "file://{workdir}/blobs"

[upstream]
base_url = "{upstream}"
sandbox = true

[log]
level = "warning"
"""


def gateway_database(workdir: Path) -> Path:
    """The gateway's SQLite file inside ``workdir``."""
    return workdir / "gateway.db"


def write_gateway_config(
    workdir: Path, upstream_url: str, *, database_url: str | None = None, extra: str = ""
) -> Path:
    """``<workdir>/config.toml``: SQLite in ``workdir`` unless ``database_url``; ``extra`` is
    appended TOML (say a ``[jobs]`` table)."""
    config = workdir / "config.toml"
    text = GATEWAY_CONFIG.format(
        database=gateway_database(workdir), workdir=workdir, upstream=upstream_url
    )
    if database_url is not None:
        text = text.replace(
            f'url = "sqlite:///{gateway_database(workdir)}"', f'url = "{database_url}"'
        )
    config.write_text(text + extra)
    return config


def start_gateway(
    workdir: Path,
    pinning: Pinning,
    upstream_url: str,
    *,
    database_url: str | None = None,
    extra: str = "",
    cpus: list[str] | None = None,
) -> ServerProcess:
    """``gateway serve`` over a fresh SQLite database and blob folder in ``workdir`` (or
    ``database_url``); ``cpus`` replaces the server pinning (``["taskset", "-c", "0"]``)."""
    port = free_port()
    config = write_gateway_config(workdir, upstream_url, database_url=database_url, extra=extra)
    env = {**_clean_env(), "GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN}
    command = [
        *(pinning.server_prefix() if cpus is None else cpus),
        *gateway_command(),
        "--config",
        str(config),
        "serve",
        "--port",
        str(port),
    ]
    server = _spawn("gateway", command, f"http://127.0.0.1:{port}", workdir, env)
    server.wait_ready("/readyz")
    return server


def start_worker(workdir: Path, index: int, prefix: list[str]) -> ServerProcess:
    """``gateway worker`` (the job runner alone) with ``<workdir>/config.toml``; it has no
    HTTP port, so it is "ready" once started (the caller watches the database)."""
    env = {**_clean_env(), "GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN}
    command = [*prefix, *gateway_command(), "--config", str(workdir / "config.toml"), "worker"]
    return _spawn(f"worker{index}", command, "", workdir, env)


NGINX_CONFIG = """\
daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;

events {{
    worker_connections 4096;
}}

http {{
    access_log off;
    client_body_temp_path {dir}/tmp/body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;

    upstream sandbox {{
        server {upstream};
        keepalive 64;
    }}

    server {{
        listen 127.0.0.1:{port};
        keepalive_requests 1000000;
        location / {{
            proxy_pass http://sandbox;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            # Stream like the gateway does, through one 64 KiB buffer: for 1 MiB bodies this is
            # ~2x the throughput of the default 4k/8k buffering here (see bench/README.md).
            proxy_buffering off;
            proxy_buffer_size 64k;
            proxy_buffers 8 64k;
        }}
    }}
}}
"""


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(p).exists()), None
    )


def start_nginx(workdir: Path, pinning: Pinning, upstream_url: str) -> ServerProcess:
    """nginx as a plain keepalive reverse proxy in front of the sandbox (one process)."""
    binary = nginx_binary()
    if binary is None:
        raise ServerStartError("nginx is not installed")
    port = free_port()
    prefix = workdir / "nginx"
    (prefix / "tmp").mkdir(parents=True, exist_ok=True)
    conf = prefix / "nginx.conf"
    conf.write_text(
        NGINX_CONFIG.format(dir=prefix, port=port, upstream=upstream_url.removeprefix("http://"))
    )
    command = [
        *pinning.server_prefix(),
        binary,
        "-p",
        str(prefix),
        "-c",
        str(conf),
        "-e",
        str(prefix / "nginx-error.log"),
    ]
    server = _spawn("nginx", command, f"http://127.0.0.1:{port}", workdir)
    server.wait_ready("/_sandbox/stats")
    return server
