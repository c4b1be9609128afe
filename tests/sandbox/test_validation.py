"""POST /v1/videos rejects what the real upstream rejects, with a descriptive 400 envelope."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from gateway.sandbox import SandboxState
from tests.sandbox.support import AUTH, MODEL, assert_envelope, body

IMG = {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}, "role": "reference_image"}
VID = {"type": "video_url", "video_url": {"url": "https://x.test/a.mp4"}, "role": "reference_video"}
AUD = {"type": "audio_url", "audio_url": {"url": "https://x.test/a.mp3"}, "role": "reference_audio"}
FIRST = {"type": "image_url", "image_url": {"url": "https://x.test/f.png"}, "role": "first_frame"}


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"model": "sora-2"}, "model `sora-2`"),
        ({"model": None}, "`model` is required"),
        ({"prompt": ""}, "`prompt`"),
        ({"prompt": "   "}, "`prompt`"),
        ({"prompt": 5}, "`prompt`"),
        ({"prompt": "x" * 4001}, "too long"),
        ({"ratio": "2:1"}, "`ratio`"),
        ({"resolution": "1080p"}, "`resolution`"),
        ({"resolution": "1280x720"}, "`resolution`"),
        ({"duration": 1}, "`duration`"),
        ({"duration": 16}, "`duration`"),
        ({"duration": 5.5}, "`duration`"),
        ({"duration": "5"}, "`duration`"),
        ({"duration": True}, "`duration`"),
        ({"seed": -2}, "`seed`"),
        ({"seed": 2**32}, "`seed`"),
        ({"seed": 1.0}, "`seed`"),
        ({"watermark": "false"}, "`watermark`"),
        ({"content": {"type": "image_url"}}, "`content`"),
        ({"content": ["x"]}, "content[0] must be an object"),
        ({"content": [{**IMG, "type": "file"}]}, "content[0].type"),
        ({"content": [{"type": "image_url", "image_url": {}, "role": "first_frame"}]}, ".url"),
        ({"content": [{**IMG, "role": "hero"}]}, "content[0].role"),
        ({"content": [{**VID, "role": "first_frame"}]}, "requires type image_url"),
        ({"content": [IMG] * 10}, "too many image_url"),
        ({"content": [VID] * 4}, "too many video_url"),
        ({"content": [AUD] * 4}, "too many audio_url"),
        ({"content": [FIRST, FIRST]}, "at most one first_frame"),
        ({"content": [{"type": "text", "text": 3}]}, "content[0].text"),
    ],
)
async def test_invalid_bodies_are_rejected(
    client: httpx.AsyncClient, state: SandboxState, overrides: dict[str, Any], fragment: str
) -> None:
    response = await client.post("/v1/videos", json=body(**overrides), headers=AUTH)
    assert_envelope(response, 400, fragment)
    assert state.counters["create"] == 1
    assert state.counters["create_accepted"] == 0
    assert not state.jobs


async def test_reference_image_rejected_on_seedance_1x(client: httpx.AsyncClient) -> None:
    payload = body(model="doubao-seedance-1-0-pro-250528", content=[IMG])
    response = await client.post("/v1/videos", json=payload, headers=AUTH)
    assert_envelope(response, 400, "does not support reference_image")


async def test_1080p_accepted_where_the_model_has_it(client: httpx.AsyncClient) -> None:
    payload = body(model="doubao-seedance-1-5-pro-251215", resolution="1080p", ratio="9:16")
    response = await client.post("/v1/videos", json=payload, headers=AUTH)
    assert response.status_code == 200
    assert response.json()["size"] == "1080x1920"


async def test_full_body_is_accepted_and_recorded(
    client: httpx.AsyncClient, state: SandboxState
) -> None:
    content = [
        FIRST,
        {**FIRST, "role": "last_frame"},
        VID,
        AUD,
        {"type": "text", "text": "extra"},
    ]
    payload = body(
        content=content,
        ratio="21:9",
        resolution="480p",
        duration=15,
        generate_audio=True,
        return_last_frame=True,
        watermark=False,
        seed=2**32 - 1,
    )
    response = await client.post("/v1/videos", json=payload, headers=AUTH)
    assert response.status_code == 200, response.text
    assert state.jobs[response.json()["id"]].body == payload


@pytest.mark.parametrize(
    ("content", "headers", "fragment"),
    [
        (b'{"model": ', {"content-type": "application/json"}, "not valid JSON"),
        (b"[1, 2]", {"content-type": "application/json"}, "JSON object"),
        (b"model=x", {"content-type": "application/x-www-form-urlencoded"}, "application/json"),
    ],
)
async def test_malformed_bodies(
    client: httpx.AsyncClient, content: bytes, headers: dict[str, str], fragment: str
) -> None:
    response = await client.post("/v1/videos", content=content, headers={**AUTH, **headers})
    assert_envelope(response, 400, fragment)


async def test_multipart_is_rejected(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/videos", data={"model": MODEL, "prompt": "x"}, files={"f": b"x"}, headers=AUTH
    )
    assert_envelope(response, 400, "multipart/form-data is not supported")
