"""The AIHubMix adapter of the upstream port: submit, poll, delete and stream Seedance jobs.

Owns the wire over one injected ``httpx.AsyncClient`` (headers, retries, redirects) and
translates every httpx failure and upstream error answer into the ``GatewayError`` tree right
here. Answers are read by ``parsing``; waits are decided by ``retry``. The API key never leaves
the ``Authorization`` header. Must not import ``web/``, ``services/`` or ``store/``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Final, Protocol
from urllib.parse import quote

import httpx

from gateway.errors import (
    GatewayError,
    InvalidRequest,
    RateLimited,
    UpstreamAuthError,
    UpstreamError,
    UpstreamQuotaError,
    UpstreamTimeout,
)
from gateway.upstream.bodies import AnswerTooLarge, read_capped, read_error_body
from gateway.upstream.job import UpstreamJob
from gateway.upstream.outbound import DestinationRefused, Origin
from gateway.upstream.parsing import MalformedJob, error_message_from_body, parse_job
from gateway.upstream.port import Download, LinkRefused
from gateway.upstream.port import UpstreamNotFound as UpstreamNotFound  # re-exported
from gateway.upstream.port import may_have_created as may_have_created  # re-exported
from gateway.upstream.retry import (
    RETRY_AFTER_CAP,
    RETRY_AFTER_STATUSES,
    Backoff,
    is_retryable_error,
    is_retryable_status,
    parse_retry_after,
)

log = logging.getLogger(__name__)

_VIDEOS: Final = "/v1/videos"
_JSON: Final = "application/json"
_MEDIA: Final = "video/mp4, image/*;q=0.9, application/octet-stream;q=0.8, */*;q=0.5"
# A submit or poll answer is a small JSON object; anything near this size is not one.
MAX_ANSWER_BYTES: Final = 4 * 1024 * 1024
_PATH_SAFE: Final = "-._~!$&'()*+,;=:@"  # RFC 3986 pchar: ids stay verbatim, "/" is escaped
_QUOTA_WORDS: Final = ("insufficient", "balance", "quota", "recharge", "余额", "额度", "充值")
_RATE_QUOTA_WORDS: Final = ("insufficient", "balance", "recharge", "余额", "充值")
_LINK_GONE: Final = frozenset({401, 403, 404, 410})
_SECRET_RE: Final = re.compile(r"\bsk-[A-Za-z0-9_\-]{8,}")
_DEFAULT_RATE_LIMIT_WAIT: Final = 1.0


class UpstreamObserver(Protocol):
    """Receives one event per attempt (for metrics); must not raise."""

    def upstream_started(self, operation: str) -> None: ...

    def upstream_finished(self, operation: str, outcome: str, seconds: float) -> None: ...

    def upstream_retried(self, operation: str) -> None: ...


@dataclass(frozen=True, slots=True)
class _Call:
    """One kind of upstream call: how it is named in messages and whether it may be repeated."""

    what: str  # "GET /v1/videos/{id}": no ids, no signed query strings
    idempotent: bool
    job_id: str | None = None
    operation: str = "other"  # submit | poll | delete | download: a bounded metrics label


def outcome_of(status: int) -> str:
    """A bounded label for an upstream answer's status."""
    if status < 400:
        return "ok"
    if status == 429:
        return "rate_limited"
    return "client_error" if status < 500 else "server_error"


