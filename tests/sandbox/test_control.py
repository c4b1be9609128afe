"""The /_sandbox control API (no auth) drives the same state as the in-process methods."""

from __future__ import annotations

import httpx
import pytest

from gateway.sandbox import FaultRule, SandboxState
from tests.sandbox.support import AUTH, FakeClock, assert_envelope, body, create, poll


async def test_stats_and_reset(client: httpx.AsyncClient, state: SandboxState) -> None:
    await create(client)
    state.add_fault(FaultRule(op="poll"))
    stats = (await client.get("/_sandbox/stats")).json()
    assert stats == {
        "create": 1,
        "create_accepted": 1,
        "poll": 0,
        "content": 0,
        "file": 0,
        "delete": 0,
        "jobs": 1,
    }
    reset = await client.post("/_sandbox/reset")
    assert reset.json()["jobs"] == 0
    assert not state.jobs
    assert not state.faults
    assert set(state.counters.values()) == {0}


async def test_config_round_trip(client: httpx.AsyncClient, state: SandboxState) -> None:
    response = await client.post(
        "/_sandbox/config", json={"poll_shape": "ark", "run_seconds": 1, "api_key": "sk-a"}
    )
    assert response.status_code == 200
    assert response.json()["poll_shape"] == "ark"
    assert state.config.run_seconds == 1.0
    assert state.config.api_key == "sk-a"
    assert (await client.get("/_sandbox/config")).json() == response.json()
    cleared = await client.post("/_sandbox/config", json={"api_key": None})
    assert cleared.json()["api_key"] is None


@pytest.mark.parametrize(
    "changes",
    [
        {"poll_shape": "sora"},
        {"url_field": "data.url"},
        {"video_bytes": 10},
        {"video_bytes": 1.5},
        {"queue_seconds": -1},
        {"queue_seconds": "1"},
        {"api_key": 5},
        {"poll_shape": None},
        {"run_seconds": True},
        {"unknown": 1},
    ],
)
async def test_bad_config_is_400_and_changes_nothing(
    client: httpx.AsyncClient, state: SandboxState, changes: dict[str, object]
) -> None:
    before = state.config
    assert_envelope(await client.post("/_sandbox/config", json=changes), 400)
    assert state.config == before


async def test_bad_control_bodies(client: httpx.AsyncClient) -> None:
    assert_envelope(await client.post("/_sandbox/config", content=b"{"), 400, "JSON")
    assert_envelope(await client.post("/_sandbox/config", json=[1]), 400, "object")
    assert_envelope(await client.post("/_sandbox/faults", json={"op": "x"}), 400, "op")
    assert_envelope(await client.post("/_sandbox/faults", content=b"]"), 400)


async def test_faults_endpoints(client: httpx.AsyncClient, state: SandboxState) -> None:
    rule = {"op": "create", "kind": "status", "status": 429, "retry_after": 3, "times": 2}
    added = (await client.post("/_sandbox/faults", json=rule)).json()
    assert added["faults"] == 1
    assert added["added"]["status"] == 429
    listed = (await client.get("/_sandbox/faults")).json()["faults"]
    assert listed == [FaultRule.from_json(rule).to_json()]
    response = await client.post("/v1/videos", json=body(), headers=AUTH)
    assert_envelope(response, 429)
    assert response.headers["retry-after"] == "3"
    assert (await client.delete("/_sandbox/faults")).json() == {"faults": 0}
    assert not state.faults


async def test_force_status(client: httpx.AsyncClient, clock: FakeClock) -> None:
    video_id = (await create(client))["id"]
    clock.advance(3)
    error = {"code": "InternalServiceError", "message": "boom"}
    response = await client.post(
        f"/_sandbox/jobs/{video_id}/status", json={"status": "failed", "error": error}
    )
    assert response.status_code == 200
    doc = await poll(client, video_id)
    assert doc["status"] == "failed"
    assert doc["error"] == error
    assert doc["progress"] == 50
    clock.advance(100)
    assert (await poll(client, video_id))["status"] == "failed"


async def test_force_status_errors(client: httpx.AsyncClient) -> None:
    video_id = (await create(client))["id"]
    path = f"/_sandbox/jobs/{video_id}/status"
    assert_envelope(await client.post(path, json={"status": "completed"}), 400, "status")
    assert_envelope(await client.post(path, json={"status": 3}), 400)
    assert_envelope(await client.post(path, json={"status": "failed", "error": "x"}), 400)
    assert_envelope(await client.post(path, content=b"nope"), 400)
    missing = await client.post("/_sandbox/jobs/none/status", json={"status": "failed"})
    assert_envelope(missing, 404)


async def test_job_records(client: httpx.AsyncClient) -> None:
    video_id = (await create(client, seed=5))["id"]
    record = (await client.get(f"/_sandbox/jobs/{video_id}")).json()
    assert record["body"] == body(seed=5)
    assert (record["status"], record["seed"]) == ("queued", 5)
    listed = (await client.get("/_sandbox/jobs")).json()["data"]
    assert [r["id"] for r in listed] == [video_id]
    assert_envelope(await client.get("/_sandbox/jobs/none"), 404)


async def test_expire_links_endpoint(client: httpx.AsyncClient, clock: FakeClock) -> None:
    video_id = (await create(client))["id"]
    clock.advance(10)
    url = (await poll(client, video_id))["video_url"]
    assert (await client.post("/_sandbox/expire_links")).json() == {"expired": 1}
    assert_envelope(await client.get(url), 403, "expired")


def test_set_config_in_process(state: SandboxState) -> None:
    config = state.set_config(url_field="metadata.url", video_bytes=4096)
    assert state.config is config
    assert (config.url_field, config.video_bytes) == ("metadata.url", 4096)
    with pytest.raises(ValueError):
        state.set_config(url_field="nowhere")
