"""Shared fixtures: a real sandbox upstream and a real gateway, both on 127.0.0.1."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.app import create_app
from gateway.sandbox.app import create_sandbox_app
from gateway.sandbox.config import SandboxConfig
from gateway.settings import Settings, load_settings
from tests.sdk import DeadlineOpenAI
from tests.servers import ServerThread

ADMIN_TOKEN = "admin-token-for-tests-0123456789"
FAST_MODEL = "doubao-seedance-2-0-fast-260128"
HELD_SECONDS = 3600.0  # a queue time no test outlives: the job waits for the test's say-so


def wait_for(condition: Callable[[], Any], *, timeout: float = 20.0, interval: float = 0.02) -> Any:
    """Poll ``condition`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


class SandboxHandle:
    """The sandbox upstream and its control endpoints."""

    def __init__(self, server: ServerThread) -> None:
        self.server = server
        self.url = server.url
        self.http = httpx.Client(base_url=self.url, timeout=10)

    def stats(self) -> dict[str, Any]:
        data: dict[str, Any] = self.http.get("/_sandbox/stats").raise_for_status().json()
        return data

    def fault(self, **rule: Any) -> None:
        self.http.post("/_sandbox/faults", json=rule).raise_for_status()

    def configure(self, **changes: Any) -> None:
        self.http.post("/_sandbox/config", json=changes).raise_for_status()

    def clear_faults(self) -> None:
        self.http.delete("/_sandbox/faults").raise_for_status()

    def expire_links(self) -> None:
        self.http.post("/_sandbox/expire_links").raise_for_status()

    def job(self, upstream_id: str) -> Any:
        """The sandbox's in-process record of an upstream job."""
        return self.server.config.app.state.sandbox.jobs[upstream_id]

    def set_job_status(self, upstream_id: str, status: str, **extra: Any) -> None:
        self.http.post(
            f"/_sandbox/jobs/{upstream_id}/status", json={"status": status, **extra}
        ).raise_for_status()

    def hold_new_jobs(self) -> None:
        """Jobs created from now on stay ``queued`` until ``finish_now`` (or a forced status):
        a window the test controls, however slow the machine."""
        self.configure(queue_seconds=HELD_SECONDS)

    def finish_now(self, upstream_id: str) -> None:
        """End a held job now with its natural fate (``completed``, or ``failed`` after a
        ``fail_job`` fault), on the sandbox's own loop."""

        async def finish() -> None:
            job = self.job(upstream_id)
            job.started_at = job.finished_at = self.server.config.app.state.sandbox.clock()

        self.server.call(finish())


class GatewayHandle:
    """A running gateway plus admin helpers to make teams, keys and SDK clients."""

    def __init__(
        self, server: ServerThread, settings: Settings, clock: Callable[[], float] = time.time
    ) -> None:
        self.server = server
        self.settings = settings
        self.clock = clock
        self.url = server.url
        self.http = httpx.Client(base_url=self.url, timeout=30)
        self._teams: set[str] = set()
        self.clients: list[DeadlineOpenAI] = []

    def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        return self.http.request(method, path, headers=headers, **kwargs)

    def new_key(self, team: str = "team-a", name: str = "test") -> str:
        if team not in self._teams:
            resp = self.admin("POST", "/admin/teams", json={"name": team})
            assert resp.status_code in (201, 409), resp.text
            self._teams.add(team)
        resp = self.admin("POST", "/admin/keys", json={"team": team, "name": name})
        assert resp.status_code == 201, resp.text
        key: str = resp.json()["key"]
        return key

    def client(self, key: str | None = None, **kwargs: Any) -> DeadlineOpenAI:
        client = DeadlineOpenAI(
            base_url=f"{self.url}/v1", api_key=key or self.new_key(), max_retries=0, **kwargs
        )
        self.clients.append(client)
        return client

    @property
    def store(self) -> Any:
        return self.server.config.app.state.context.store

    def job(self, video_id: str) -> Any:
        """The gateway's stored record of a video (deleted ones included)."""
        return self.server.call(self.store.get_job(video_id))

    def close(self) -> None:
        for client in self.clients:
            client.close()
        self.http.close()


def gateway_settings(tmp_path: Path, upstream_url: str, **sections: dict[str, Any]) -> Settings:
    overrides: dict[str, dict[str, Any]] = {
        "database": {"url": f"sqlite:///{tmp_path}/gateway.db"},
        "storage": {"url": f"file://{tmp_path}/blobs"},
        "upstream": {"base_url": upstream_url, "sandbox": True, "backoff_base": 0.01},
        "jobs": {
            "refresh_after_seconds": 0.0,
            "poll_after_ms": 20,
            "poll_min_seconds": 0.05,
            "poll_max_seconds": 0.2,
            "idle_seconds": 0.02,
        },
    }
    for name, values in sections.items():
        overrides.setdefault(name, {}).update(values)
    config = tmp_path / "config.toml"
    config.touch()
    return load_settings(
        config,
        environ={"GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN},
        overrides=overrides,
    )


@pytest.fixture
def sandbox() -> Iterator[SandboxHandle]:
    app = create_sandbox_app(
        SandboxConfig(queue_seconds=0.05, run_seconds=0.2, video_bytes=64 * 1024)
    )
    # A test may leave a request hanging in a latency fault (30 s): stop does not wait for it.
    server = ServerThread(app, lifespan="off", graceful_seconds=1.0).start()
    handle = SandboxHandle(server)
    yield handle
    handle.http.close()
    server.stop()


@pytest.fixture
def gateway_factory(tmp_path: Path, sandbox: SandboxHandle) -> Iterator[Any]:
    started: list[GatewayHandle] = []

    def start(clock: Callable[[], float] = time.time, **sections: dict[str, Any]) -> GatewayHandle:
        settings = gateway_settings(tmp_path, sandbox.url, **sections)
        server = ServerThread(create_app(settings, clock=clock)).start()
        handle = GatewayHandle(server, settings, clock)
        started.append(handle)
        return handle

    yield start
    for handle in started:
        handle.close()
        handle.server.stop()


@pytest.fixture
def gateway(gateway_factory: Any) -> GatewayHandle:
    handle: GatewayHandle = gateway_factory()
    return handle
