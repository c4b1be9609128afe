"""Gateways as real subprocesses (``python -m gateway serve``), for crash and multi-process tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import ADMIN_TOKEN


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def write_config(path: Path, sections: dict[str, dict[str, Any]]) -> Path:
    lines: list[str] = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        for key, value in values.items():
            if isinstance(value, bool):
                rendered = "true" if value else "false"
            elif isinstance(value, str):
                rendered = f'"{value}"'
            else:
                rendered = repr(value)
            lines.append(f"{key} = {rendered}")
    path.write_text("\n".join(lines) + "\n")
    return path


def start_worker(config: Path, log_path: Path) -> subprocess.Popen[bytes]:
    """``gateway worker``: the job runner alone (no HTTP, so no readiness to wait for)."""
    env = {**os.environ}
    env.pop("AIHUBMIX_API_KEY", None)
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "gateway", "--config", str(config), "worker"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )


class PortTaken(RuntimeError):
    """The free port picked for a gateway was taken before the gateway could bind it."""


class GatewayProcess:
    """One ``gateway serve`` process on a free port, with its output captured to a file."""

    def __init__(self, config: Path, log_path: Path, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._env = {**os.environ, "GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN, **(env or {})}
        self._env.pop("AIHUBMIX_API_KEY", None)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> GatewayProcess:
        """Start and wait until ready. ``free_port`` cannot reserve its port: should another
        socket take it meanwhile, the gateway says "port N is in use" and another is tried."""
        for _ in range(3):
            try:
                return self._start(timeout)
            except PortTaken:
                self.port = free_port()
                self.url = f"http://127.0.0.1:{self.port}"
        return self._start(timeout)

    def _start(self, timeout: float) -> GatewayProcess:
        command = [sys.executable, "-m", "gateway", "--config", str(self.config)]
        with self.log_path.open("ab") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                [*command, "serve", "--port", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self._env,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                output = self.log_path.read_text()[-3000:]
                if f"port {self.port} is in use" in output:
                    raise PortTaken(output)
                raise RuntimeError(f"gateway exited: {output}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError("gateway did not become ready")

    def kill(self) -> None:
        """``kill -9``: no shutdown, no drain, no cleanup."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        return httpx.request(method, f"{self.url}{path}", headers=headers, timeout=30, **kwargs)

    def new_key(self, team: str = "team-a") -> str:
        self.admin("POST", "/admin/teams", json={"name": team})
        resp = self.admin("POST", "/admin/keys", json={"team": team, "name": "proc"})
        assert resp.status_code == 201, resp.text
        key: str = resp.json()["key"]
        return key
