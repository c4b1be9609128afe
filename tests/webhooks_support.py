"""A real webhook receiver on 127.0.0.1 (it records every request and answers what the test
says: a status, or never), the two independent verifiers (the official ``openai`` SDK and the
``standardwebhooks`` reference package), and gateway settings with webhooks switched on."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from openai import OpenAI
from standardwebhooks import Webhook

from gateway.services.webhook_secrets import SecretBox
from gateway.settings import Secret, Settings
from tests.conftest import gateway_settings
from tests.servers import ServerThread

# Made once per test run: never a fixed key in the repository.
SECRET_KEY = SecretBox.new_key()
FAST_WEBHOOKS: dict[str, Any] = {
    "retry_base_seconds": 0.05,
    "retry_max_seconds": 0.2,
    "idle_seconds": 0.02,
    "timeout_seconds": 5.0,  # generous: a loaded machine must not turn a 200 into a retry
    "lease_seconds": 10.0,
}


def webhook_settings(tmp_path: Path, upstream_url: str, **sections: dict[str, Any]) -> Settings:
    merged: dict[str, dict[str, Any]] = {
        "webhooks": dict(FAST_WEBHOOKS),
        "upstream": {"allow_private_links": True},
    }
    for name, values in sections.items():
        merged.setdefault(name, {}).update(values)
    settings = gateway_settings(tmp_path, upstream_url, **merged)
    return dataclasses.replace(settings, webhook_secret_key=Secret(SECRET_KEY))


@dataclass
class Received:
    body: bytes
    headers: dict[str, str]
    status: int

    @property
    def event(self) -> dict[str, Any]:
        value: dict[str, Any] = orjson.loads(self.body)
        return value


@dataclass
class Receiver:
    """An ASGI app recording each request; ``status`` is what it answers (None: it never
    answers, holding the request open until the test ends)."""

    status: int | None = 200
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    release: asyncio.Event | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        status = self.status
        with self.lock:
            self.requests.append(Received(body, headers, status or 0))
        if status is None:
            if self.release is None:
                self.release = asyncio.Event()
            await self.release.wait()  # never answers while the test runs
            return
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    def answered(self, status: int) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if r.status == status]

    def snapshot(self) -> list[Received]:
        with self.lock:
            return list(self.requests)


def start_receiver(status: int | None = 200) -> tuple[Receiver, ServerThread]:
    receiver = Receiver(status=status)
    server = ServerThread(receiver, lifespan="off").start()
    return receiver, server


def stop_receiver(receiver: Receiver, server: ServerThread) -> None:
    if receiver.release is not None and server.loop is not None:
        server.loop.call_soon_threadsafe(receiver.release.set)
    server.server.force_exit = True
    server.stop()


def verify_both(received: Received, secret: str) -> dict[str, Any]:
    """Verify with the official SDK and with ``standardwebhooks``; the event as each parsed it
    must be the same. Raises when either verifier rejects the request."""
    client = OpenAI(api_key="unused", base_url="http://127.0.0.1:9/v1")
    try:
        unwrapped = client.webhooks.unwrap(received.body, received.headers, secret=secret)
    finally:
        client.close()
    reference = Webhook(secret).verify(received.body, received.headers)
    as_dict = unwrapped if isinstance(unwrapped, dict) else unwrapped.to_dict()
    assert as_dict == reference == received.event
    return received.event
