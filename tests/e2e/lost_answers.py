"""A fake upstream on 127.0.0.1 that takes every submit and then loses the answer: it reads the
whole request, records the job as created (it would be billed), and then either stalls past the
gateway's timeout or drops the connection (or, in ``answer`` mode, accepts it as ``cgt-held``;
polls always find it queued). Raw sockets, so the loss is real on the wire.
``LosingProxy`` does the same to chosen submits in front of a real sandbox (a chain's segment)."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from typing import Literal

import httpx

Mode = Literal["stall", "drop", "answer"]


class LostAnswerUpstream:
    def __init__(self, mode: Mode, before_answer: Callable[[], None] | None = None) -> None:
        """``answer``: accept the job with a 200 after calling ``before_answer``."""
        self.mode = mode
        self._before_answer = before_answer
        self.created: list[bytes] = []  # the body of every job it "created"
        self._release = threading.Event()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> LostAnswerUpstream:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._release.set()
        self._sock.close()

    def _serve(self) -> None:
        while not self._release.is_set():
            try:
                connection, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(connection,), daemon=True).start()

    def _handle(self, connection: socket.socket) -> None:
        with connection:
            request = _read_request(connection)
            if request is None:
                return
            head, body = request
            if not head.startswith(b"POST "):
                _answer_queued(connection)  # a poll of the job: it is still queued
                return
            self.created.append(body)  # the upstream has the job now
            if self.mode == "stall":
                self._release.wait(60)  # answers nothing until the test ends
            elif self.mode == "answer":
                if self._before_answer is not None:
                    self._before_answer()
                _answer_queued(connection)
            # "drop": close without a byte of answer


def _answer_queued(connection: socket.socket) -> None:
    payload = b'{"id": "cgt-held", "status": "queued"}'
    connection.sendall(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(payload), payload)
    )


class DroppingProxy:
    """A TCP proxy on 127.0.0.1 in front of ``target``: the first ``drops`` connections reach
    the gateway (which answers) but the answer is dropped before the client sees a byte; later
    connections are relayed both ways. A client-side lost answer, for retry tests."""

    def __init__(self, target_port: int, drops: int = 1) -> None:
        self._target = ("127.0.0.1", target_port)
        self._drops = drops
        self.connections = 0
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> DroppingProxy:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._sock.close()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            self.connections += 1
            drop = self.connections <= self._drops
            threading.Thread(target=self._relay, args=(client, drop), daemon=True).start()

    def _relay(self, client: socket.socket, drop: bool) -> None:
        server = socket.create_connection(self._target)

        def upstream() -> None:
            try:
                while chunk := client.recv(65536):
                    server.sendall(chunk)
            except OSError:
                pass

        threading.Thread(target=upstream, daemon=True).start()
        try:
            while chunk := server.recv(65536):
                if drop:
                    break  # the gateway answered; the client never hears it
                client.sendall(chunk)
        except OSError:
            pass
        finally:
            for end in (client, server):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
                end.close()


class LosingProxy:
    """An HTTP proxy on 127.0.0.1 in front of ``target`` (the sandbox) that relays every
    request (one per connection), except that the answers to the submits numbered in ``lose``
    (1 = the first ``POST /v1/videos``) are lost: the request reaches the upstream, which
    creates the job, and the connection is then closed without a byte of answer."""

    _HOP_BY_HOP = frozenset(
        {b"host", b"connection", b"content-length", b"transfer-encoding", b"accept-encoding"}
    )

    def __init__(self, target: str, lose: frozenset[int]) -> None:
        self._lose = lose
        # A fresh connection per request: no idle connection the sandbox may close under us.
        limits = httpx.Limits(max_keepalive_connections=0)
        self._target = httpx.Client(base_url=target, timeout=30, limits=limits)
        self._closed = False
        self.errors: list[str] = []  # relays that failed while the proxy was open
        self._lock = threading.Lock()
        self.submits = 0
        self.lost_ids: list[str] = []  # upstream ids the gateway never heard of
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> LosingProxy:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._closed = True
        self._sock.close()
        self._target.close()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(connection,), daemon=True).start()

    def _handle(self, connection: socket.socket) -> None:
        with connection:
            try:
                self._relay(connection)
            except (OSError, httpx.HTTPError, RuntimeError) as exc:
                if not self._closed:  # after the test, the gateway's polls just end here
                    self.errors.append(repr(exc))

    def _relay(self, connection: socket.socket) -> None:
        request = _read_request(connection)
        if request is None:
            return
        head, body = request
        method, path, _ = head.split(b"\r\n")[0].decode().split(" ", 2)
        headers = [
            (name.strip().decode(), value.strip().decode())
            for name, _, value in (line.partition(b":") for line in head.split(b"\r\n")[1:])
            if name.strip().lower() not in self._HOP_BY_HOP
        ]
        # The upstream sees the proxy's own origin, so the links it hands out lead back here
        # (the only origin the gateway trusts with loopback addresses).
        headers.append(("Host", self.url.removeprefix("http://")))
        submit = method == "POST" and path == "/v1/videos"
        with self._lock:
            response = self._target.request(method, path, headers=headers, content=body)
            if submit:
                self.submits += 1
                if self.submits in self._lose:
                    self.lost_ids.append(response.json()["id"])
                    return  # the upstream has the job; the answer is lost
        lines = [f"HTTP/1.1 {response.status_code} {response.reason_phrase}"]
        lines += [
            f"{name}: {value}"
            for name, value in response.headers.items()
            if name.lower().encode() not in self._HOP_BY_HOP and name.lower() != "content-encoding"
        ]
        lines += [f"content-length: {len(response.content)}", "connection: close"]
        connection.sendall("\r\n".join(lines).encode() + b"\r\n\r\n" + response.content)


def _read_request(connection: socket.socket) -> tuple[bytes, bytes] | None:
    """One request's head and body (by Content-Length); None when the peer went away."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = connection.recv(65536)
        if not chunk:
            return None
        body += chunk
    return head, body
