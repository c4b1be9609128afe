"""The outbound policy: where the gateway's own HTTP requests may go, decided in one place.

The upstream names the links the gateway fetches (``video_url``, redirects), so a compromised
or buggy upstream could make the gateway request its own internal network (cloud metadata at
169.254.169.254, an admin port on 127.0.0.1, a database on 10.0.0.5). The policy refuses every
destination whose address is loopback, private, link-local, multicast, reserved or otherwise
not globally routable (IPv4 and IPv6, IPv4-mapped IPv6 unwrapped first), unless
``allow_private`` is set (the sandbox and tests, where everything lives on 127.0.0.1).

Origins the operator configured (``upstream.base_url``) are trusted as they are, whatever they
resolve to: the operator chose them. Everything else is checked:

- before each request, redirect hops included (``GuardedTransport`` wraps any httpx transport
  and resolves the host first: the check every transport gets);
- at connect time (``OutboundPolicy.resolver()``, an aiohttp resolver): the addresses checked
  are exactly the addresses connected to, so a DNS answer that changes between the check and
  the connection (DNS rebinding) cannot slip through. IP literals skip aiohttp's resolver and
  are checked by the transport instead.

API for other outbound callers (webhooks reuse it)::

    policy = OutboundPolicy(allow_private=settings.upstream.allow_private_links)
    await policy.check_url("https://hooks.example.com/x")   # raises OutboundRefused
    transport = GuardedTransport(AiohttpTransport(policy=policy), policy)
    client = httpx.AsyncClient(transport=transport)          # refused: DestinationRefused

Must not import ``services/``, ``store/`` or ``web/``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import httpx
from aiohttp.abc import AbstractResolver, ResolveResult

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_DEFAULT_PORTS = {"http": 80, "https": 443}


class OutboundRefused(OSError):
    """The policy forbids this destination. An ``OSError`` so that aiohttp's connector carries
    it out of its resolver (as ``ClientConnectorError.os_error``)."""

    def __init__(self, host: str, reason: str) -> None:
        super().__init__(f"outbound request to {host} refused: {reason}")
        self.host = host
        self.reason = reason


class DestinationRefused(httpx.ConnectError):
    """``OutboundRefused`` as an httpx transport error: the request never left the gateway.
    Callers must not retry it (the same link stays refused)."""


@dataclass(frozen=True, slots=True)
class Origin:
    """Scheme, host and port: what "the same server" means (RFC 6454)."""

    scheme: str
    host: str
    port: int

    @classmethod
    def of(cls, url: httpx.URL | str) -> Origin:
        url = httpx.URL(url) if isinstance(url, str) else url
        scheme = url.scheme.lower()
        port = url.port if url.port is not None else _DEFAULT_PORTS.get(scheme, 0)
        return cls(scheme, url.host.lower(), port)


def refusal_reason(address: IPAddress) -> str | None:
    """Why ``address`` is not a public destination, or ``None`` when it is."""
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped or address.sixtofour
        if mapped is not None:
            return refusal_reason(mapped)
    checks = (
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("unspecified", address.is_unspecified),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
        ("not globally routable", not address.is_global),
    )
    return next((name for name, hit in checks if hit), None)


def ip_literal(host: str) -> IPAddress | None:
    """The address when ``host`` is an IP literal (``[::1]`` brackets allowed), else ``None``."""
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class OutboundPolicy:
    """Which destinations outbound requests may reach. Immutable; share one per process."""

    allow_private: bool = False
    trusted: frozenset[Origin] = field(default_factory=frozenset)

    def trusts(self, origin: Origin) -> bool:
        return origin in self.trusted

    def _trusts_endpoint(self, host: str, port: int) -> bool:
        host = host.lower()
        return any(o.host == host and o.port == port for o in self.trusted)

    def check_address(self, host: str, address: IPAddress) -> None:
        """Raise ``OutboundRefused`` when ``address`` (which ``host`` names) is forbidden."""
        if self.allow_private:
            return
        reason = refusal_reason(address)
        if reason is not None:
            raise OutboundRefused(host, f"{address} is a {reason} address")

    def check_endpoint(self, host: str, port: int, addresses: list[IPAddress]) -> None:
        """Every address a name resolved to must pass (one bad answer refuses the name)."""
        if self._trusts_endpoint(host, port):
            return
        if not addresses:
            raise OutboundRefused(host, "the name resolves to no address")
        for address in addresses:
            self.check_address(host, address)

    async def check_url(self, url: httpx.URL | str) -> None:
        """Resolve ``url``'s host and raise ``OutboundRefused`` unless every address is allowed.

        A check before the request; use ``resolver()`` as well to close the rebinding window.
        """
        origin = Origin.of(url)
        if origin.scheme not in _DEFAULT_PORTS or not origin.host:
            raise OutboundRefused(origin.host or "?", "only http and https URLs may be fetched")
        if self.allow_private or self.trusts(origin):
            return
        literal = ip_literal(origin.host)
        if literal is not None:
            self.check_address(origin.host, literal)
            return
        addresses = await _resolve(origin.host, origin.port)
        if addresses:  # a name that does not resolve fails on its own when connecting
            self.check_endpoint(origin.host, origin.port, addresses)

    def check_literal(self, url: httpx.URL) -> None:
        """The connect-time check for IP literals, which aiohttp connects to without resolving."""
        origin = Origin.of(url)
        literal = ip_literal(origin.host)
        if literal is not None and not self._trusts_endpoint(origin.host, origin.port):
            self.check_address(origin.host, literal)

    def resolver(self) -> AbstractResolver:
        """An aiohttp resolver that refuses forbidden answers: the connect-time check."""
        return PolicyResolver(self)


class PolicyResolver(AbstractResolver):
    """aiohttp's threaded resolver, with every answer checked against the policy."""

    def __init__(self, policy: OutboundPolicy, inner: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._inner = inner

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        inner = self._inner = self._inner or aiohttp.ThreadedResolver()
        results = await inner.resolve(host, port, family)
        addresses = [ipaddress.ip_address(r["host"].split("%", 1)[0]) for r in results]
        self._policy.check_endpoint(host, port, addresses)
        return results

    async def close(self) -> None:
        if self._inner is not None:
            await self._inner.close()


class GuardedTransport(httpx.AsyncBaseTransport):
    """Any httpx transport, with the policy checked before each request (each redirect hop is a
    request of its own). Refusals raise ``DestinationRefused``."""

    def __init__(self, inner: httpx.AsyncBaseTransport, policy: OutboundPolicy) -> None:
        self._inner = inner
        self._policy = policy

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            await self._policy.check_url(request.url)
        except OutboundRefused as exc:
            raise DestinationRefused(str(exc), request=request) from exc
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


async def _resolve(host: str, port: int) -> list[IPAddress]:
    loop = asyncio.get_running_loop()
    try:
        infos: list[Any] = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return []
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
