"""The served MP4/PNG bytes are real, deterministic and sized exactly; links expire and are
signed; a video whose first frame is a served last frame continues it."""

from __future__ import annotations

import hashlib
import struct
import zlib
from urllib.parse import parse_qs, urlsplit

import httpx
import orjson
import pytest

from gateway.sandbox import (
    RenderSpec,
    SandboxState,
    expected_last_frame_bytes,
    expected_video_bytes,
    render_mp4,
    still_png,
    video_bytes_for,
)
from gateway.sandbox.media import BLOCK_SIZE, MIN_TAIL
from tests.sandbox.support import (
    AUTH,
    FakeClock,
    assert_envelope,
    body,
    create,
    poll,
)
from tests.video_files import decoded_counters, png_counter, streams_of

SPEC = RenderSpec(width=32, height=18, fps=4, seconds=2, colour=(0x30, 0x70, 0xB0))


async def finished(client: httpx.AsyncClient, clock: FakeClock, **overrides: object) -> str:
    video_id = (await create(client, **overrides))["id"]
    clock.advance(5)
    return str(video_id)


async def test_content_is_the_expected_mp4(
    client: httpx.AsyncClient, state: SandboxState, clock: FakeClock
) -> None:
    video_id = await finished(client, clock)
    response = await client.get(f"/v1/videos/{video_id}/content", headers=AUTH)
    assert response.status_code == 200
    assert response.headers["content-type"] == "video/mp4"
    assert response.headers["content-length"] == "200000"
    data = response.content
    assert len(data) == 200_000
    assert data == expected_video_bytes(state.jobs[video_id])
    assert data[4:12] == b"ftypisom"
    assert data[36:40] == b"moov"  # faststart: playable while it downloads
    core = render_mp4(state.jobs[video_id].render)
    assert data[len(core) : len(core) + 8] == struct.pack(">I4s", 200_000 - len(core), b"free")
    assert decoded_counters(data) == list(range(5 * 24))


async def test_same_seed_and_body_give_the_same_bytes(
    client: httpx.AsyncClient, state: SandboxState, clock: FakeClock
) -> None:
    a = await finished(client, clock, seed=7)
    b = await finished(client, clock, seed=7)
    c = await finished(client, clock, seed=8)
    d = await finished(client, clock, seed=-1)
    e = await finished(client, clock, seed=-1)
    contents = {}
    for video_id in (a, b, c, d, e):
        response = await client.get(f"/v1/videos/{video_id}/content", headers=AUTH)
        contents[video_id] = response.content
    assert contents[a] == contents[b]
    assert len({contents[a], contents[c], contents[d], contents[e]}) == 4
    canonical = orjson.dumps(body(seed=7), option=orjson.OPT_SORT_KEYS)
    assert state.jobs[a].content_seed == hashlib.sha256(canonical).digest()
    assert state.jobs[d].content_seed == hashlib.sha256(d.encode()).digest()


@pytest.mark.parametrize("extra", [MIN_TAIL, 1000, BLOCK_SIZE, BLOCK_SIZE + 1, 3 * BLOCK_SIZE + 17])
def test_video_bytes_for_any_size(extra: int) -> None:
    core = render_mp4(SPEC)
    size = len(core) + extra
    data = video_bytes_for(core, b"seed", size)
    assert len(data) == size
    assert data[4:8] == b"ftyp"
    assert data[len(core) : len(core) + 8] == struct.pack(">I4s", extra, b"free")
    assert data == video_bytes_for(core, b"seed", size)
    assert data != video_bytes_for(core, b"other", size)
    assert decoded_counters(data) == list(range(8))


def test_a_small_size_serves_the_whole_render() -> None:
    core = render_mp4(SPEC)
    data = video_bytes_for(core, b"seed", 64)
    assert len(data) == len(core) + MIN_TAIL
    assert data.startswith(core)


