"""The official openai SDK against a real gateway and a real sandbox upstream, unchanged."""

from __future__ import annotations

import openai
import pytest

from gateway.sandbox.state import expected_video_bytes
from tests.conftest import FAST_MODEL, GatewayHandle, SandboxHandle
from tests.video_files import streams_of


def upstream_content(gateway: GatewayHandle, sandbox: SandboxHandle, video_id: str) -> bytes:
    """The bytes the sandbox serves for the upstream job behind ``video_id``."""
    return expected_video_bytes(sandbox.job(gateway.job(video_id).upstream_id))


def test_create_multipart_as_the_sdk_sends_it(gateway: GatewayHandle, sandbox: SandboxHandle):
    client = gateway.client()
    video = client.videos.create(
        model=FAST_MODEL,
        prompt="A paper boat",
        seconds="8",  # type: ignore[arg-type]
        extra_body={"resolution": "480p", "seed": 7, "generate_audio": True},
    )
    assert video.id.startswith("video_")
    assert video.status == "queued"
    assert video.seconds == "8"
    extra = video.model_extra or {}
    assert extra["resolution"] == "480p"
    assert extra["seed"] == 7
    assert extra["generate_audio"] is True
    assert video.size == "854x480"
    assert sandbox.stats()["create_accepted"] == 1


def test_create_json_with_content_list(gateway: GatewayHandle, sandbox: SandboxHandle):
    client = gateway.client()
    video = client.videos.create(
        model="doubao-seedance-2-0-260128",
        prompt="Image 1 opens, Video 1 sets the camera",
        extra_headers={"Content-Type": "application/json"},
        extra_body={
            "content": [
                {
                    "type": "image_url",
                    "image_url": {"url": "https://example.com/a.jpg"},
                    "role": "first_frame",
                },
                {
                    "type": "video_url",
                    "video_url": {"url": "https://example.com/b.mp4"},
                    "role": "reference_video",
                },
            ],
            "duration": 6,
        },
    )
    assert video.seconds == "6"
    assert sandbox.stats()["create_accepted"] == 1


def test_create_and_poll_then_download(gateway: GatewayHandle, sandbox: SandboxHandle):
    client = gateway.client()
    video = client.videos.create_and_poll(model=FAST_MODEL, prompt="Rain", poll_interval_ms=20)
    assert video.status == "completed"
    assert video.progress == 100
    assert video.completed_at is not None
    content = client.videos.download_content(video.id)
    assert content.content == upstream_content(gateway, sandbox, video.id)
    assert content.content[4:8] == b"ftyp"


def test_delivered_figures_come_from_the_probe(gateway: GatewayHandle, sandbox: SandboxHandle):
    client = gateway.client()
    video = client.videos.create_and_poll(
        model=FAST_MODEL,
        prompt="Waves",
        seconds="4",  # type: ignore[arg-type]
        extra_body={"generate_audio": True, "ratio": "1:1"},
        poll_interval_ms=20,
    )
    assert video.status == "completed" and video.seconds == "4"
    extra = client.videos.retrieve(video.id).model_extra or {}
    assert (extra["delivered_duration_ms"], extra["delivered_codec"]) == (4000, "h264")
    assert (extra["delivered_width"], extra["delivered_height"]) == (90, 90)
    assert extra["delivered_audio"] is True
    listed = client.videos.list().data[0].model_extra or {}
    assert listed["delivered_duration_ms"] == 4000
    streams = streams_of(client.videos.download_content(video.id).content)
    assert (streams.video_codec, streams.audio_codec) == ("h264", "aac")


def test_content_before_completion_names_status(gateway: GatewayHandle, sandbox: SandboxHandle):
    sandbox.configure(queue_seconds=60)
    client = gateway.client()
    video = client.videos.create(model=FAST_MODEL, prompt="Slow")
    with pytest.raises(openai.BadRequestError) as err:
        client.videos.download_content(video.id)
    assert err.value.status_code == 400
    assert "queued" in err.value.message
    assert err.value.code == "video_not_ready"


