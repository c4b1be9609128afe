"""An httpx transport over aiohttp: the upstream client keeps httpx's API (requests, responses,
redirects, the exception tree) while the wire is aiohttp's connection pool and HTTP/1.1 parser.

Why: under concurrency httpx's own pool (httpcore) spends most of a call looking for a free
connection, probing every idle socket with a syscall each time; aiohttp's pool and C parser
cost a fraction of that (bench/README.md has the numbers). Only the transport changes: httpx
still builds the requests, follows redirects, decodes ``Content-Encoding`` (aiohttp passes bodies
through undecoded) and owns cookies (aiohttp keeps none). aiohttp's failures are translated
into the httpx exceptions httpcore raises for the same failure, so the retry policy (a POST is
repeated only when it certainly never left) is unchanged.
"""

from __future__ import annotations

import io
import ssl
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import httpx
from yarl import URL

from gateway.upstream.outbound import DestinationRefused, OutboundPolicy, OutboundRefused

# aiohttp's TOO_LARGE_BYTES_BODY: bigger bodies (data: media) are sent from a file object.
_RAW_BODY_LIMIT = 1024 * 1024
# What httpx's own pool does: idle connections are dropped after 5 s.
KEEPALIVE_EXPIRY = 5.0


class AiohttpTransport(httpx.AsyncBaseTransport):
    """One ``aiohttp.ClientSession`` (opened on first use, in the running loop) for every
    request of one ``httpx.AsyncClient``; ``aclose`` closes it."""

    def __init__(
        self,
        *,
        max_connections: int = 100,
        keepalive_expiry: float = KEEPALIVE_EXPIRY,
        ssl_context: ssl.SSLContext | None = None,
        policy: OutboundPolicy | None = None,
    ) -> None:
        # With a policy, every address connected to is checked (outbound.py): connect time.
        self._policy = policy
        self._max_connections = max_connections
        self._keepalive_expiry = keepalive_expiry
        # The same trust store httpx uses by default (certifi, or SSL_CERT_FILE/SSL_CERT_DIR).
        self._ssl = ssl_context if ssl_context is not None else httpx.create_ssl_context()
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[tuple[Any, ...], aiohttp.ClientTimeout] = {}

    def _open(self) -> aiohttp.ClientSession:
        session = self._session
        if session is None or session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections,
                limit_per_host=0,
                keepalive_timeout=self._keepalive_expiry,
                ssl=self._ssl,
                resolver=self._policy.resolver() if self._policy is not None else None,
            )
            session = self._session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,  # httpx decodes, as it does with its own transport
                skip_auto_headers=("Content-Type",),  # httpx's headers are sent as they are
                timeout=aiohttp.ClientTimeout(total=None),
            )
        return session

    def _timeout(self, extensions: Mapping[str, Any]) -> aiohttp.ClientTimeout:
        """httpx's per-request timeouts: ``pool`` bounds waiting for a connection (and making
        it), ``connect`` the TCP connect, ``read`` each wait for data."""
        timeout = extensions.get("timeout") or {}
        key = (timeout.get("pool"), timeout.get("connect"), timeout.get("read"))
        found = self._timeouts.get(key)
        if found is None:
            found = aiohttp.ClientTimeout(
                total=None, connect=key[0], sock_connect=key[1], sock_read=key[2]
            )
            if len(self._timeouts) < 64:
                self._timeouts[key] = found
        return found

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._policy is not None:
            try:
                self._policy.check_literal(request.url)  # IP literals bypass the resolver
            except OutboundRefused as exc:
                raise DestinationRefused(str(exc), request=request) from exc
        session = self._open()
        body = await request.aread()
        try:
            response = await session.request(
                request.method,
                URL(str(request.url), encoded=True),  # as httpx encoded it: never re-quoted
                headers=[
                    (k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw
                ],
                # aiohttp warns that big raw bytes block the loop; a file object is streamed.
                data=(io.BytesIO(body) if len(body) > _RAW_BODY_LIMIT else body) or None,
                allow_redirects=False,  # httpx follows redirects itself
                timeout=self._timeout(request.extensions),
            )
        except (aiohttp.ClientError, OSError) as exc:  # OSError includes TimeoutError
            raise translate(exc, request) from exc
        return httpx.Response(
            status_code=response.status,
            headers=list(response.raw_headers),
            stream=_ResponseStream(response, request),
            extensions={
                "http_version": b"HTTP/1.1",
                "reason_phrase": (response.reason or "").encode("latin-1", "replace"),
            },
        )

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()


class _ResponseStream(httpx.AsyncByteStream):
    """The body as aiohttp receives it; closing it returns the connection to the pool (or drops
    it when the body was not read to its end)."""

    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except (aiohttp.ClientError, OSError) as exc:  # OSError includes TimeoutError
            raise translate(exc, self._request) from exc

    async def aclose(self) -> None:
        self._response.release()


def translate(exc: BaseException, request: httpx.Request) -> httpx.TransportError:
    """The httpx exception httpcore raises for the same failure."""
    message = str(exc) or type(exc).__name__
    error: type[httpx.TransportError]
    if isinstance(exc, aiohttp.ClientConnectorError) and isinstance(exc.os_error, OutboundRefused):
        return DestinationRefused(str(exc.os_error), request=request)
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        error = httpx.ConnectTimeout  # no connection yet: the request never left
    elif isinstance(exc, aiohttp.ServerTimeoutError | TimeoutError):
        error = httpx.ReadTimeout
    elif isinstance(exc, aiohttp.ClientConnectorError):
        error = httpx.ConnectError  # refused, DNS, TLS handshake: nothing was sent
    elif isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        error = httpx.RemoteProtocolError  # closed before or inside the answer
    elif isinstance(exc, aiohttp.ClientResponseError):
        error = httpx.RemoteProtocolError  # an answer that is not valid HTTP
    elif isinstance(exc, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError):
        error = httpx.UnsupportedProtocol
    else:
        error = httpx.ReadError  # reset or another socket failure mid-exchange
    return error(message, request=request)
