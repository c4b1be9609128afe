"""Every poll_shape x url_field combination places status words and URLs where promised."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from gateway.sandbox import SandboxState
from gateway.sandbox.config import POLL_SHAPES, URL_FIELDS
from tests.sandbox.support import AUTH, FakeClock, create, poll

WORDS = {
    "openai": ("queued", "in_progress", "completed"),
    "ark": ("queued", "running", "succeeded"),
    "relay": ("pending", "processing", "succeeded"),
}
URL_KEYS = ("video_url", "url", "content", "metadata", "last_frame_url")


def video_url_in(doc: dict[str, Any], url_field: str) -> str | None:
    if url_field == "none":
        return None
    value: Any = doc
    for part in url_field.split("."):
        value = value[part]
    assert isinstance(value, str)
    return value


def last_frame_url_in(doc: dict[str, Any], url_field: str) -> str:
    if url_field == "content.video_url":
        url: str = doc["content"]["last_frame_url"]
        assert "last_frame_url" not in doc
    else:
        url = doc["last_frame_url"]
    return url


@pytest.mark.parametrize("shape", POLL_SHAPES)
@pytest.mark.parametrize("url_field", URL_FIELDS)
@pytest.mark.parametrize("last_frame", [False, True])
async def test_shape_and_url_field(
    client: httpx.AsyncClient,
    state: SandboxState,
    clock: FakeClock,
    shape: str,
    url_field: str,
    last_frame: bool,
) -> None:
    state.set_config(poll_shape=shape, url_field=url_field)
    video_id = (await create(client, return_last_frame=last_frame))["id"]
    queued, running, done = WORDS[shape]

    doc = await poll(client, video_id)
    assert doc["status"] == queued
    assert not set(URL_KEYS) & set(doc)
    clock.advance(2)
    doc = await poll(client, video_id)
    assert doc["status"] == running
    assert not set(URL_KEYS) & set(doc)
    clock.advance(10)
    doc = await poll(client, video_id)
    assert doc["status"] == done
    assert doc["progress"] == 100

    video_url = video_url_in(doc, url_field)
    present = set(URL_KEYS) & set(doc)
    if video_url is None:
        assert present == ({"last_frame_url"} if last_frame else set())
    else:
        response = await client.get(video_url)
        assert response.status_code == 200
        assert response.headers["content-type"] == "video/mp4"
    if last_frame:
        response = await client.get(last_frame_url_in(doc, url_field))
        assert response.status_code == 200
        assert response.content.startswith(b"\x89PNG")
    else:
        assert "last_frame_url" not in doc
        assert "last_frame_url" not in doc.get("content", {})


@pytest.mark.parametrize(
    ("shape", "forced", "word"),
    [
        ("openai", "failed", "failed"),
        ("openai", "cancelled", "failed"),
        ("openai", "expired", "failed"),
        ("ark", "failed", "failed"),
        ("ark", "cancelled", "cancelled"),
        ("ark", "expired", "expired"),
        ("relay", "failed", "failed"),
        ("relay", "cancelled", "failed"),
        ("relay", "expired", "failed"),
    ],
)
async def test_forced_fates_per_shape(
    client: httpx.AsyncClient, state: SandboxState, shape: str, forced: str, word: str
) -> None:
    state.set_config(poll_shape=shape)
    video_id = (await create(client))["id"]
    state.force_status(video_id, forced, None)
    doc = await poll(client, video_id)
    assert doc["status"] == word
    assert doc["error"]["code"]
    assert doc["error"]["message"]
    assert not set(URL_KEYS) & set(doc)


async def test_content_before_completion_uses_the_shape_word(
    client: httpx.AsyncClient, state: SandboxState, clock: FakeClock
) -> None:
    state.set_config(poll_shape="ark")
    video_id = (await create(client))["id"]
    clock.advance(2)
    response = await client.get(f"/v1/videos/{video_id}/content", headers=AUTH)
    assert response.status_code == 400
    assert "not completed yet, current status: running" in response.json()["error"]["message"]
