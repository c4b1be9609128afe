"""What the benchmark needs inside the servers: a team and keys made through the gateway's
admin API, and finished jobs of chosen video sizes.

Jobs for the gateway are made through it; jobs for the direct and nginx targets are made on the
sandbox itself (same size, same state). Either is waited for by polling ``GET /v1/videos/{id}``
until ``completed``, never by sleeping a fixed time.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

MODEL = "doubao-seedance-2-0-fast-260128"
SANDBOX_KEY = "sk-sandbox"  # the sandbox accepts any Bearer key but its "broke" one
JOB_TIMEOUT = 60.0
JOB_POLL = 0.1


class WorkloadError(RuntimeError):
    """The gateway or sandbox refused a setup step; the message says which and why."""


def _describe(response: httpx.Response) -> str:
    try:
        data: Any = response.json()
        message = data.get("error", {}).get("message") if isinstance(data, dict) else None
    except ValueError:
        message = None
    return f"HTTP {response.status_code}: {message or response.text[:200]}"


def create_body(prompt: str, *, seed: int = 42) -> dict[str, Any]:
    """The create body every target gets (the same fields the Lua script sends)."""
    return {
        "model": MODEL,
        "prompt": prompt,
        "ratio": "16:9",
        "resolution": "720p",
        "duration": 5,
        "seed": seed,
    }


class Workload:
    """Setup calls against one running gateway and its sandbox."""

    def __init__(self, gateway_url: str, sandbox_url: str, admin_token: str) -> None:
        self.gateway = httpx.Client(base_url=gateway_url, timeout=30)
        self.sandbox = httpx.Client(base_url=sandbox_url, timeout=30)
        self._admin = {"Authorization": f"Bearer {admin_token}"}

    def close(self) -> None:
        self.gateway.close()
        self.sandbox.close()

    def create_team(self, name: str) -> None:
        response = self.gateway.post("/admin/teams", json={"name": name}, headers=self._admin)
        if response.status_code not in (201, 409):
            raise WorkloadError(f"creating team {name!r}: {_describe(response)}")

    def create_key(self, team: str, name: str) -> str:
        response = self.gateway.post(
            "/admin/keys", json={"team": team, "name": name}, headers=self._admin
        )
        if response.status_code != 201:
            raise WorkloadError(f"creating a key for {team!r}: {_describe(response)}")
        key: str = response.json()["key"]
        return key

    def create_keys(self, team: str, count: int, path: Path) -> list[str]:
        """``count`` keys of ``team``, also written one a line to ``path`` for the Lua script."""
        self.create_team(team)
        keys = [self.create_key(team, f"bench-{i}") for i in range(count)]
        path.write_text("\n".join(keys) + "\n")
        return keys

    def set_video_bytes(self, size: int) -> None:
        """Size of the videos of jobs created from now on."""
        response = self.sandbox.post("/_sandbox/config", json={"video_bytes": size})
        if not response.is_success:
            raise WorkloadError(f"sandbox config: {_describe(response)}")

    def gateway_job(self, key: str, prompt: str, video_bytes: int) -> str:
        """A completed job of ``video_bytes`` made through the gateway; returns its gateway id."""
        self.set_video_bytes(video_bytes)
        auth = {"Authorization": f"Bearer {key}"}
        response = self.gateway.post("/v1/videos", json=create_body(prompt), headers=auth)
        if not response.is_success:
            raise WorkloadError(f"gateway create: {_describe(response)}")
        job_id: str = response.json()["id"]
        self._wait_completed(self.gateway, f"/v1/videos/{job_id}", auth, "gateway")
        return job_id

    def sandbox_job(self, prompt: str, video_bytes: int) -> str:
        """A completed job of ``video_bytes`` made on the sandbox directly; returns its id."""
        self.set_video_bytes(video_bytes)
        auth = {"Authorization": f"Bearer {SANDBOX_KEY}"}
        response = self.sandbox.post("/v1/videos", json=create_body(prompt), headers=auth)
        if not response.is_success:
            raise WorkloadError(f"sandbox create: {_describe(response)}")
        job_id: str = response.json()["id"]
        self._wait_completed(self.sandbox, f"/v1/videos/{job_id}", auth, "sandbox")
        return job_id

    def _wait_completed(
        self, client: httpx.Client, path: str, headers: dict[str, str], where: str
    ) -> None:
        """Poll ``path`` until the job is completed (the gateway refreshes running jobs)."""
        deadline = time.monotonic() + JOB_TIMEOUT
        status = "unknown"
        while time.monotonic() < deadline:
            response = client.get(path, headers=headers)
            if not response.is_success:
                raise WorkloadError(f"{where} poll: {_describe(response)}")
            status = response.json().get("status", "unknown")
            if status == "completed":
                return
            if status == "failed":
                raise WorkloadError(f"{where} job failed: {response.json().get('error')}")
            time.sleep(JOB_POLL)
        raise WorkloadError(f"{where} job still {status} after {JOB_TIMEOUT:.0f} s")

    def upstream_counters(self) -> dict[str, int]:
        """The sandbox's call counters (create, poll, content, file, ...)."""
        data: dict[str, int] = self.sandbox.get("/_sandbox/stats").raise_for_status().json()
        return data
