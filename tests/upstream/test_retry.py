"""Retry policy: which failures repeat, backoff bounds, Retry-After reading."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from gateway.upstream.retry import (
    Backoff,
    is_retryable_error,
    is_retryable_status,
    parse_retry_after,
)

NOW = datetime(2026, 5, 12, 12, 0, 0, tzinfo=UTC)


def test_backoff_full_jitter_stays_under_the_capped_exponential() -> None:
    backoff = Backoff(base=0.5, cap=3.0, rng=random.Random(7))
    for attempt, ceiling in enumerate([0.5, 1.0, 2.0, 3.0, 3.0, 3.0]):
        delays = [backoff.delay(attempt) for _ in range(200)]
        assert all(0.0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.8  # jitter spans the range


def test_backoff_survives_huge_attempt_numbers() -> None:
    assert 0.0 <= Backoff(base=1.0, cap=2.0).delay(10_000) <= 2.0


@pytest.mark.parametrize(
    ("exc", "idempotent", "expected"),
    [
        (httpx.ConnectError("refused"), False, True),
        (httpx.ConnectTimeout("slow"), False, True),
        (httpx.ReadTimeout("slow"), False, False),
        (httpx.WriteTimeout("slow"), False, False),
        (httpx.PoolTimeout("busy"), False, False),
        (httpx.ReadError("reset"), False, False),
        (httpx.RemoteProtocolError("disconnected"), False, False),
        (httpx.ConnectError("refused"), True, True),
        (httpx.ReadTimeout("slow"), True, True),
        (httpx.ReadError("reset"), True, True),
        (httpx.RemoteProtocolError("disconnected"), True, True),
        (httpx.UnsupportedProtocol("ftp"), True, False),
        (httpx.DecodingError("gzip"), True, False),
    ],
)
def test_retryable_errors(exc: httpx.RequestError, idempotent: bool, expected: bool) -> None:
    assert is_retryable_error(exc, idempotent=idempotent) is expected


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_retryable_statuses_only_when_idempotent(status: int) -> None:
    assert is_retryable_status(status, idempotent=True)
    assert not is_retryable_status(status, idempotent=False)


@pytest.mark.parametrize("status", [200, 400, 401, 403, 404, 500, 501])
def test_other_statuses_are_final(status: int) -> None:
    assert not is_retryable_status(status, idempotent=True)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"retry-after": "7"}, 7.0),
        ({"retry-after": " 2.5 "}, 2.5),
        ({"retry-after": "-3"}, 0.0),
        ({"retry-after": "soon"}, None),
        ({"retry-after": "nan"}, None),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after-ms": "x", "retry-after": "4"}, 4.0),
        ({"retry-after": format_datetime(NOW + timedelta(seconds=30), usegmt=True)}, 30.0),
        ({"retry-after": format_datetime(NOW - timedelta(seconds=30), usegmt=True)}, 0.0),
        ({"retry-after": "Tue, 12 May 2026 12:00:10 -0000"}, 10.0),
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert parse_retry_after(headers, now=NOW) == expected


def test_parse_retry_after_reads_httpx_headers_case_insensitively() -> None:
    assert parse_retry_after(httpx.Headers({"Retry-After": "3"}), now=NOW) == 3.0
