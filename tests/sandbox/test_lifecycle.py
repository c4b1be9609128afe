"""Jobs move queued -> in_progress -> completed on the injected clock; auth, ids, delete."""

from __future__ import annotations

import base64

import httpx
import orjson
import pytest

from gateway.domain.catalog import size_for
from gateway.sandbox import SandboxState
from tests.sandbox.support import AUTH, MODEL, T0, FakeClock, assert_envelope, body, create, poll


async def test_create_reply_has_the_aihubmix_shape(client: httpx.AsyncClient) -> None:
    doc = await create(client, duration=8, ratio="9:16", resolution="480p")
    assert doc == {
        "id": doc["id"],
        "object": "video",
        "model": MODEL,
        "status": "queued",
        "progress": 0,
        "created_at": int(T0),
        "seconds": "8",
        "duration": 8,
        "size": size_for("9:16", "480p"),  # the catalog owns the pixel table
    }


async def test_ids_are_long_opaque_base64_json_plus_channel(client: httpx.AsyncClient) -> None:
    video_id = (await create(client))["id"]
    assert len(video_id) > 100
    encoded, _, channel = video_id.rpartition("channel")
    assert channel.isdigit()
    inner = orjson.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    assert inner["model"] == MODEL
    assert inner["id"].startswith("cgt-")
    assert (await create(client))["id"] != video_id


async def test_status_follows_the_clock(client: httpx.AsyncClient, clock: FakeClock) -> None:
    video_id = (await create(client))["id"]
    doc = await poll(client, video_id)
    assert (doc["status"], doc["progress"]) == ("queued", 0)
    clock.advance(0.999)
    assert (await poll(client, video_id))["status"] == "queued"

    clock.advance(0.001)
    seen = []
    for _ in range(8):
        doc = await poll(client, video_id)
        assert doc["status"] == "in_progress"
        seen.append(doc["progress"])
        clock.advance(0.5)
    assert seen == sorted(seen)
    assert seen[0] == 1
    assert all(1 <= p <= 99 for p in seen)
    assert seen[-1] > 80

    doc = await poll(client, video_id)
    assert (doc["status"], doc["progress"]) == ("completed", 100)
    assert doc["completed_at"] == int(T0 + 5)
    assert doc["expires_at"] == int(T0 + 5 + 86400)
    assert doc["error"] is None
    assert doc["video_url"].startswith("http://sandbox.test/files/")


async def test_poll_reports_seed_duration_ratio_resolution(client: httpx.AsyncClient) -> None:
    doc = await poll(client, (await create(client, seed=42, duration=3))["id"])
    assert (doc["seed"], doc["duration"], doc["seconds"]) == (42, 3, "3")
    assert (doc["ratio"], doc["resolution"], doc["size"]) == ("16:9", "720p", "1280x720")
    random_seed = (await poll(client, (await create(client, seed=-1))["id"]))["seed"]
    assert 0 <= random_seed < 2**32


async def test_zero_timings_complete_at_once(
    client: httpx.AsyncClient, state: SandboxState
) -> None:
    state.set_config(queue_seconds=0, run_seconds=0)
    doc = await poll(client, (await create(client))["id"])
    assert doc["status"] == "completed"


async def test_unknown_id_is_404(client: httpx.AsyncClient) -> None:
    assert_envelope(await client.get("/v1/videos/nope", headers=AUTH), 404, "not found")
    assert_envelope(await client.get("/v1/videos/nope/content", headers=AUTH), 404)
    assert_envelope(await client.delete("/v1/videos/nope", headers=AUTH), 404)


async def test_delete(client: httpx.AsyncClient, state: SandboxState) -> None:
    video_id = (await create(client))["id"]
    response = await client.delete(f"/v1/videos/{video_id}", headers=AUTH)
    assert response.json() == {"id": video_id, "object": "video.deleted", "deleted": True}
    assert not state.jobs
    assert_envelope(await client.get(f"/v1/videos/{video_id}", headers=AUTH), 404)
    assert state.counters["delete"] == 1


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer "}, {"Authorization": "Basic abc"}, {"Authorization": "sk-x"}],
)
async def test_missing_or_malformed_key_is_401(
    client: httpx.AsyncClient, state: SandboxState, headers: dict[str, str]
) -> None:
    for response in (
        await client.post("/v1/videos", json=body(), headers=headers),
        await client.get("/v1/videos/x", headers=headers),
        await client.get("/v1/videos/x/content", headers=headers),
        await client.delete("/v1/videos/x", headers=headers),
    ):
        assert_envelope(response, 401, "Invalid token")
    assert state.stats() == {
        "create": 0,
        "create_accepted": 0,
        "poll": 0,
        "content": 0,
        "file": 0,
        "delete": 0,
        "jobs": 0,
    }


async def test_configured_key_is_required(client: httpx.AsyncClient, state: SandboxState) -> None:
    state.set_config(api_key="sk-right")
    wrong = await client.post("/v1/videos", json=body(), headers=AUTH)
    assert_envelope(wrong, 401, "Invalid token")
    right = await client.post(
        "/v1/videos", json=body(), headers={"Authorization": "Bearer sk-right"}
    )
    assert right.status_code == 200


async def test_broke_key_gets_insufficient_balance(
    client: httpx.AsyncClient, state: SandboxState
) -> None:
    broke = {"Authorization": "Bearer sk-broke"}
    response = await client.post("/v1/videos", json=body(), headers=broke)
    assert_envelope(response, 403, "Your account balance is insufficient. Please recharge")
    assert state.counters["create"] == 0
    assert not state.jobs


async def test_unknown_route_and_method_answer_envelopes(client: httpx.AsyncClient) -> None:
    assert_envelope(await client.get("/v2/nothing"), 404)
    assert_envelope(await client.put("/v1/videos", headers=AUTH), 405)


async def test_counters_count_every_authorized_request(
    client: httpx.AsyncClient, state: SandboxState, clock: FakeClock
) -> None:
    video_id = (await create(client))["id"]
    await client.post("/v1/videos", json=body(duration=99), headers=AUTH)
    await poll(client, video_id)
    await client.get(f"/v1/videos/{video_id}/content", headers=AUTH)  # 400: not completed
    clock.advance(10)
    url = (await poll(client, video_id))["video_url"]
    await client.get(url)
    await client.get(f"/v1/videos/{video_id}/content", headers=AUTH)
    await client.delete(f"/v1/videos/{video_id}", headers=AUTH)
    assert state.stats() == {
        "create": 2,
        "create_accepted": 1,
        "poll": 2,
        "content": 2,
        "file": 1,
        "delete": 1,
        "jobs": 0,
    }


async def test_max_jobs_forgets_the_oldest(client: httpx.AsyncClient, state: SandboxState) -> None:
    state.set_config(max_jobs=2)
    first, second, third = [(await create(client))["id"] for _ in range(3)]
    assert list(state.jobs) == [second, third]
    assert_envelope(await client.get(f"/v1/videos/{first}", headers=AUTH), 404)
