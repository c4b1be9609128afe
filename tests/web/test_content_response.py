"""``ContentResponse``: the whole body in order, the source closed however the response ends,
and no more reads once the client has gone (what Starlette's task group used to ensure)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from gateway.web.content import ContentResponse


class Source:
    """``count`` chunks; remembers how many were read and whether it was closed."""

    def __init__(self, count: int) -> None:
        self.count, self.read, self.closed = count, 0, False

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            for n in range(self.count):
                self.read += 1
                yield bytes([n]) * 4
                await asyncio.sleep(0)  # a read in a thread: the listener gets to run
        finally:
            self.closed = True


def response(source: Source) -> ContentResponse:
    return ContentResponse(
        source.chunks(),
        status_code=200,
        headers={"Content-Length": str(4 * source.count)},
        media_type="video/mp4",
    )


async def test_body_is_sent_whole_and_the_source_closed():
    source, sent = Source(5), []
    connected = asyncio.Event()

    async def receive() -> dict[str, Any]:
        await connected.wait()  # never disconnects
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await response(source)({"type": "http"}, receive, send)
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 200
    assert b"".join(m.get("body", b"") for m in sent[1:]) == b"".join(
        bytes([n]) * 4 for n in range(5)
    )
    assert sent[-1]["more_body"] is False
    assert source.closed


async def test_single_chunk_body_needs_no_listener():
    source, sent = Source(1), []

    async def receive() -> dict[str, Any]:
        raise AssertionError("a one-chunk body never listens for a disconnect")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await response(source)({"type": "http"}, receive, send)
    assert [m["type"] for m in sent] == ["http.response.start", *["http.response.body"] * 2]
    assert source.closed


async def test_a_disconnect_stops_the_reads():
    source, sent = Source(1000), []

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}  # the client has already gone

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await response(source)({"type": "http"}, receive, send)
    assert source.read < 10
    assert source.closed
    assert all(m.get("more_body", True) for m in sent[1:])  # never claimed to be complete
