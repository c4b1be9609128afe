"""A hostile fake upstream (and an "internal" server it points at), both real HTTP servers on
127.0.0.1: the upstream accepts every job, reports it finished at once, and names whatever
download link the test chose, which it may then serve however the test wants."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.servers import ServerThread

FileHandler = Callable[[Request], Response]


@dataclass
class Seen:
    path: str
    authorization: str | None


@dataclass
class Hostile:
    """What the fake upstream answers; tests change the fields between calls."""

    video_url: str | None = None
    files: dict[str, FileHandler] = field(default_factory=dict)
    content: FileHandler | None = None  # GET /v1/videos/{id}/content (None: 404)
    seen: list[Seen] = field(default_factory=list)
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    def app(self) -> Starlette:
        async def create(request: Request) -> Response:
            self._record(request)
            return JSONResponse({"id": f"cgt-{next(self._ids)}", "status": "queued"})

        async def poll(request: Request) -> Response:
            self._record(request)
            job = {"id": request.path_params["job"], "status": "succeeded", "duration": 5}
            return JSONResponse({**job, "video_url": self.video_url})

        async def content(request: Request) -> Response:
            self._record(request)
            if self.content is None:
                return JSONResponse({"error": {"message": "no content here"}}, status_code=404)
            return self.content(request)

        async def files(request: Request) -> Response:
            self._record(request)
            handler = self.files.get(request.path_params["name"])
            return Response(status_code=404) if handler is None else handler(request)

        return Starlette(
            routes=[
                Route("/v1/videos", create, methods=["POST"]),
                Route("/v1/videos/{job}", poll),
                Route("/v1/videos/{job}/content", content),
                Route("/files/{name}", files),
            ]
        )

    def _record(self, request: Request) -> None:
        self.seen.append(Seen(request.url.path, request.headers.get("authorization")))


class Internal:
    """A server standing for the internal network: records every request it gets."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.server = ServerThread(self._app(), lifespan="off").start()
        self.port = self.server.port

    def _app(self) -> Starlette:
        async def anything(request: Request) -> Response:
            self.seen.append(Seen(request.url.path, request.headers.get("authorization")))
            return Response("<html>internal admin page</html>", media_type="text/html")

        return Starlette(routes=[Route("/{path:path}", anything)])

    def url(self, path: str = "/internal") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def streamed(chunks: Callable[[], AsyncIterator[bytes]], media_type: str) -> FileHandler:
    """A handler streaming ``chunks()`` chunked (no Content-Length)."""
    return lambda request: StreamingResponse(chunks(), media_type=media_type)


async def endless(chunk: bytes) -> AsyncIterator[bytes]:
    while True:
        yield chunk
        await asyncio.sleep(0)


async def trickle(data: bytes, pause: float) -> AsyncIterator[bytes]:
    """One byte per ``pause`` seconds: a link that is alive but far too slow."""
    for byte in data:
        yield bytes([byte])
        await asyncio.sleep(pause)
