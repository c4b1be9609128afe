"""The long-running processes settle their heap once started (gateway/gc_tuning.py): start-up
objects frozen out of every collection, young collections after 10,000 net new objects."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gateway import gc_tuning
from gateway.cli import main


def test_settle_heap_freezes_start_up_and_raises_the_young_threshold() -> None:
    # In a child process: freezing this test process's heap would outlive the test.
    code = (
        "import gc, json; import gateway.app; from gateway.gc_tuning import settle_heap;"
        " before = gc.get_freeze_count(); settle_heap();"
        " print(json.dumps([before, gc.get_freeze_count(), gc.get_threshold()]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    before, frozen, threshold = json.loads(done.stdout)
    assert before == 0
    assert frozen > 10_000  # the imports' modules, classes and functions
    assert threshold == [gc_tuning.YOUNG_THRESHOLD, 10, 10]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.mark.parametrize("command", ["serve"])
def test_serve_settles_the_heap_before_running(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    monkeypatch.setenv("AIHUBMIX_API_KEY", "sk-test-not-used")
    monkeypatch.setattr(gc_tuning, "settle_heap", lambda: calls.append("settle"))

    def serving(self: Any, sockets: Any = None) -> None:
        for sock in sockets or ():
            sock.close()
        self.started = True
        calls.append("serve")

    monkeypatch.setattr("uvicorn.Server.run", serving)
    config = tmp_path / "config.toml"
    config.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path}/gateway.db"\n[server]\nport = {free_port()}\n'
    )
    assert main(["--config", str(config), command]) == 0
    assert calls == ["settle", "serve"]
