"""An httpx transport whose every TCP connection is checked by the outbound policy at connect
time: the host is resolved here, the addresses pass ``OutboundPolicy.check_endpoint``, and the
connection goes to a checked address, so nothing can swap the address in between (DNS
rebinding). TLS still verifies the original host name (httpcore takes it from the request).

Used for webhook deliveries (httpx's own pool: a receiver is any host, connections are short);
upstream calls get the same guarantee from the policy's aiohttp resolver (#14).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

from gateway.upstream.outbound import (
    GuardedTransport,
    IPAddress,
    OutboundPolicy,
    OutboundRefused,
)

REFUSED_MARK = "outbound request to"  # how OutboundRefused's message begins


class PolicyBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, policy: OutboundPolicy) -> None:
        self._policy = policy
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await _resolve(host, port)
        try:
            self._policy.check_endpoint(host, port, addresses)
        except OutboundRefused as exc:
            raise httpcore.ConnectError(str(exc)) from None
        return await self._inner.connect_tcp(
            str(addresses[0]), port, timeout, local_address, socket_options
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("outbound request to a unix socket refused")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def checked_transport(policy: OutboundPolicy, *, max_connections: int) -> httpx.AsyncBaseTransport:
    """Checked before each request (``GuardedTransport``) and again at connect time."""
    inner = httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=max_connections))
    # httpx has no public hook for the network backend: its pool is rebuilt with ours.
    inner._pool = httpcore.AsyncConnectionPool(
        ssl_context=httpx.create_ssl_context(),
        max_connections=max_connections,
        max_keepalive_connections=max_connections,
        keepalive_expiry=5.0,
        network_backend=PolicyBackend(policy),
    )
    return GuardedTransport(inner, policy)


async def _resolve(host: str, port: int) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host.strip("[]").split("%", 1)[0])]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise httpcore.ConnectError(f"cannot resolve {host}") from exc
    return list(dict.fromkeys(ipaddress.ip_address(str(i[4][0]).split("%", 1)[0]) for i in infos))