def test_list_pagination_across_pages(gateway: GatewayHandle):
    client = gateway.client()
    created = [client.videos.create(model=FAST_MODEL, prompt=f"clip {i}").id for i in range(5)]
    page = client.videos.list(limit=2)
    assert [v.id for v in page.data] == created[::-1][:2]
    assert page.has_more is True
    assert [v.id for v in client.videos.list(limit=2)] == created[::-1]  # SDK auto-pages
    ascending = client.videos.list(limit=2, order="asc", after=created[1])
    assert [v.id for v in ascending.data] == created[2:4]


def test_delete_hides_the_video(gateway: GatewayHandle):
    client = gateway.client()
    video = client.videos.create(model=FAST_MODEL, prompt="Gone soon")
    deleted = client.videos.delete(video.id)
    assert deleted.id == video.id
    assert deleted.deleted is True
    assert deleted.object == "video.deleted"
    with pytest.raises(openai.NotFoundError):
        client.videos.retrieve(video.id)
    assert [v.id for v in client.videos.list().data] == []


def test_tenant_isolation(gateway: GatewayHandle):
    alice = gateway.client(gateway.new_key("team-alice"))
    bob = gateway.client(gateway.new_key("team-bob"))
    video = alice.videos.create(model=FAST_MODEL, prompt="Private")
    with pytest.raises(openai.NotFoundError):
        bob.videos.retrieve(video.id)
    with pytest.raises(openai.NotFoundError):
        bob.videos.delete(video.id)
    with pytest.raises(openai.NotFoundError):
        bob.videos.download_content(video.id)
    assert bob.videos.list().data == []
    assert alice.videos.retrieve(video.id).id == video.id


def test_same_team_keys_share_videos(gateway: GatewayHandle):
    first = gateway.client(gateway.new_key("team-shared", "one"))
    second = gateway.client(gateway.new_key("team-shared", "two"))
    video = first.videos.create(model=FAST_MODEL, prompt="Shared")
    assert second.videos.retrieve(video.id).id == video.id


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer", "Basic abc", "Bearer sk-not-a-gateway-key", "Bearer gw-" + "x" * 43],
)
def test_bad_keys_are_401(gateway: GatewayHandle, authorization: str | None):
    headers = {"Authorization": authorization} if authorization else {}
    resp = gateway.http.get("/v1/videos", headers=headers)
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "invalid_api_key"


def test_revoked_key_is_401(gateway: GatewayHandle):
    key = gateway.new_key("team-revoke")
    assert gateway.http.get("/v1/videos", headers={"Authorization": f"Bearer {key}"}).is_success
    keys = gateway.admin("GET", "/admin/keys", params={"team": "team-revoke"}).json()["data"]
    assert gateway.admin("POST", f"/admin/keys/{keys[0]['id']}/revoke").status_code == 200
    resp = gateway.http.get("/v1/videos", headers={"Authorization": f"Bearer {key}"})
    assert resp.status_code == 401
    assert "revoked" in resp.json()["error"]["message"]


def test_poll_after_header_while_running(gateway: GatewayHandle, sandbox: SandboxHandle):
    sandbox.configure(queue_seconds=60)
    key = gateway.new_key()
    client = gateway.client(key)
    video = client.videos.create(model=FAST_MODEL, prompt="Header")
    resp = gateway.http.get(f"/v1/videos/{video.id}", headers={"Authorization": f"Bearer {key}"})
    assert resp.headers["openai-poll-after-ms"] == "20"
    assert resp.headers["x-request-id"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/videos/video_x/remix"),
        ("POST", "/v1/videos/edits"),
        ("POST", "/v1/videos/extensions"),
        ("POST", "/v1/videos/characters"),
    ],
)
def test_sora_only_operations_are_clear_400s(gateway: GatewayHandle, method: str, path: str):
    key = gateway.new_key()
    resp = gateway.http.request(
        method, path, headers={"Authorization": f"Bearer {key}"}, json={"prompt": "x"}
    )
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "unsupported_feature"
    assert "Seedance" in resp.json()["error"]["message"]
