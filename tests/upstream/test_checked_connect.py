"""The outbound policy as webhooks use it: internal addresses refused when a URL is accepted
(``OutboundPolicy.check_url``) and again at connect time (``checked_transport``: a name can
resolve differently later); the operator can allow private ones. Written against the API that
#14's full ``outbound.py`` also offers, so it holds after the two are merged."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

import httpx
import pytest

from gateway.upstream import checked_connect, outbound
from gateway.upstream.checked_connect import checked_transport
from gateway.upstream.outbound import OutboundPolicy, OutboundRefused, refusal_reason
from tests.servers import ServerThread

STRICT = OutboundPolicy(allow_private=False)
LENIENT = OutboundPolicy(allow_private=True)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.0.0.1",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "::1",
        "fe80::1",
        "fc00::1",
        "::ffff:127.0.0.1",
        "ff02::1",
    ],
)
def test_internal_addresses_are_refused(address: str) -> None:
    assert refusal_reason(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_are_not(address: str) -> None:
    assert refusal_reason(ipaddress.ip_address(address)) is None


async def test_check_url_refuses_internal_hosts_unless_allowed() -> None:
    for url in (
        "http://127.0.0.1/",
        "http://localhost:8080/x",
        "https://[::1]/",
        "http://10.9.8.7/",
    ):
        with pytest.raises(OutboundRefused):
            await STRICT.check_url(url)
        await LENIENT.check_url(url)
    with pytest.raises(OutboundRefused):
        await LENIENT.check_url("file:///etc/passwd")


async def _ok(scope, receive, send):  # type: ignore[no-untyped-def]
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


@pytest.fixture
def local_server() -> Iterator[ServerThread]:
    server = ServerThread(_ok, lifespan="off").start()
    yield server
    server.stop()


async def test_requests_to_internal_hosts_are_refused(local_server: ServerThread) -> None:
    async with httpx.AsyncClient(transport=checked_transport(STRICT, max_connections=4)) as client:
        for url in (local_server.url, f"http://localhost:{local_server.port}/"):
            with pytest.raises(httpx.ConnectError, match="outbound request to"):
                await client.get(url)
    async with httpx.AsyncClient(transport=checked_transport(LENIENT, max_connections=4)) as client:
        assert (await client.get(local_server.url)).status_code == 204


async def test_a_name_that_resolves_inward_at_connect_time_is_refused(
    local_server: ServerThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: the check before the request saw a public address, the connection would
    go to 127.0.0.1. The connect-time check uses the very answer it connects to."""
    answers = iter([[ipaddress.ip_address("93.184.216.34")], [ipaddress.ip_address("127.0.0.1")]])

    async def pre_check_resolve(host: str, port: int) -> list[object]:
        return next(answers)

    async def connect_resolve(host: str, port: int) -> list[object]:
        return next(answers)

    monkeypatch.setattr(outbound, "_resolve", pre_check_resolve)
    monkeypatch.setattr(checked_connect, "_resolve", connect_resolve)
    transport = checked_transport(STRICT, max_connections=4)
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(httpx.ConnectError, match=r"outbound request to rebind\.example"):
            await client.get(f"http://rebind.example:{local_server.port}/")


def test_refusals_are_connect_errors_the_sender_recognises() -> None:
    assert issubclass(OutboundRefused, OSError)
    assert str(OutboundRefused("h", "why")).startswith(checked_connect.REFUSED_MARK)
