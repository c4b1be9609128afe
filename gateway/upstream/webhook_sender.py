"""Sends one signed webhook request: POST the stored body with its headers, through the outbound
policy, never following redirects, within one overall time limit; reports the status or a short
error word. Response bodies are never read (a receiver cannot make us download anything).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from gateway import __version__
from gateway.upstream.checked_connect import REFUSED_MARK, checked_transport
from gateway.upstream.outbound import OutboundPolicy

USER_AGENT = f"seedance-gateway-webhooks/{__version__}"


@dataclass(frozen=True, slots=True)
class SendResult:
    """``status_code`` when the receiver answered; otherwise ``error`` (timeout, connect_error,
    refused, request_error). Delivered means a 2xx status."""

    duration_seconds: float
    status_code: int | None = None
    error: str | None = None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class WebhookSender:
    def __init__(self, http: httpx.AsyncClient, *, timeout: float) -> None:
        self._http = http
        self._timeout = timeout

    @classmethod
    def open(cls, *, timeout: float, allow_private: bool, max_connections: int) -> WebhookSender:
        http = httpx.AsyncClient(
            transport=checked_transport(
                OutboundPolicy(allow_private=allow_private), max_connections=max_connections
            ),
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,
            trust_env=False,  # no proxies from the environment: the policy sees the real host
        )
        return cls(http, timeout=timeout)

    async def close(self) -> None:
        await self._http.aclose()

    async def send(self, url: str, body: bytes, headers: Mapping[str, str]) -> SendResult:
        started = time.monotonic()
        request_headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            **headers,
        }
        try:
            async with (
                asyncio.timeout(self._timeout),
                self._http.stream(
                    "POST", url, content=body, headers=request_headers, follow_redirects=False
                ) as response,
            ):
                status = response.status_code  # closed without reading the body
        except TimeoutError:
            return SendResult(time.monotonic() - started, error="timeout")
        except httpx.TimeoutException:
            return SendResult(time.monotonic() - started, error="timeout")
        except httpx.ConnectError as exc:
            word = "refused" if REFUSED_MARK in str(exc) else "connect_error"
            return SendResult(time.monotonic() - started, error=word)
        except httpx.HTTPError:
            return SendResult(time.monotonic() - started, error="request_error")
        return SendResult(time.monotonic() - started, status_code=status)
