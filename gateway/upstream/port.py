"""The upstream port: what services may ask of a video-generation upstream, in the gateway's own
types. Adapters (``client.UpstreamClient`` for AIHubMix) implement it and translate their
driver's failures into the ``GatewayError`` tree before anything crosses this line; no httpx
type appears here. Must not import ``services/``, ``store/`` or ``web/``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.errors import GatewayError, UpstreamError, UpstreamTimeout
from gateway.upstream.job import UpstreamJob


class UpstreamNotFound(UpstreamError):
    """The upstream does not know the job, or a signed download link has expired."""

    default_code = "upstream_job_not_found"


class LinkRefused(UpstreamError):
    """The outbound policy refused a link (an internal address, a non-http scheme): it is never
    fetched. Retrying the same link cannot help; the documented ``/content`` path may."""

    default_code = "upstream_link_refused"


def may_have_created(error: GatewayError) -> bool:
    """Whether a failed ``submit`` may still have created the job upstream: the request was
    sent and its answer was lost (a timeout or dropped connection after sending, a proxy's
    504) or arrived unreadable or oversized. Errors the upstream answered clearly (4xx, 429,
    500/502/503), refused links and failures to connect mean it was not created."""
    sent = error.request_sent if isinstance(error, UpstreamError) else None
    if sent is not None:
        return sent
    return isinstance(error, UpstreamTimeout) or error.code in (
        "upstream_bad_response",
        "upstream_answer_too_large",
    )


@dataclass(frozen=True, slots=True)
class Download:
    """A finished job's video or last frame as it streams in.

    ``content_type`` is the announced media type, lowercased and without parameters ("" when
    absent): a claim to check, not a fact. ``length`` is the announced ``Content-Length``.
    ``chunks`` raises ``GatewayError`` subclasses only (a broken or slow stream included).
    """

    content_type: str
    length: int | None
    chunks: AsyncIterator[bytes]


class Upstream(Protocol):
    """Submit, poll, delete and download upstream jobs."""

    async def submit(
        self, body: Mapping[str, Any], *, request_id: str | None = None
    ) -> UpstreamJob: ...

    async def poll(self, upstream_id: str, *, request_id: str | None = None) -> UpstreamJob: ...

    async def delete(self, upstream_id: str, *, request_id: str | None = None) -> None: ...

    def open_content(
        self,
        upstream_id: str,
        *,
        url: str | None = None,
        variant: str = "video",
        request_id: str | None = None,
    ) -> AbstractAsyncContextManager[Download]:
        """The job's ``variant`` from ``url`` (a link the poll named) or the API's own path."""
        ...