class UpstreamClient:
    """AIHubMix's ``/v1/videos`` API as four calls; the caller owns ``http`` and its base URL.

    ``retries`` is the number of attempts in total. A submit is repeated only when the
    connection was never made; polls, deletes and downloads also ride out read timeouts,
    429 and 502/503/504 with exponential backoff (full jitter) or the upstream's
    ``Retry-After`` (up to 60 s).
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        api_key: str,
        retries: int = 3,
        backoff_base: float = 0.2,
        backoff_max: float = 5.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        trusted_hosts: frozenset[str] | None = None,
        observer: UpstreamObserver | None = None,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
    ) -> None:
        self._observer = observer
        self._http = http
        self._api_key = api_key
        self._attempts = max(1, retries)
        self._backoff = Backoff(base=backoff_base, cap=backoff_max)
        self._sleep = sleep
        self._max_answer_bytes = max_answer_bytes
        # Who may receive the key: the API's exact origin (scheme, host, port), plus trusted
        # hosts on the API's scheme and default port.
        base = Origin.of(http.base_url)
        default_port = 443 if base.scheme == "https" else 80
        self._key_origins = frozenset(
            {base, *(Origin(base.scheme, h.lower(), default_port) for h in trusted_hosts or ())}
        )

    def __repr__(self) -> str:
        return f"UpstreamClient(base_url={str(self._http.base_url)!r}, retries={self._attempts})"

    async def submit(
        self, body: Mapping[str, Any], *, request_id: str | None = None
    ) -> UpstreamJob:
        """``POST /v1/videos`` with ``body`` as JSON; the accepted job as the upstream sees it."""
        call = _Call(f"POST {_VIDEOS}", idempotent=False, operation="submit")
        response, content = await self._exchange(
            call, "POST", _VIDEOS, headers=self._headers(request_id), json=dict(body)
        )
        self._raise_for_status(response, content, call)
        data = self._json_object(response, content, call)
        try:
            return parse_job(data)
        except MalformedJob as exc:
            detail = error_message_from_body(content) or str(exc)
            raise UpstreamError(
                f"AIHubMix accepted {call.what} but its answer carries no job id: "
                f"{self._redact(detail)}",
                code="upstream_bad_response",
            ) from exc

    async def poll(self, upstream_id: str, *, request_id: str | None = None) -> UpstreamJob:
        """``GET /v1/videos/{id}``; the job keeps the id it was polled with."""
        call = _Call(f"GET {_VIDEOS}/{{id}}", idempotent=True, job_id=upstream_id, operation="poll")
        response, content = await self._exchange(
            call, "GET", _job_path(upstream_id), headers=self._headers(request_id)
        )
        self._raise_for_status(response, content, call)
        data = self._json_object(response, content, call)
        try:
            job = parse_job(data, fallback_id=upstream_id)
        except MalformedJob as exc:  # pragma: no cover - a fallback id is always given
            raise UpstreamError(str(exc), code="upstream_bad_response") from exc
        return job if job.id == upstream_id else replace(job, id=upstream_id)

    async def delete(self, upstream_id: str, *, request_id: str | None = None) -> None:
        """``DELETE /v1/videos/{id}``; a job the upstream no longer knows counts as deleted."""
        call = _Call(
            f"DELETE {_VIDEOS}/{{id}}", idempotent=True, job_id=upstream_id, operation="delete"
        )
        response, content = await self._exchange(
            call, "DELETE", _job_path(upstream_id), headers=self._headers(request_id)
        )
        if response.status_code in (404, 410):
            return
        self._raise_for_status(response, content, call)

    def open_content(
        self,
        upstream_id: str,
        *,
        url: str | None = None,
        variant: str = "video",
        request_id: str | None = None,
    ) -> AbstractAsyncContextManager[Download]:
        """Stream a finished job's video (or its last frame) from a checked 2xx answer.

        With ``url`` (a signed link from the poll) that link is fetched, with the API key only
        when its origin is exactly the API's (or a trusted host's); without it
        ``GET /v1/videos/{id}/content`` (``?variant=`` added for anything but ``video``).
        Redirects are followed; httpx drops the key on a cross-origin hop, and the transport's
        outbound policy checks every hop (``LinkRefused``). Failures while streaming arrive
        from ``Download.chunks`` as ``GatewayError``s.
        """
        return self._stream_content(upstream_id, url, variant, request_id)

    @asynccontextmanager
    async def _stream_content(
        self, upstream_id: str, url: str | None, variant: str, request_id: str | None
    ) -> AsyncIterator[Download]:
        target: httpx.URL | str
        if url is None:
            call = _Call(
                f"GET {_VIDEOS}/{{id}}/content",
                idempotent=True,
                job_id=upstream_id,
                operation="download",
            )
            target = f"{_job_path(upstream_id)}/content"
            if variant != "video":
                target = f"{target}?variant={quote(variant, safe='')}"
            headers = self._headers(request_id, accept=_MEDIA)
        else:
            target = self._link(url, variant)
            call = _Call(
                f"GET {variant} link on {target.host}", idempotent=True, operation="download"
            )
            own = self._may_receive_key(target)
            headers = self._headers(request_id if own else None, accept=_MEDIA, with_key=own)
        response = await self._send(
            call, "GET", target, headers=headers, stream=True, follow_redirects=True
        )
        try:
            if not response.is_success:
                body = await read_error_body(response)
                self._raise_for_status(response, body, call)
            length = response.headers.get("content-length", "")
            yield Download(
                content_type=response.headers.get("content-type", "").split(";")[0].strip().lower(),
                length=int(length) if length.isascii() and length.isdigit() else None,
                chunks=self._chunks(response, call),
            )
        finally:
            await response.aclose()

    async def _chunks(self, response: httpx.Response, call: _Call) -> AsyncIterator[bytes]:
        """The body, with httpx's failures translated (the port speaks ``GatewayError``)."""
        try:
            async for chunk in response.aiter_bytes():
                yield chunk
        except httpx.RequestError as exc:
            raise self._transport_error(exc, call) from exc

    # -- the wire ---------------------------------------------------------------------------

    async def _exchange(
        self,
        call: _Call,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        json: Any = None,
    ) -> tuple[httpx.Response, bytes]:
        """One JSON call: the answer and its body, read up to ``max_answer_bytes`` at most."""
        response = await self._send(call, method, url, headers=headers, json=json, stream=True)
        try:
            return response, await self._read_capped(response, call)
        finally:
            await response.aclose()

    async def _read_capped(self, response: httpx.Response, call: _Call) -> bytes:
        try:
            body = await read_capped(response, self._max_answer_bytes)
        except AnswerTooLarge as exc:
            raise UpstreamError(
                f"AIHubMix answered {call.what} with more than {exc.limit} bytes",
                code="upstream_answer_too_large",
            ) from exc
        except httpx.RequestError as exc:
            raise self._transport_error(exc, call) from exc
        return body

    async def _send(
        self,
        call: _Call,
        method: str,
        url: httpx.URL | str,
        *,
        headers: Mapping[str, str],
        json: Any = None,
        stream: bool = False,
        follow_redirects: bool = False,
    ) -> httpx.Response:
        """Send with retries; the last answer whatever its status, or a translated failure."""
        for attempt in range(self._attempts):
            last = attempt + 1 >= self._attempts
            request = self._http.build_request(method, url, headers=headers, json=json)
            try:
                response = await self._observed_send(call, request, stream, follow_redirects)
            except DestinationRefused as exc:
                raise LinkRefused(
                    f"the outbound policy refused {call.what}: {exc}"
                ) from exc  # the same link stays refused: never retried
            except httpx.RequestError as exc:
                if last or not is_retryable_error(exc, idempotent=call.idempotent):
                    raise self._transport_error(exc, call) from exc
                await self._pause(call, attempt, type(exc).__name__, self._backoff.delay(attempt))
                continue
            if last or not is_retryable_status(response.status_code, idempotent=call.idempotent):
                return response
            delay = self._retry_delay(response, attempt)
            await response.aclose()
            await self._pause(call, attempt, f"HTTP {response.status_code}", delay)
        raise AssertionError("unreachable: the last attempt always returns or raises")

    async def _observed_send(
        self, call: _Call, request: httpx.Request, stream: bool, follow_redirects: bool
    ) -> httpx.Response:
        observer = self._observer
        if observer is None:
            return await self._http.send(request, stream=stream, follow_redirects=follow_redirects)
        observer.upstream_started(call.operation)
        started = time.perf_counter()
        outcome = "unreachable"
        try:
            response = await self._http.send(
                request, stream=stream, follow_redirects=follow_redirects
            )
            outcome = outcome_of(response.status_code)
            return response
        except httpx.TimeoutException:
            outcome = "timeout"
            raise
        finally:
            observer.upstream_finished(call.operation, outcome, time.perf_counter() - started)

    async def _pause(self, call: _Call, attempt: int, reason: str, delay: float) -> None:
        if self._observer is not None:
            self._observer.upstream_retried(call.operation)
        log.warning(
            "upstream %s failed (%s), attempt %d/%d; retrying in %.2f s",
            call.what,
            reason,
            attempt + 1,
            self._attempts,
            delay,
            extra={"upstream_id": call.job_id},
        )
        await self._sleep(delay)

    def _retry_delay(self, response: httpx.Response, attempt: int) -> float:
        if response.status_code in RETRY_AFTER_STATUSES:
            wait = parse_retry_after(response.headers, now=datetime.now(UTC))
            if wait is not None:
                return min(wait, RETRY_AFTER_CAP)
        return self._backoff.delay(attempt)

    def _headers(
        self, request_id: str | None, *, accept: str = _JSON, with_key: bool = True
    ) -> dict[str, str]:
        headers = {"Accept": accept}
        if with_key and self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        if request_id:
            headers["X-Request-Id"] = request_id
        return headers

    def _link(self, url: str, variant: str) -> httpx.URL:
        try:
            link = httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise UpstreamError(
                f"the upstream's {variant} link is not a valid URL", code="upstream_bad_response"
            ) from exc
        if link.scheme not in ("http", "https") or not link.host:
            raise UpstreamError(
                f"the upstream's {variant} link is not an http(s) URL",
                code="upstream_bad_response",
            )
        return link

    def _may_receive_key(self, url: httpx.URL) -> bool:
        """The key goes only to the API's exact origin (scheme, host and port) or a trusted
        host's: never to another port of the same host, never downgraded to http."""
        return Origin.of(url) in self._key_origins

    # -- translating answers and failures ---------------------------------------------------

    def _json_object(
        self, response: httpx.Response, content: bytes, call: _Call
    ) -> Mapping[str, Any]:
        try:
            data = json.loads(content)
        except ValueError as exc:
            raise UpstreamError(
                f"AIHubMix answered {call.what} with HTTP {response.status_code} but not JSON",
                code="upstream_bad_response",
            ) from exc
        if not isinstance(data, Mapping):
            raise UpstreamError(
                f"AIHubMix answered {call.what} with JSON that is not an object",
                code="upstream_bad_response",
            )
        return data

    def _raise_for_status(self, response: httpx.Response, body: bytes, call: _Call) -> None:
        if response.is_success:
            return
        content_type = response.headers.get("content-type", "")
        detail = self._redact(error_message_from_body(body, content_type) or "")
        log.warning(
            "upstream %s answered HTTP %d: %s",
            call.what,
            response.status_code,
            detail or "(no message)",
            extra={"upstream_id": call.job_id},
        )
        raise self._status_error(response, detail, call)

    def _status_error(self, response: httpx.Response, detail: str, call: _Call) -> GatewayError:
        status = response.status_code
        said = f": {detail}" if detail else ""
        lowered = detail.lower()
        if status in _LINK_GONE and not self._may_receive_key(response.url):
            return UpstreamNotFound(
                f"the upstream's signed download link was refused with HTTP {status}; "
                "it has probably expired",
                code="upstream_content_expired",
            )
        if status == 401:
            return UpstreamAuthError(
                "the gateway's AIHubMix API key was rejected (HTTP 401); "
                "the operator should check AIHUBMIX_API_KEY"
            )
        if (
            status in (402, 403)
            or (status == 400 and any(word in lowered for word in _QUOTA_WORDS))
            or (status == 429 and any(word in lowered for word in _RATE_QUOTA_WORDS))
        ):
            return UpstreamQuotaError(
                f"the AIHubMix account has run out of balance or quota (HTTP {status}); "
                "the operator should recharge the AIHubMix account"
            )
        if status in (404, 410) and call.job_id is not None:
            return UpstreamNotFound(f"AIHubMix does not know this job (HTTP {status}){said}")
        if status in (400, 413, 422):
            return InvalidRequest(
                detail or f"AIHubMix rejected the request (HTTP {status})",
                code="upstream_rejected",
            )
        if status == 504 and not call.idempotent:
            # A proxy gave up waiting: the upstream behind it may well have taken the job.
            return UpstreamTimeout(
                f"AIHubMix answered {call.what} with HTTP 504{said};"
                " the job may or may not have been created"
            )
        if status == 429:
            wait = parse_retry_after(response.headers, now=datetime.now(UTC))
            wait = _DEFAULT_RATE_LIMIT_WAIT if wait is None else wait
            return RateLimited(
                f"AIHubMix is rate limiting the gateway (HTTP 429); retry in {wait:g} s",
                retry_after=wait,
            )
        return UpstreamError(f"AIHubMix answered {call.what} with HTTP {status}{said}")

    def _transport_error(self, exc: httpx.RequestError, call: _Call) -> UpstreamError:
        """``exc`` in the gateway's terms, saying whether the request may have left."""
        error = self._translated(exc, call)
        error.request_sent = not isinstance(exc, _NEVER_SENT)
        return error

    def _translated(self, exc: httpx.RequestError, call: _Call) -> UpstreamError:
        name = type(exc).__name__
        text = self._redact(str(exc))[:200]
        said = f": {text}" if text and text != name else ""
        if isinstance(exc, httpx.TimeoutException):
            unsure = call.what.startswith("POST") and not isinstance(exc, httpx.ConnectTimeout)
            tail = "; the job may or may not have been created" if unsure else ""
            return UpstreamTimeout(f"AIHubMix did not answer {call.what} in time ({name}){tail}")
        if isinstance(exc, httpx.TransportError):
            return UpstreamError(
                f"could not reach AIHubMix for {call.what} ({name}){said}",
                code="upstream_unreachable",
            )
        return UpstreamError(
            f"AIHubMix sent an unreadable answer to {call.what} ({name}){said}",
            code="upstream_bad_response",
        )

    def _redact(self, text: str) -> str:
        if self._api_key:
            text = text.replace(self._api_key, "***")
        return _SECRET_RE.sub("***", text)


# Transport failures after which a POST certainly never reached the upstream.
_NEVER_SENT: Final = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def _job_path(upstream_id: str) -> str:
    if not upstream_id:
        raise ValueError("upstream_id must not be empty")
    return f"{_VIDEOS}/{quote(upstream_id, safe=_PATH_SAFE)}"
