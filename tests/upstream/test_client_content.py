"""open_content: streaming the video or last frame, where the key may go, and error mapping."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from gateway.errors import InvalidRequest, RateLimited, UpstreamError, UpstreamTimeout
from gateway.upstream.client import UpstreamClient, UpstreamNotFound
from gateway.upstream.port import Download
from tests.upstream.fakes import API_KEY, Script, Sleeps, error_body

MP4 = b"\x00\x00\x00\x18ftypmp42" + b"x" * 5000
CDN_URL = "https://tos-cn-beijing.volces.com/out/v.mp4?X-Tos-Signature=abc&X-Tos-Expires=86400"


async def read_all(client: UpstreamClient, upstream_id: str, **options: str) -> bytes:
    async with client.open_content(upstream_id, **options) as download:
        return b"".join([chunk async for chunk in download.chunks])


async def test_content_endpoint_streams_with_the_key(
    client: UpstreamClient, script: Script
) -> None:
    script.add(httpx.Response(200, content=MP4, headers={"content-type": "video/mp4"}))

    assert await read_all(client, "cgt-1", request_id="req_1") == MP4

    [request] = script.requests
    assert request.method == "GET"
    assert request.url.path == "/v1/videos/cgt-1/content"
    assert request.url.query == b""
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.headers["x-request-id"] == "req_1"


async def test_content_endpoint_passes_other_variants(
    client: UpstreamClient, script: Script
) -> None:
    script.add(httpx.Response(200, content=b"PNG"))
    assert await read_all(client, "cgt-1", variant="last_frame") == b"PNG"
    assert script.requests[0].url.params["variant"] == "last_frame"


async def test_signed_cdn_link_gets_no_key(client: UpstreamClient, script: Script) -> None:
    script.add(httpx.Response(200, content=MP4))

    assert await read_all(client, "cgt-1", url=CDN_URL, request_id="req_1") == MP4

    [request] = script.requests
    assert str(request.url) == CDN_URL  # the signed query string is untouched
    assert "authorization" not in request.headers
    assert "x-request-id" not in request.headers


@pytest.mark.parametrize(
    ("url", "trusted", "gets_key"),
    [
        ("https://aihubmix.test/v1/videos/cgt-1/content", None, True),
        ("https://AIHUBMIX.test:443/files/v.mp4", None, True),
        ("https://files.aihubmix.test/v.mp4", None, False),
        ("https://files.aihubmix.test/v.mp4", frozenset({"files.aihubmix.test"}), True),
        ("https://aihubmix.test.evil.example/v.mp4", None, False),
        ("http://aihubmix.test/v1/videos/cgt-1/content", None, False),  # no downgrade
        ("https://cdn.example.com/v.mp4", frozenset({"files.aihubmix.test"}), False),
    ],
)
async def test_key_goes_only_to_the_api_host_or_trusted_hosts(
    make_client: Callable[..., UpstreamClient],
    script: Script,
    url: str,
    trusted: frozenset[str] | None,
    gets_key: bool,
) -> None:
    script.add(httpx.Response(200, content=MP4))
    await read_all(make_client(trusted_hosts=trusted), "cgt-1", url=url)
    assert ("authorization" in script.requests[0].headers) is gets_key


async def test_redirect_to_a_cdn_drops_the_key(client: UpstreamClient, script: Script) -> None:
    script.add(
        httpx.Response(302, headers={"Location": CDN_URL}),
        httpx.Response(200, content=MP4),
    )
    assert await read_all(client, "cgt-1") == MP4
    first, second = script.requests
    assert first.headers["authorization"] == f"Bearer {API_KEY}"
    assert str(second.url) == CDN_URL
    assert "authorization" not in second.headers


@pytest.mark.parametrize("url", ["ftp://cdn.example.com/v.mp4", "/relative/v.mp4", "s3://b/k"])
async def test_non_http_links_are_refused_without_a_request(
    client: UpstreamClient, script: Script, url: str
) -> None:
    with pytest.raises(UpstreamError) as info:
        await read_all(client, "cgt-1", url=url)
    assert info.value.code == "upstream_bad_response"
    assert script.requests == []


async def test_unknown_job_on_the_content_endpoint(client: UpstreamClient, script: Script) -> None:
    script.add(httpx.Response(404, json=error_body("task not found (tid: 1)")))
    with pytest.raises(UpstreamNotFound) as info:
        await read_all(client, "cgt-1")
    assert info.value.code == "upstream_job_not_found"


@pytest.mark.parametrize("status", [401, 403, 404, 410])
async def test_refused_signed_link_means_it_expired(
    client: UpstreamClient, script: Script, status: int
) -> None:
    script.add(httpx.Response(status, text="<Error><Code>AccessDenied</Code></Error>"))
    with pytest.raises(UpstreamNotFound) as info:
        await read_all(client, "cgt-1", url=CDN_URL)
    assert info.value.code == "upstream_content_expired"
    assert "X-Tos-Signature" not in info.value.message


async def test_not_finished_yet_is_rejected(client: UpstreamClient, script: Script) -> None:
    answer = httpx.Response(400, json=error_body("Task is not completed yet (tid: 9)"))
    script.add(answer)
    with pytest.raises(InvalidRequest) as info:
        await read_all(client, "cgt-1")
    assert info.value.message == "Task is not completed yet"
    assert info.value.code == "upstream_rejected"


async def test_content_retries_then_streams(
    client: UpstreamClient, script: Script, sleeps: Sleeps
) -> None:
    script.add(
        httpx.Response(503, headers={"Retry-After": "3"}),
        httpx.ReadTimeout("slow"),
        httpx.Response(200, content=MP4),
    )
    assert await read_all(client, "cgt-1", url=CDN_URL) == MP4
    assert len(script.requests) == 3
    assert sleeps[0] == 3.0
    assert len(sleeps) == 2


async def test_content_rate_limit_exhausted(client: UpstreamClient, script: Script) -> None:
    script.add(*(httpx.Response(429, headers={"Retry-After": "2"}) for _ in range(3)))
    with pytest.raises(RateLimited) as info:
        await read_all(client, "cgt-1")
    assert info.value.retry_after == 2.0


async def test_huge_error_bodies_are_read_only_in_part(
    client: UpstreamClient, script: Script
) -> None:
    script.add(httpx.Response(500, content=b"e" * 1_000_000))
    with pytest.raises(UpstreamError) as info:
        await read_all(client, "cgt-1")
    assert "HTTP 500" in info.value.message
    assert len(info.value.message) < 1000


class BrokenStream(httpx.AsyncByteStream):
    """Sends one chunk, then the connection stalls."""

    def __init__(self) -> None:
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b"first chunk"
        raise httpx.ReadTimeout("stalled mid-stream")

    async def aclose(self) -> None:
        self.closed = True


async def test_failure_mid_stream_is_translated(client: UpstreamClient, script: Script) -> None:
    stream = BrokenStream()
    script.add(httpx.Response(200, stream=stream))
    received: list[bytes] = []
    with pytest.raises(UpstreamTimeout) as info:
        async with client.open_content("cgt-1") as download:
            async for chunk in download.chunks:
                received.append(chunk)
    assert received == [b"first chunk"]
    assert isinstance(info.value.__cause__, httpx.ReadTimeout)
    assert stream.closed


async def test_callers_own_errors_pass_through_untouched(
    client: UpstreamClient, script: Script
) -> None:
    stream = BrokenStream()
    script.add(httpx.Response(200, stream=stream))
    own = httpx.ConnectError("the blob store is down")
    with pytest.raises(httpx.ConnectError) as info:
        async with client.open_content("cgt-1"):
            raise own
    assert info.value is own
    assert stream.closed


async def test_response_is_closed_after_the_block(client: UpstreamClient, script: Script) -> None:
    stream = BrokenStream()
    script.add(httpx.Response(200, stream=stream))
    async with client.open_content("cgt-1"):
        assert not stream.closed
    assert stream.closed


async def test_download_speaks_the_gateways_types(client: UpstreamClient, script: Script) -> None:
    script.add(httpx.Response(200, content=MP4, headers={"content-type": "Video/MP4; codecs=avc1"}))
    async with client.open_content("cgt-1") as download:
        assert isinstance(download, Download)
        assert (download.content_type, download.length) == ("video/mp4", len(MP4))
        assert b"".join([chunk async for chunk in download.chunks]) == MP4
