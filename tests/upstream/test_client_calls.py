"""UpstreamClient submit/poll/delete on the wire, and which failures are retried."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from gateway.errors import RateLimited, UpstreamError, UpstreamTimeout
from gateway.upstream.client import UpstreamClient
from tests.upstream.fakes import API_KEY, BASE_URL, Script, Sleeps

BODY = {
    "model": "doubao-seedance-2-0-fast-260128",
    "prompt": "Seconds 0-2: a red fox",
    "ratio": "16:9",
    "duration": 8,
    "watermark": False,
    "content": [
        {"type": "image_url", "image_url": {"url": "https://x/a.png"}, "role": "first_frame"}
    ],
}
LONG_ID = "eyJtb2RlbCI6ImRvdWJhbyIsImlkIjoiY2d0LTIwMjYifQ==channel2679"


async def test_submit_sends_json_with_auth_and_returns_the_job(
    client: UpstreamClient, script: Script
) -> None:
    script.add(httpx.Response(200, json={"id": LONG_ID, "status": "queued", "duration": 8}))

    job = await client.submit(BODY, request_id="req_123")

    assert (job.id, job.status, job.raw_status, job.duration) == (LONG_ID, "queued", "queued", 8)
    [request] = script.requests
    assert request.method == "POST"
    assert str(request.url) == f"{BASE_URL}/v1/videos"
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.headers["accept"] == "application/json"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-request-id"] == "req_123"
    assert json.loads(request.content) == BODY


async def test_submit_without_request_id_sends_no_request_id_header(
    client: UpstreamClient, script: Script
) -> None:
    script.add(httpx.Response(200, json={"id": "cgt-1"}))
    await client.submit(BODY)
    assert "x-request-id" not in script.requests[0].headers


async def test_empty_key_sends_no_authorization(
    make_client: Callable[..., UpstreamClient], script: Script
) -> None:
    script.add(httpx.Response(200, json={"id": "cgt-1"}))
    await make_client(api_key="").submit(BODY)
    assert "authorization" not in script.requests[0].headers


async def test_poll_parses_the_job_and_escapes_the_id(
    client: UpstreamClient, script: Script
) -> None:
    script.add(
        httpx.Response(
            200,
            json={
                "id": "inner-id",
                "status": "succeeded",
                "content": {"video_url": "https://cdn.example.com/v.mp4?sig=1"},
            },
        )
    )
    job = await client.poll("a/b+c=", request_id="req_9")

    assert job.id == "a/b+c="  # the id that was polled, whatever the body says
    assert job.status == "completed"
    assert job.video_url == "https://cdn.example.com/v.mp4?sig=1"
    [request] = script.requests
    assert request.method == "GET"
    assert request.url.raw_path == b"/v1/videos/a%2Fb+c="
    assert request.headers["x-request-id"] == "req_9"
    assert request.headers["authorization"] == f"Bearer {API_KEY}"


async def test_poll_of_long_opaque_id(client: UpstreamClient, script: Script) -> None:
    script.add(httpx.Response(200, json={"status": "running", "progress": 30}))
    job = await client.poll(LONG_ID)
    assert (job.id, job.status, job.progress) == (LONG_ID, "in_progress", 30)
    assert script.requests[0].url.path == f"/v1/videos/{LONG_ID}"


@pytest.mark.parametrize("status", [200, 204, 404, 410])
async def test_delete_accepts_success_and_gone(
    client: UpstreamClient, script: Script, status: int
) -> None:
    script.add(httpx.Response(status))
    await client.delete("cgt-1")
    assert script.requests[0].method == "DELETE"
    assert script.requests[0].url.path == "/v1/videos/cgt-1"


async def test_delete_retries_then_reports(
    client: UpstreamClient, script: Script, sleeps: Sleeps
) -> None:
    script.add(*(httpx.Response(503) for _ in range(3)))
    with pytest.raises(UpstreamError, match="503"):
        await client.delete("cgt-1")
    assert len(script.requests) == 3
    assert len(sleeps) == 2


async def test_empty_id_is_a_programming_error(client: UpstreamClient) -> None:
    with pytest.raises(ValueError, match="upstream_id"):
        await client.poll("")


def test_repr_hides_the_key(client: UpstreamClient) -> None:
    text = repr(client)
    assert API_KEY not in text
    assert "aihubmix.test" in text


# -- retries ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ReadTimeout("read timed out"),
        httpx.WriteTimeout("write timed out"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
        httpx.ReadError("connection reset"),
        httpx.Response(500, json={"error": {"message": "boom"}}),
        httpx.Response(502),
        httpx.Response(503, headers={"Retry-After": "1"}),
        httpx.Response(504),
        httpx.Response(429, headers={"Retry-After": "1"}),
    ],
    ids=lambda f: type(f).__name__ if isinstance(f, Exception) else f"HTTP{f.status_code}",
)
async def test_submit_is_never_retried_once_it_may_have_reached_upstream(
    client: UpstreamClient, script: Script, sleeps: Sleeps, failure: Exception | httpx.Response
) -> None:
    script.add(failure, httpx.Response(200, json={"id": "second-job"}))
    with pytest.raises((UpstreamError, RateLimited)):
        await client.submit(BODY)
    assert len(script.requests) == 1
    assert sleeps == []


async def test_submit_read_timeout_says_the_job_may_exist(
    client: UpstreamClient, script: Script
) -> None:
    script.add(httpx.ReadTimeout("read timed out"))
    with pytest.raises(UpstreamTimeout, match="may or may not have been created") as info:
        await client.submit(BODY)
    assert isinstance(info.value.__cause__, httpx.ReadTimeout)


@pytest.mark.parametrize(
    "failure", [httpx.ConnectError("refused"), httpx.ConnectTimeout("connect timed out")]
)
async def test_submit_is_retried_when_the_connection_failed(
    client: UpstreamClient, script: Script, sleeps: Sleeps, failure: Exception
) -> None:
    script.add(failure, httpx.Response(200, json={"id": "cgt-1", "status": "queued"}))
    job = await client.submit(BODY)
    assert job.id == "cgt-1"
    assert len(script.requests) == 2
    assert json.loads(script.requests[1].content) == BODY
    assert len(sleeps) == 1


async def test_submit_gives_up_after_the_attempt_budget(
    make_client: Callable[..., UpstreamClient], script: Script, sleeps: Sleeps
) -> None:
    script.add(*(httpx.ConnectError("refused") for _ in range(4)))
    with pytest.raises(UpstreamError) as info:
        await make_client(retries=4).submit(BODY)
    assert info.value.code == "upstream_unreachable"
    assert len(script.requests) == 4
    assert len(sleeps) == 3


async def test_poll_retries_with_capped_exponential_backoff(
    make_client: Callable[..., UpstreamClient], script: Script, sleeps: Sleeps
) -> None:
    script.add(
        httpx.Response(503),
        httpx.ReadTimeout("slow"),
        httpx.ConnectError("refused"),
        httpx.Response(502),
        httpx.Response(504),
        httpx.Response(200, json={"status": "running"}),
    )
    client = make_client(retries=6, backoff_base=1.0, backoff_max=4.0)

    job = await client.poll("cgt-1")

    assert job.status == "in_progress"
    assert len(script.requests) == 6
    assert len(sleeps) == 5
    for attempt, (delay, ceiling) in enumerate(zip(sleeps, [1.0, 2.0, 4.0, 4.0, 4.0], strict=True)):
        assert 0.0 <= delay <= ceiling, (attempt, delay)


async def test_poll_gives_up_after_retries_attempts(
    client: UpstreamClient, script: Script, sleeps: Sleeps
) -> None:
    script.add(*(httpx.Response(502) for _ in range(3)))
    with pytest.raises(UpstreamError, match="502") as info:
        await client.poll("cgt-1")
    assert info.value.code == "upstream_error"
    assert len(script.requests) == 3
    assert len(sleeps) == 2


async def test_poll_read_timeouts_exhausted_become_upstream_timeout(
    client: UpstreamClient, script: Script
) -> None:
    script.add(*(httpx.ReadTimeout("slow") for _ in range(3)))
    with pytest.raises(UpstreamTimeout):
        await client.poll("cgt-1")


@pytest.mark.parametrize("status", [400, 401, 403, 404, 500])
async def test_poll_does_not_retry_final_answers(
    client: UpstreamClient, script: Script, sleeps: Sleeps, status: int
) -> None:
    script.add(httpx.Response(status, json={"error": {"message": "no"}}))
    with pytest.raises(Exception):  # noqa: B017 - the mapping is tested elsewhere
        await client.poll("cgt-1")
    assert len(script.requests) == 1
    assert sleeps == []


async def test_retries_one_means_a_single_attempt(
    make_client: Callable[..., UpstreamClient], script: Script
) -> None:
    script.add(httpx.Response(503))
    with pytest.raises(UpstreamError):
        await make_client(retries=1).poll("cgt-1")
    assert len(script.requests) == 1


@pytest.mark.parametrize(
    ("status", "retry_after", "waited"),
    [(429, "7", 7.0), (503, "2", 2.0), (429, "600", 60.0), (429, "0", 0.0)],
)
async def test_poll_honours_retry_after_up_to_a_minute(
    client: UpstreamClient,
    script: Script,
    sleeps: Sleeps,
    status: int,
    retry_after: str,
    waited: float,
) -> None:
    script.add(
        httpx.Response(status, headers={"Retry-After": retry_after}),
        httpx.Response(200, json={"status": "queued"}),
    )
    await client.poll("cgt-1")
    assert sleeps == [waited]


async def test_poll_honours_retry_after_as_http_date(
    client: UpstreamClient, script: Script, sleeps: Sleeps
) -> None:
    asked = datetime.now(UTC)
    when = asked + timedelta(seconds=30)
    script.add(
        httpx.Response(429, headers={"Retry-After": format_datetime(when, usegmt=True)}),
        httpx.Response(200, json={"status": "queued"}),
    )
    await client.poll("cgt-1")
    [waited] = sleeps
    elapsed = (datetime.now(UTC) - asked).total_seconds()  # however slow this machine is
    assert 30.0 - 1.0 - elapsed <= waited <= 30.0  # the date has whole seconds


async def test_retry_after_is_ignored_on_502(
    make_client: Callable[..., UpstreamClient], script: Script, sleeps: Sleeps
) -> None:
    script.add(
        httpx.Response(502, headers={"Retry-After": "30"}),
        httpx.Response(200, json={"status": "queued"}),
    )
    await make_client(backoff_base=0.1, backoff_max=0.1).poll("cgt-1")
    assert 0.0 <= sleeps[0] <= 0.1


async def test_rate_limit_exhausted_reports_retry_after(
    client: UpstreamClient, script: Script, sleeps: Sleeps
) -> None:
    script.add(*(httpx.Response(429, headers={"Retry-After": "5"}) for _ in range(3)))
    with pytest.raises(RateLimited) as info:
        await client.poll("cgt-1")
    assert info.value.retry_after == 5.0
    assert sleeps == [5.0, 5.0]
