"""Real servers on 127.0.0.1 for tests: any ASGI app under uvicorn in a background thread."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import uvicorn


class ServerThread:
    """Run ``app`` with uvicorn on 127.0.0.1 and a free port, in its own thread and event loop."""

    def __init__(
        self, app: Any, *, lifespan: str = "on", graceful_seconds: float | None = None
    ) -> None:
        """``graceful_seconds``: how long ``stop`` lets requests still running finish (None:
        as long as they take)."""
        self.config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=0,
            log_level="warning",
            lifespan=lifespan,
            access_log=False,
            log_config=None,
            timeout_graceful_shutdown=graceful_seconds,
        )
        self.server = uvicorn.Server(self.config)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.port = 0
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def _run(self) -> None:
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._serve())
        except BaseException as exc:  # surfaced to the test thread by start()
            self._error = exc
        finally:
            self._ready.set()
            self.loop.close()

    async def _serve(self) -> None:
        task = asyncio.ensure_future(self.server.serve())
        while not self.server.started and not task.done():
            await asyncio.sleep(0.005)
        if self.server.started:
            self.port = self.server.servers[0].sockets[0].getsockname()[1]
        self._ready.set()
        await task

    def start(self) -> ServerThread:
        self.thread.start()
        if not self._ready.wait(timeout=30):
            raise RuntimeError("server did not start within 30 s")
        if self._error is not None or not self.server.started:
            raise RuntimeError(f"server failed to start: {self._error!r}")
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def call(self, coro: Any, timeout: float = 30) -> Any:
        """Run a coroutine on the server's loop (to touch its in-process state) and wait."""
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
