"""No silent sandbox (issue #13): `gateway serve` without AIHUBMIX_API_KEY refuses to start
unless the sandbox is asked for; `make run` asks for it, so a fresh clone still just works."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import FAST_MODEL
from tests.processes import free_port

REPO = Path(__file__).resolve().parents[2]


def environment() -> dict[str, str]:
    env = {**os.environ}
    env.pop("AIHUBMIX_API_KEY", None)
    return env


def test_serve_without_a_key_exits_non_zero_naming_both_ways_forward(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "serve", "--port", str(free_port())],
        cwd=tmp_path,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "AIHUBMIX_API_KEY is not set" in done.stderr
    assert "--sandbox" in done.stderr and "upstream.sandbox = true" in done.stderr
    assert not (tmp_path / "data").exists()  # no database, no demo team, no demo key


def test_make_run_asks_for_the_sandbox_and_starts_on_a_fresh_clone(tmp_path: Path) -> None:
    recipe = re.search(r"^run:.*\n\t(.+)$", (REPO / "Makefile").read_text(), re.M)
    # (an optional `--port $(PORT)` follows: tests/unit/test_cli_day_one.py)
    assert recipe is not None and recipe[1].split()[:3] == ["$(BIN)/gateway", "serve", "--sandbox"]
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--sandbox", "--port", str(port)],
            cwd=tmp_path,  # a fresh checkout: no config.toml, no data directory
            env=environment(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        ready = None
        deadline = time.monotonic() + 60
        while ready is None and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1)
                ready = answer.json() if answer.status_code == 200 else None
            except httpx.HTTPError:
                time.sleep(0.1)
        assert ready is not None and ready["upstream"] == "sandbox"
        key = re.search(r"Demo key:\s+(\S+)", log.read_text())
        assert key is not None
        created = httpx.post(
            f"http://127.0.0.1:{port}/v1/videos",
            json={"model": FAST_MODEL, "prompt": "A paper boat"},
            headers={"Authorization": f"Bearer {key[1]}"},
            timeout=30,
        )
        assert created.status_code == 200 and created.json()["status"] in ("queued", "in_progress")
        assert "SANDBOX MODE" in log.read_text()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
