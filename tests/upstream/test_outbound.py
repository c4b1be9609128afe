"""The outbound policy: which addresses are refused, trusted origins, checks before each hop and
at connect time (a DNS answer that changes after the check cannot slip through)."""

from __future__ import annotations

import ipaddress
import socket

import aiohttp
import httpx
import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from gateway.upstream.outbound import (
    DestinationRefused,
    GuardedTransport,
    Origin,
    OutboundPolicy,
    OutboundRefused,
    PolicyResolver,
    refusal_reason,
)
from gateway.upstream.transport import AiohttpTransport, translate
from tests.servers import ServerThread


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),  # cloud metadata
        ("100.64.0.1", "not globally routable"),  # carrier-grade NAT
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("::1", "loopback"),
        ("fe80::1", "link-local"),
        ("fc00::1", "private"),
        ("ff02::1", "multicast"),
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
        ("2002:7f00:1::", "loopback"),  # 6to4 around 127.0.0.1
        ("8.8.8.8", None),
        ("2606:4700:4700::1111", None),
    ],
)
def test_refusal_reasons(address: str, reason: str | None) -> None:
    assert refusal_reason(ipaddress.ip_address(address)) == reason


def test_origins_compare_scheme_host_and_port() -> None:
    assert Origin.of("https://API.example/v1") == Origin("https", "api.example", 443)
    assert Origin.of("https://api.example:443/x") == Origin.of("https://api.example")
    assert Origin.of("https://api.example:8443") != Origin.of("https://api.example")
    assert Origin.of("http://api.example") != Origin.of("https://api.example")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/x",
        "http://[::1]/x",
        "http://169.254.169.254/latest/meta-data/",
        "http://localhost:9/x",
        "ftp://example.com/x",
    ],
)
async def test_check_url_refuses_internal_destinations(url: str) -> None:
    with pytest.raises(OutboundRefused):
        await OutboundPolicy().check_url(url)


async def test_allow_private_and_trusted_origins() -> None:
    await OutboundPolicy(allow_private=True).check_url("http://127.0.0.1:1/x")
    trusted = OutboundPolicy(trusted=frozenset({Origin.of("http://127.0.0.1:8000")}))
    await trusted.check_url("http://127.0.0.1:8000/v1/videos")
    with pytest.raises(OutboundRefused):  # the same host on another port is not trusted
        await trusted.check_url("http://127.0.0.1:8001/")


async def test_guarded_transport_checks_every_redirect_hop() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(302, headers={"Location": "http://10.0.0.5/admin"})

    policy = OutboundPolicy(trusted=frozenset({Origin.of("https://api.example")}))
    transport = GuardedTransport(httpx.MockTransport(handler), policy)
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(DestinationRefused):
            await client.get("https://api.example/v1/videos/1/content", follow_redirects=True)
    assert seen == ["https://api.example/v1/videos/1/content"]


class Rebinding(AbstractResolver):
    """A DNS server that answered a public address to the first check, and now says 127.0.0.1."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            {
                "hostname": host,
                "host": "127.0.0.1",
                "port": port,
                "family": socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
        ]

    async def close(self) -> None:
        return None


async def test_connect_time_check_stops_dns_rebinding() -> None:
    server = ServerThread(httpx_app_never_reached(), lifespan="off").start()
    try:
        resolver = PolicyResolver(OutboundPolicy(), inner=Rebinding())
        connector = aiohttp.TCPConnector(resolver=resolver)
        async with aiohttp.ClientSession(connector=connector) as session:
            with pytest.raises(aiohttp.ClientConnectorError) as info:
                await session.get(f"http://rebound.example:{server.port}/")
        request = httpx.Request("GET", f"http://rebound.example:{server.port}/")
        assert isinstance(translate(info.value, request), DestinationRefused)
        assert HITS == []
    finally:
        server.stop()


async def test_aiohttp_transport_refuses_ip_literals_itself() -> None:
    transport = AiohttpTransport(policy=OutboundPolicy())
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(DestinationRefused):
            await client.get("http://127.0.0.1:9/")
        with pytest.raises(DestinationRefused):
            await client.get("http://[::ffff:169.254.169.254]/")


HITS: list[str] = []


def httpx_app_never_reached() -> object:
    async def app(scope: dict[str, object], receive: object, send: object) -> None:
        HITS.append(str(scope.get("path")))
        raise AssertionError("the policy let a rebound name through")

    return app