def test_png_is_a_valid_deterministic_image() -> None:
    png = still_png(SPEC, 3)
    assert png == still_png(SPEC, 3) != still_png(SPEC, 4)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    offset = 8
    kinds = []
    while offset < len(png):
        (length,) = struct.unpack(">I", png[offset : offset + 4])
        kind, data = png[offset + 4 : offset + 8], png[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", png[offset + 8 + length : offset + 12 + length])
        assert zlib.crc32(kind + data) == crc
        kinds.append(kind)
        offset += 12 + length
    assert kinds == [b"IHDR", b"IDAT", b"IEND"]


async def test_signed_links_serve_the_same_bytes(
    client: httpx.AsyncClient, state: SandboxState, clock: FakeClock
) -> None:
    video_id = await finished(client, clock, return_last_frame=True)
    doc = await poll(client, video_id)
    mp4 = await client.get(doc["video_url"])  # no Authorization needed
    assert mp4.content == expected_video_bytes(state.jobs[video_id])
    assert mp4.headers["content-length"] == "200000"
    png = await client.get(doc["last_frame_url"])
    assert png.headers["content-type"] == "image/png"
    assert png.content == expected_last_frame_bytes(state.jobs[video_id])


async def test_forged_or_malformed_links_are_refused(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    video_id = await finished(client, clock)
    url = (await poll(client, video_id))["video_url"]
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    later = int(query["expires"]) + 10**6
    cases = [
        f"{parts.path}?expires={later}&sig={query['sig']}",
        f"{parts.path}?expires={query['expires']}&sig={'0' * 64}",
        f"{parts.path}?expires={query['expires']}&sig=\u00e9",
        f"{parts.path}?expires={query['expires']}",
        f"{parts.path}",
        f"{parts.path[:-4]}.gif?{parts.query}",
        f"/files/%%%.mp4?{parts.query}",
        f"{parts.path}?expires=soon&sig={query['sig']}",
    ]
    for case in cases:
        assert_envelope(await client.get(case), 403, "signature")


async def test_png_link_is_only_valid_when_asked_for(
    client: httpx.AsyncClient, state: SandboxState, clock: FakeClock
) -> None:
    video_id = await finished(client, clock)
    doc = await poll(client, video_id)
    assert "last_frame_url" not in doc
    png_path = state.links.path(video_id, "png", doc["expires_at"])
    assert_envelope(await client.get(png_path), 404, "not found")


async def test_links_and_content_expire_after_the_ttl(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    video_id = await finished(client, clock, return_last_frame=True)
    doc = await poll(client, video_id)
    clock.advance(86400 - 1)
    assert (await client.get(doc["video_url"])).status_code == 200
    assert (await client.get(f"/v1/videos/{video_id}/content", headers=AUTH)).status_code == 200
    clock.advance(1)
    assert_envelope(await client.get(doc["video_url"]), 403, "expired")
    assert_envelope(await client.get(doc["last_frame_url"]), 403, "expired")
    content = await client.get(f"/v1/videos/{video_id}/content", headers=AUTH)
    assert_envelope(content, 404, "expired")
    # the poll still answers, with the (now dead) links
    assert (await poll(client, video_id))["status"] == "completed"


async def test_link_ttl_change_applies_at_once(
    client: httpx.AsyncClient, state: SandboxState, clock: FakeClock
) -> None:
    video_id = await finished(client, clock)
    url = (await poll(client, video_id))["video_url"]
    state.set_config(link_ttl_seconds=0)
    assert_envelope(await client.get(url), 403, "expired")
    assert_envelope(await client.get(f"/v1/videos/{video_id}/content", headers=AUTH), 404)


async def test_expire_links_now(
    client: httpx.AsyncClient, state: SandboxState, clock: FakeClock
) -> None:
    video_id = await finished(client, clock)
    url = (await poll(client, video_id))["video_url"]
    assert state.expire_links() == 1
    assert_envelope(await client.get(url), 403, "expired")
    assert_envelope(await client.get(f"/v1/videos/{video_id}/content", headers=AUTH), 404)
    fresh = await finished(client, clock)
    fresh_url = (await poll(client, fresh))["video_url"]
    assert (await client.get(fresh_url)).status_code == 200


async def test_deleted_job_links_are_gone(client: httpx.AsyncClient, clock: FakeClock) -> None:
    video_id = await finished(client, clock)
    url = (await poll(client, video_id))["video_url"]
    await client.delete(f"/v1/videos/{video_id}", headers=AUTH)
    assert_envelope(await client.get(url), 404, "not found")


async def test_failed_job_has_no_content(
    client: httpx.AsyncClient, state: SandboxState, clock: FakeClock
) -> None:
    video_id = await finished(client, clock)
    state.force_status(video_id, "failed", {"code": "X", "message": "y"})
    response = await client.get(f"/v1/videos/{video_id}/content", headers=AUTH)
    assert_envelope(response, 400, "current status: failed")


async def test_video_size_is_fixed_when_the_job_is_created(
    client: httpx.AsyncClient, state: SandboxState, clock: FakeClock
) -> None:
    video_id = await finished(client, clock)
    state.set_config(video_bytes=300_000)
    response = await client.get(f"/v1/videos/{video_id}/content", headers=AUTH)
    assert len(response.content) == 200_000
    larger = await finished(client, clock)
    response = await client.get(f"/v1/videos/{larger}/content", headers=AUTH)
    assert len(response.content) == 300_000


async def test_video_is_h264_with_the_ratio_and_an_aac_track_when_asked(
    client: httpx.AsyncClient, state: SandboxState, clock: FakeClock
) -> None:
    silent = await finished(client, clock, ratio="9:16", duration=3)
    loud = await finished(client, clock, generate_audio=True, duration=2)
    a = streams_of((await client.get(f"/v1/videos/{silent}/content", headers=AUTH)).content)
    b = streams_of((await client.get(f"/v1/videos/{loud}/content", headers=AUTH)).content)
    assert (a.video_codec, a.pix_fmt, a.width, a.height, a.audio_codec) == (
        "h264",
        "yuv420p",
        90,
        160,
        None,
    )
    assert a.seconds == pytest.approx(3, abs=0.05)
    assert (b.width, b.height, b.audio_codec) == (160, 90, "aac")
    assert b.seconds == pytest.approx(2, abs=0.1)


async def test_a_served_last_frame_as_first_frame_continues_the_video(
    client: httpx.AsyncClient, state: SandboxState, clock: FakeClock
) -> None:
    first = await finished(client, clock, duration=2, return_last_frame=True)
    frame_url = (await poll(client, first))["last_frame_url"]
    png = (await client.get(frame_url)).content
    assert png_counter(png) == 2 * 24 - 1
    image = {"type": "image_url", "image_url": {"url": frame_url}, "role": "first_frame"}
    second = await finished(client, clock, duration=2, content=[image], prompt="elsewhere")
    video = (await client.get(f"/v1/videos/{second}/content", headers=AUTH)).content
    assert decoded_counters(video) == list(range(47, 47 + 48))
    assert state.jobs[second].render.colour == state.jobs[first].render.colour
    foreign = {
        "type": "image_url",
        "image_url": {"url": "https://x.test/a.png"},
        "role": "first_frame",
    }
    fresh = await finished(client, clock, duration=2, content=[foreign])
    assert state.jobs[fresh].render.start_frame == 0


async def test_thumbnail_and_last_frame_variants_of_content(
    client: httpx.AsyncClient, state: SandboxState, clock: FakeClock
) -> None:
    plain = await finished(client, clock, duration=2)
    thumb = await client.get(f"/v1/videos/{plain}/content?variant=thumbnail", headers=AUTH)
    assert thumb.headers["content-type"] == "image/png"
    assert png_counter(thumb.content) == 0
    missing = await client.get(f"/v1/videos/{plain}/content?variant=last_frame", headers=AUTH)
    assert_envelope(missing, 404, "last frame")
    framed = await finished(client, clock, duration=2, return_last_frame=True)
    last = await client.get(f"/v1/videos/{framed}/content?variant=last_frame", headers=AUTH)
    assert last.content == expected_last_frame_bytes(state.jobs[framed])


def test_the_encoder_output_is_deterministic() -> None:
    spec = RenderSpec(width=64, height=36, fps=8, seconds=2, colour=(0xF0, 0x30, 0x70), audio=True)
    first = render_mp4(spec)
    render_mp4.cache_clear()
    assert render_mp4(spec) == first
    assert decoded_counters(first) == list(range(16))
