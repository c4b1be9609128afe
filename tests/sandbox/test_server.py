"""A real uvicorn SandboxServer on 127.0.0.1: streaming large bodies and dropped connections."""

from __future__ import annotations

import hashlib
import socket
from collections.abc import AsyncIterator
from itertools import islice

import httpx
import pytest

from gateway.sandbox import (
    FaultRule,
    SandboxConfig,
    SandboxServer,
    create_sandbox_app,
    expected_video_bytes,
    render_mp4,
    serve_sandbox,
)
from gateway.sandbox.__main__ import parse_args
from gateway.sandbox.media import iter_video_chunks
from gateway.sandbox.server import SandboxStartError
from tests.sandbox.support import AUTH, FakeClock, body

BIG = 20 * 1024 * 1024 + 123


@pytest.fixture
async def server(clock: FakeClock) -> AsyncIterator[SandboxServer]:
    app = create_sandbox_app(SandboxConfig(video_bytes=BIG), clock=clock)
    async with SandboxServer(app=app) as running:
        yield running


@pytest.fixture
async def http(server: SandboxServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as c:
        yield c


async def finished_id(http: httpx.AsyncClient, clock: FakeClock) -> str:
    response = await http.post("/v1/videos", json=body(return_last_frame=True), headers=AUTH)
    assert response.status_code == 200
    clock.advance(5)
    video_id: str = response.json()["id"]
    return video_id


def test_server_binds_an_ephemeral_port(server: SandboxServer) -> None:
    assert server.port > 0
    assert server.base_url == f"http://127.0.0.1:{server.port}"


async def test_large_video_streams_in_chunks(
    server: SandboxServer, http: httpx.AsyncClient, clock: FakeClock
) -> None:
    video_id = await finished_id(http, clock)
    digest = hashlib.sha256()
    received = 0
    async with http.stream("GET", f"/v1/videos/{video_id}/content", headers=AUTH) as response:
        assert response.status_code == 200
        assert response.headers["content-length"] == str(BIG)
        assert "transfer-encoding" not in response.headers
        async for chunk in response.aiter_raw():
            digest.update(chunk)
            received += len(chunk)
    assert received == BIG
    expected = hashlib.sha256()
    job = server.state.jobs[video_id]
    for chunk in iter_video_chunks(render_mp4(job.render), job.content_seed, BIG):
        expected.update(chunk)
    assert digest.digest() == expected.digest()


async def test_truncated_content_drops_the_connection(
    server: SandboxServer, http: httpx.AsyncClient, clock: FakeClock
) -> None:
    video_id = await finished_id(http, clock)
    server.state.add_fault(FaultRule(op="content", kind="truncate", truncate_at=100_000))
    received = bytearray()
    with pytest.raises(httpx.RemoteProtocolError):
        async with http.stream("GET", f"/v1/videos/{video_id}/content", headers=AUTH) as r:
            assert r.headers["content-length"] == str(BIG)
            async for chunk in r.aiter_raw():
                received += chunk
    assert len(received) == 100_000
    job = server.state.jobs[video_id]
    head = islice(iter_video_chunks(render_mp4(job.render), job.content_seed, BIG), 8)
    assert bytes(received) == b"".join(head)[:100_000]
    again = await http.get(f"/v1/videos/{video_id}/content", headers=AUTH)
    assert len(again.content) == BIG
    assert server.state.counters["content"] == 2


@pytest.mark.parametrize("ext", ["video_url", "last_frame_url"])
async def test_truncated_file_link(
    server: SandboxServer, http: httpx.AsyncClient, clock: FakeClock, ext: str
) -> None:
    video_id = await finished_id(http, clock)
    url = (await http.get(f"/v1/videos/{video_id}", headers=AUTH)).json()[ext]
    server.state.add_fault(FaultRule(op="file", kind="truncate", truncate_at=10))
    with pytest.raises(httpx.RemoteProtocolError):
        await http.get(url)
    assert (await http.get(url)).status_code == 200


async def test_serve_sandbox_and_control_over_http() -> None:
    server = await serve_sandbox(SandboxConfig(video_bytes=4096, queue_seconds=0, run_seconds=0))
    try:
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            created = await http.post("/v1/videos", json=body(), headers=AUTH)
            video_id = created.json()["id"]
            doc = (await http.get(f"/v1/videos/{video_id}", headers=AUTH)).json()
            assert doc["video_url"].startswith(f"{server.base_url}/files/")
            content = await http.get(doc["video_url"])
            assert content.content == expected_video_bytes(server.state.jobs[video_id])
            stats = (await http.get("/_sandbox/stats")).json()
            assert (stats["create"], stats["poll"], stats["file"]) == (1, 1, 1)
    finally:
        await server.stop()
    await server.stop()  # idempotent


async def test_busy_port_raises_a_start_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = SandboxServer(port=taken.getsockname()[1])
        with pytest.raises(SandboxStartError):
            await server.start()


def test_command_line_maps_onto_the_config() -> None:
    config, host, port = parse_args(
        ["--port", "9000", "--poll-shape", "ark", "--run-seconds", "0.5", "--api-key", "sk-x"]
    )
    assert (host, port) == ("127.0.0.1", 9000)
    assert config == SandboxConfig(poll_shape="ark", run_seconds=0.5, api_key="sk-x")
