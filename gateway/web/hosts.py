"""Refuse requests whose ``Host`` header is not a valid ``host[:port]``.

Without ``server.public_url`` the gateway builds the links it hands out (``last_frame_url``)
from the request's ``Host``; a header such as ``evil.example/x?`` or one with spaces, quotes or
``@`` must not be reflected into them. Behind a proxy, set ``server.public_url`` anyway: then
the header is never used for links. A small pure-ASGI middleware.
"""

from __future__ import annotations

import re
from typing import Final

from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.errors import InvalidRequest
from gateway.web.rendering import error_response

_LABEL: Final = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
VALID_HOST: Final = re.compile(
    rf"^(?:{_LABEL}(?:\.{_LABEL})*\.?|\[[0-9A-Fa-f:.]{{2,45}}\])(?::[0-9]{{1,5}})?$"
)


def is_valid_host(value: str) -> bool:
    """Whether ``value`` is a DNS name, IPv4 address or bracketed IPv6 address, with an
    optional port (RFC 9110 section 7.2)."""
    return len(value) <= 260 and VALID_HOST.match(value) is not None


class ValidHostMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            hosts = [v for k, v in scope["headers"] if k == b"host"]
            if len(hosts) > 1 or (hosts and not is_valid_host(hosts[0].decode("latin-1"))):
                error = InvalidRequest(
                    "The Host header is not a valid host[:port].", code="bad_host"
                )
                await error_response(error)(scope, receive, send)
                return
        await self.app(scope, receive, send)
