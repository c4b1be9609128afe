"""``python -m bench.fastupstream``: an upstream nginx cannot saturate, for an honest baseline.

The sandbox is a Starlette app (about 5,000 req/s on one core here), so "nginx in front of the
sandbox" measures the sandbox. This is a raw ``asyncio.Protocol`` HTTP/1.1 server (keep-alive,
no framework) that speaks just enough of the upstream API for the gateway's runner and the
harness: ``POST /v1/videos`` (a new id, already completed), ``GET /v1/videos/{id}`` (completed,
or ``in_progress`` with ``--running``), ``GET /v1/videos/{id}/content`` (an MP4 of the configured
size, precomputed once), ``DELETE``, and the sandbox's ``/_sandbox/stats`` and
``/_sandbox/config`` (``video_bytes``) so the harness drives it like the sandbox.

``--latency S`` delays every API answer by S seconds (the "in flight" scenario's slow upstream).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Sequence

import orjson

from gateway.sandbox.config import SandboxConfig
from gateway.sandbox.media import iter_video_chunks, served_size
from gateway.sandbox.render import RenderSpec, frame_size, render_mp4

MODEL = "doubao-seedance-2-0-fast-260128"
_REASONS = {200: b"OK", 201: b"Created", 400: b"Bad Request", 404: b"Not Found"}


class State:
    """Counters and the videos jobs serve: one 5 s render (made once, like the sandbox's: the
    gateway probes what it stores), padded to the configured size with a ``free`` box whose
    filler is keyed by the job id, so every job's file (and sha256) is its own."""

    def __init__(self, video_bytes: int, running: bool, latency: float) -> None:
        self.stats: Counter[str] = Counter()
        self.running = running
        self.latency = latency
        self.ids = itertools.count(1)
        self.prefix = f"fast{int(time.time()):x}"
        config = SandboxConfig()
        width, height = frame_size("16:9", config.frame_short_side)
        spec = RenderSpec(width, height, config.frame_rate, 5, (200, 120, 40))
        self.core = render_mp4(spec)
        self.video_bytes = video_bytes

    def set_video_bytes(self, size: int) -> None:
        self.video_bytes = size

    def video_size(self) -> int:
        return served_size(len(self.core), self.video_bytes)

    def document(self, job_id: str) -> bytes:
        status = "in_progress" if self.running else "completed"
        return orjson.dumps(
            {
                "id": job_id,
                "object": "video",
                "model": MODEL,
                "status": status,
                "progress": 50 if self.running else 100,
                "created_at": int(time.time()),
                "seconds": "5",
                "duration": 5,
                "size": "1280x720",
            }
        )


def _head(status: int, length: int, content_type: bytes = b"application/json") -> bytes:
    return b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n" % (
        status,
        _REASONS.get(status, b"OK"),
        content_type,
        length,
    )


class HttpProtocol(asyncio.Protocol):
    """One keep-alive connection: parse requests as they arrive, answer in order."""

    def __init__(self, state: State) -> None:
        self.state = state
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.queue: asyncio.Queue[tuple[bytes, bytes, bytes]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end]
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            if len(self.buffer) < end + 4 + length:
                return
            body = self.buffer[end + 4 : end + 4 + length]
            self.buffer = self.buffer[end + 4 + length :]
            method, path, _ = head.split(b"\r\n", 1)[0].split(b" ", 2)
            if self.state.latency > 0 and not path.startswith(b"/_sandbox"):
                if self.queue is None:
                    self.queue = asyncio.Queue()
                    asyncio.get_running_loop().create_task(self._delayed())
                self.queue.put_nowait((method, path, body))
            else:
                self._answer(method, path, body)

    async def _delayed(self) -> None:
        """Answers in order, each ``latency`` after it arrived (pipelining keeps the order)."""
        assert self.queue is not None
        while True:
            method, path, body = await self.queue.get()
            await asyncio.sleep(self.state.latency)
            if self.transport is None or self.transport.is_closing():
                return
            self._answer(method, path, body)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def _answer(self, method: bytes, path: bytes, body: bytes) -> None:
        transport = self.transport
        if transport is None:
            return
        state = self.state
        path = path.split(b"?", 1)[0]
        parts = path.strip(b"/").split(b"/")
        if method == b"POST" and path == b"/v1/videos":
            state.stats["create"] += 1
            payload = state.document(f"{state.prefix}_{next(state.ids)}")
            transport.write(_head(200, len(payload)) + payload)
        elif method == b"GET" and len(parts) == 3 and parts[:2] == [b"v1", b"videos"]:
            state.stats["poll"] += 1
            payload = state.document(parts[2].decode())
            transport.write(_head(200, len(payload)) + payload)
        elif method == b"GET" and len(parts) == 4 and parts[3] == b"content":
            state.stats["content"] += 1
            transport.write(_head(200, state.video_size(), b"video/mp4"))
            for chunk in iter_video_chunks(state.core, parts[2], state.video_bytes):
                transport.write(chunk)
        elif method == b"DELETE" and len(parts) == 3:
            state.stats["delete"] += 1
            payload = b'{"deleted":true}'
            transport.write(_head(200, len(payload)) + payload)
        elif path == b"/_sandbox/stats":
            payload = orjson.dumps(dict(state.stats))
            transport.write(_head(200, len(payload)) + payload)
        elif path == b"/_sandbox/config":
            if method == b"POST":
                changes = orjson.loads(body or b"{}")
                if "video_bytes" in changes:
                    state.set_video_bytes(int(changes["video_bytes"]))
                if "running" in changes:
                    state.running = bool(changes["running"])
            payload = orjson.dumps({"video_bytes": state.video_bytes, "running": state.running})
            transport.write(_head(200, len(payload)) + payload)
        else:
            payload = b'{"error":{"message":"not found","type":"Aihubmix_api_error"}}'
            transport.write(_head(404, len(payload)) + payload)


async def serve(host: str, port: int, state: State) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: HttpProtocol(state), host, port, backlog=4096)
    async with server:
        await server.serve_forever()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fastupstream", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--video-bytes", type=int, default=64 * 1024)
    parser.add_argument("--running", action="store_true", help="polls say in_progress")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    args = parser.parse_args(argv)
    state = State(args.video_bytes, args.running, args.latency)
    try:
        import uvloop

        uvloop.run(serve(args.host, args.port, state))
    except ImportError:
        asyncio.run(serve(args.host, args.port, state))


if __name__ == "__main__":
    main()
