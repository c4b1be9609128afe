"""Shared pieces of the sandbox tests: a fake clock, a sleep recorder, request helpers."""

from __future__ import annotations

from typing import Any

import httpx

AUTH = {"Authorization": "Bearer sk-test"}
MODEL = "doubao-seedance-2-0-fast-260128"
T0 = 1_800_000_000.0


class FakeClock:
    """A clock tests move by hand."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class SleepRecorder:
    """Stands in for asyncio.sleep: records the delays, never waits."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def body(**overrides: Any) -> dict[str, Any]:
    """A minimal valid create body."""
    return {"model": MODEL, "prompt": "Seconds 0-2: a cat on a skateboard", **overrides}


async def create(client: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
    """Create a job and return the reply, asserting it was accepted."""
    response = await client.post("/v1/videos", json=body(**overrides), headers=AUTH)
    assert response.status_code == 200, response.text
    doc: dict[str, Any] = response.json()
    return doc


async def poll(client: httpx.AsyncClient, video_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/videos/{video_id}", headers=AUTH)
    assert response.status_code == 200, response.text
    doc: dict[str, Any] = response.json()
    return doc


def assert_envelope(response: httpx.Response, status: int, fragment: str = "") -> str:
    """Check the AIHubMix error envelope and return its message."""
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["type"] == "Aihubmix_api_error"
    assert "(tid: " in error["message"]
    assert fragment.lower() in error["message"].lower()
    message: str = error["message"]
    return message
