"""Request id, access log and HTTP metrics, as one small pure-ASGI middleware.

An incoming ``X-Request-Id`` is kept (when sane), otherwise one is made; it is returned on every
response and available to handlers as ``request.state.request_id`` (and sent upstream). One
structured log line is written per request: never the key itself, only its id. Metrics use the
route template (``/v1/videos/{video_id}``), never the raw path.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.errors import ServiceUnavailable, is_unavailable
from gateway.ids import new_request_id
from gateway.metrics import Metrics
from gateway.web.context import outages_of
from gateway.web.rendering import JSONResponse, error_response

access_log = logging.getLogger("gateway.access")
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
UNMATCHED = "unmatched"
# Request facts handlers leave in ``request.state`` for the access log.
LOGGED_STATE = (
    "key_id",
    "team_id",
    "model",
    "cost_micros",
    "cache_result",
    "upstream_id",
    "client_retry_count",  # x-stainless-retry-count of a retried create
)


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics | None = None) -> None:
        self.app = app
        self.metrics = metrics
        # The labelled children, looked up once: ``labels()`` takes a lock and validates its
        # values on every call. Keys are bounded: route templates x methods x statuses.
        self._counted: dict[tuple[str, str, int], Any] = {}
        self._timed: dict[str, Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope) or new_request_id()
        state: dict[str, Any] = scope.setdefault("state", {})
        state["request_id"] = request_id
        started = time.perf_counter()
        status = 500
        answered_at: float | None = None

        async def send_with_id(message: Message) -> None:
            nonlocal status, answered_at
            if message["type"] == "http.response.start":
                status = message["status"]
                answered_at = time.perf_counter()
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            if not is_unavailable(exc, outages_of(scope.get("app"))) or answered_at is not None:
                raise
            # The database or storage is briefly down: answer 503 here (handled, not re-raised,
            # so the connection stays healthy) and let the client retry.
            access_log.warning("a dependency is unavailable", exc_info=exc)
            await unavailable_response()(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or UNMATCHED
            duration = (answered_at or time.perf_counter()) - started
            if self.metrics is not None:
                self._count(template, scope["method"], status, duration)
            if access_log.isEnabledFor(logging.INFO):  # the line's fields only when written
                _log_request(scope, request_id, template, status, duration)

    def _count(self, template: str, method: str, status: int, duration: float) -> None:
        assert self.metrics is not None
        counter = self._counted.get((template, method, status))
        if counter is None:
            counter = self.metrics.http_requests.labels(template, method, str(status))
            self._counted[(template, method, status)] = counter
        timer = self._timed.get(template)
        if timer is None:
            timer = self._timed[template] = self.metrics.http_duration.labels(template)
        counter.inc()
        timer.observe(duration)


def _log_request(
    scope: Scope, request_id: str, template: str, status: int, duration: float
) -> None:
    """The request's one access-log line: never the key itself, only its id."""
    state: dict[str, Any] = scope["state"]
    extra: dict[str, Any] = {
        "request_id": request_id,
        "method": scope["method"],
        "route": template,
        "status": status,
        "duration_ms": round(duration * 1000, 2),
    }
    for name in LOGGED_STATE:
        if state.get(name) is not None:
            extra[name] = state[name]
    access_log.info("request", extra=extra)


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            text = value.decode("latin-1")
            return text if _SAFE_REQUEST_ID.match(text) else None
    return None


def unavailable_response() -> JSONResponse:
    return error_response(
        ServiceUnavailable(
            "The gateway's database or storage is briefly unavailable; retry shortly."
        ),
        headers={"Retry-After": "1"},
    )
