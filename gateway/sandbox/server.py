"""Run a sandbox app under uvicorn inside the current event loop and learn its port, for tests
and benchmarks that need a real socket (streaming, dropped connections)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Generator
from types import TracebackType

import uvicorn
from starlette.applications import Starlette

from gateway.sandbox.app import create_sandbox_app
from gateway.sandbox.config import SandboxConfig
from gateway.sandbox.state import SandboxState

STARTUP_POLL_SECONDS = 0.005


class SandboxStartError(RuntimeError):
    """uvicorn could not start (typically: the port is taken)."""


class _EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves the process's signal handlers alone."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class SandboxServer:
    """One sandbox listening on ``host``; ``await start()`` returns the bound port.

    Pass ``app`` to serve an app you built (e.g. with a fake clock); otherwise one is made
    from ``config``. Usable as ``async with SandboxServer(...) as server``.
    """

    def __init__(
        self,
        config: SandboxConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        app: Starlette | None = None,
        graceful_seconds: int = 1,
    ) -> None:
        self.app = app if app is not None else create_sandbox_app(config)
        self.host = host
        self.port = port
        self._server = _EmbeddedServer(
            uvicorn.Config(
                self.app,
                host=host,
                port=port,
                log_level="warning",
                lifespan="off",
                timeout_graceful_shutdown=graceful_seconds,
            )
        )
        self._task: asyncio.Task[None] | None = None

    @property
    def state(self) -> SandboxState:
        state: SandboxState = self.app.state.sandbox
        return state

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def _serve(self) -> None:
        try:
            await self._server.serve()
        except SystemExit as exc:  # uvicorn exits the process when it cannot bind
            raise SandboxStartError(f"sandbox could not listen on {self.host}:{self.port}") from exc

    async def start(self, wait_seconds: float = 10.0) -> int:
        """Start serving and return the bound port once uvicorn accepts connections."""
        if self._task is not None:
            raise RuntimeError("SandboxServer already started")
        self._task = asyncio.create_task(self._serve())
        deadline = time.monotonic() + wait_seconds
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises the startup error
                raise SandboxStartError("uvicorn stopped before it started")
            if time.monotonic() > deadline:
                await self.stop()
                raise SandboxStartError("uvicorn did not start in time")
            await asyncio.sleep(STARTUP_POLL_SECONDS)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        """Stop accepting, let open requests finish (up to ``graceful_seconds``), and wait."""
        if self._task is None:
            return
        self._server.should_exit = True
        task, self._task = self._task, None
        await task

    async def __aenter__(self) -> SandboxServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


async def serve_sandbox(
    config: SandboxConfig, host: str = "127.0.0.1", port: int = 0
) -> SandboxServer:
    """Start a sandbox for ``config`` and return its running server (``await server.stop()``)."""
    server = SandboxServer(config, host=host, port=port)
    await server.start()
    return server
