"""Reading upstream answer bodies with a ceiling: an answer is read into memory only up to a
limit, so a hostile or broken upstream cannot make the gateway buffer an endless body.
Must not import ``services/``, ``store/`` or ``web/``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing, suppress
from typing import Final, cast

import httpx

ERROR_BODY_LIMIT: Final = 64 * 1024


class AnswerTooLarge(Exception):
    """The answer announced or sent more than ``limit`` bytes."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"more than {limit} bytes")
        self.limit = limit


async def read_capped(response: httpx.Response, limit: int) -> bytes:
    """The whole body, or ``AnswerTooLarge`` as soon as it passes ``limit`` (or announces it
    will); httpx's own failures pass through."""
    announced = response.headers.get("content-length", "")
    if announced.isascii() and announced.isdigit() and int(announced) > limit:
        raise AnswerTooLarge(limit)
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > limit:
            raise AnswerTooLarge(limit)
    return bytes(body)


async def read_error_body(response: httpx.Response) -> bytes:
    """At most 64 KiB of an error answer; a failure while reading leaves what arrived."""
    body = bytearray()
    with suppress(httpx.HTTPError):  # the status code already says what went wrong
        async with aclosing(cast(AsyncGenerator[bytes, None], response.aiter_bytes())) as chunks:
            async for chunk in chunks:
                body += chunk
                if len(body) >= ERROR_BODY_LIMIT:
                    break
    return bytes(body[:ERROR_BODY_LIMIT])
