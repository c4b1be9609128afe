"""Upstream answers and transport failures become GatewayErrors; the key never leaks."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import httpx
import pytest

from gateway.errors import (
    GatewayError,
    InvalidRequest,
    RateLimited,
    UpstreamAuthError,
    UpstreamError,
    UpstreamQuotaError,
    UpstreamTimeout,
)
from gateway.upstream.client import UpstreamClient, UpstreamNotFound
from tests.upstream.fakes import API_KEY, Script, error_body

BODY = {"model": "doubao-seedance-2-0-fast-260128", "prompt": "a fox"}


async def submit_error(client: UpstreamClient, script: Script, answer: object) -> GatewayError:
    script.add(answer)  # type: ignore[arg-type]
    with pytest.raises(GatewayError) as info:
        await client.submit(BODY)
    return info.value


@pytest.mark.parametrize("status", [400, 422])
async def test_validation_errors_keep_the_message_without_tid(
    client: UpstreamClient, script: Script, status: int
) -> None:
    answer = httpx.Response(
        status,
        json=error_body("the parameter resolution 1280x720 is not valid (tid: 2026051212000001)"),
    )
    error = await submit_error(client, script, answer)
    assert type(error) is InvalidRequest
    assert error.message == "the parameter resolution 1280x720 is not valid"
    assert error.code == "upstream_rejected"
    assert error.param is None
    assert error.status == 400


async def test_validation_error_without_message_names_the_status(
    client: UpstreamClient, script: Script
) -> None:
    error = await submit_error(client, script, httpx.Response(400, text=""))
    assert isinstance(error, InvalidRequest)
    assert "400" in error.message


async def test_401_blames_the_gateway_key(client: UpstreamClient, script: Script) -> None:
    answer = httpx.Response(401, json=error_body("Invalid token (tid: 2026)"))
    error = await submit_error(client, script, answer)
    assert type(error) is UpstreamAuthError
    assert error.code == "upstream_auth_error"
    assert "AIHUBMIX_API_KEY" in error.message
    assert "tid" not in error.message


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (403, "Your account balance is insufficient. Please recharge (tid: 1)"),
        (403, "forbidden"),
        (400, "Your account balance is insufficient. Please recharge (tid: 1)"),
        (400, "insufficient_quota"),
        (400, "用户额度不足"),
        (402, "Payment Required"),
        (402, "user quota is not enough"),
        (429, "insufficient balance"),
    ],
)
async def test_quota_errors_ask_the_operator_to_recharge(
    client: UpstreamClient, script: Script, status: int, message: str
) -> None:
    error = await submit_error(client, script, httpx.Response(status, json=error_body(message)))
    assert type(error) is UpstreamQuotaError
    assert error.code == "upstream_quota_error"
    assert "recharge" in error.message


async def test_404_on_poll_is_upstream_not_found(client: UpstreamClient, script: Script) -> None:
    script.add(httpx.Response(404, json=error_body("task not found (tid: 1)")))
    with pytest.raises(UpstreamNotFound) as info:
        await client.poll("cgt-gone")
    assert isinstance(info.value, UpstreamError)
    assert info.value.code == "upstream_job_not_found"
    assert "tid" not in info.value.message


async def test_404_on_submit_is_a_plain_upstream_error(
    client: UpstreamClient, script: Script
) -> None:
    error = await submit_error(client, script, httpx.Response(404, text="404 page not found"))
    assert type(error) is UpstreamError
    assert "404" in error.message


@pytest.mark.parametrize(("headers", "retry_after"), [({"Retry-After": "12"}, 12.0), ({}, 1.0)])
async def test_429_is_rate_limited_with_retry_after(
    client: UpstreamClient, script: Script, headers: dict[str, str], retry_after: float
) -> None:
    answer = httpx.Response(429, headers=headers, json=error_body("too many requests"))
    error = await submit_error(client, script, answer)
    assert type(error) is RateLimited
    assert error.retry_after == retry_after
    assert error.status == 429


async def test_5xx_mentions_the_status_and_message_without_tid(
    client: UpstreamClient, script: Script
) -> None:
    body = {**error_body("no_valid_channel_error (tid: 2026051212345)"), "type": "error"}
    error = await submit_error(client, script, httpx.Response(500, json=body))
    assert type(error) is UpstreamError
    assert error.code == "upstream_error"
    assert error.message == (
        "AIHubMix answered POST /v1/videos with HTTP 500: no_valid_channel_error"
    )


async def test_html_error_pages_are_not_forwarded(client: UpstreamClient, script: Script) -> None:
    page = "<html><body><h1>502 Bad Gateway</h1></body></html>"
    answer = httpx.Response(502, text=page, headers={"content-type": "text/html"})
    error = await submit_error(client, script, answer)
    assert error.message == "AIHubMix answered POST /v1/videos with HTTP 502"


@pytest.mark.parametrize(
    ("failure", "kind", "code"),
    [
        (httpx.ReadTimeout("timed out"), UpstreamTimeout, "upstream_timeout"),
        (httpx.WriteTimeout("timed out"), UpstreamTimeout, "upstream_timeout"),
        (httpx.PoolTimeout("timed out"), UpstreamTimeout, "upstream_timeout"),
        (httpx.RemoteProtocolError("peer closed"), UpstreamError, "upstream_unreachable"),
        (httpx.ReadError("reset by peer"), UpstreamError, "upstream_unreachable"),
        (httpx.DecodingError("bad gzip"), UpstreamError, "upstream_bad_response"),
    ],
)
async def test_transport_failures_are_translated_at_the_boundary(
    client: UpstreamClient,
    script: Script,
    failure: httpx.RequestError,
    kind: type[GatewayError],
    code: str,
) -> None:
    error = await submit_error(client, script, failure)
    assert type(error) is kind
    assert error.code == code
    assert error.__cause__ is failure


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(200, text="not json"),
        httpx.Response(200, json=["a", "list"]),
        httpx.Response(200, json={"status": "queued"}),
        httpx.Response(200, json={"error": {"message": "model not found (tid: 1)"}}),
    ],
)
async def test_submit_needs_a_json_object_with_an_id(
    client: UpstreamClient, script: Script, answer: httpx.Response
) -> None:
    error = await submit_error(client, script, answer)
    assert type(error) is UpstreamError
    assert error.code == "upstream_bad_response"
    assert "tid" not in error.message


async def test_poll_needs_json(client: UpstreamClient, script: Script) -> None:
    script.add(httpx.Response(200, text="<html>maintenance</html>"))
    with pytest.raises(UpstreamError) as info:
        await client.poll("cgt-1")
    assert info.value.code == "upstream_bad_response"


# -- the key stays secret ---------------------------------------------------------------------

LEAKY_ANSWERS: list[Callable[[], object]] = [
    lambda: httpx.Response(401, json=error_body(f"Invalid token {API_KEY} (tid: 1)")),
    lambda: httpx.Response(400, json=error_body(f"bad request for key {API_KEY}")),
    lambda: httpx.Response(422, json=error_body("key sk-someOtherLeakedKey12345 rejected")),
    lambda: httpx.Response(500, json=error_body(f"channel error with Bearer {API_KEY}")),
    lambda: httpx.Response(503, text=f"upstream said {API_KEY}"),
    lambda: httpx.Response(404, json=error_body(f"no such task for {API_KEY}")),
    lambda: httpx.ConnectError(f"cannot connect as {API_KEY}"),
    lambda: httpx.ReadTimeout(f"timeout for {API_KEY}"),
]


@pytest.mark.parametrize("answer", LEAKY_ANSWERS)
@pytest.mark.parametrize("call", ["submit", "poll", "delete"])
async def test_key_never_appears_in_errors_or_logs(
    make_client: Callable[..., UpstreamClient],
    script: Script,
    caplog: pytest.LogCaptureFixture,
    answer: Callable[[], object],
    call: str,
) -> None:
    client = make_client(retries=1)
    calls: dict[str, Callable[[], Awaitable[object]]] = {
        "submit": lambda: client.submit(BODY),
        "poll": lambda: client.poll("cgt-1"),
        "delete": lambda: client.delete("cgt-1"),
    }
    script.add(answer())  # type: ignore[arg-type]
    caplog.set_level(logging.DEBUG, logger="gateway")
    try:
        await calls[call]()
    except GatewayError as error:
        texts = [str(error), repr(error), error.message, str(error.envelope()), repr(client)]
        assert not any(API_KEY in text for text in texts)
        assert not any("sk-someOtherLeakedKey12345" in text for text in texts)
    assert API_KEY not in caplog.text
    assert "sk-someOtherLeakedKey12345" not in caplog.text
