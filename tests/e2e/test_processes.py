"""Real gateway processes: a kill -9 mid-download loses nothing, and two runners sharing one
SQLite file never download the same job twice."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest
from openai import OpenAI

from gateway.sandbox.state import expected_video_bytes
from tests.conftest import FAST_MODEL, SandboxHandle, wait_for
from tests.processes import GatewayProcess, start_worker, write_config


def process_config(tmp_path: Path, sandbox: SandboxHandle, **jobs: Any) -> Path:
    return write_config(
        tmp_path / "config.toml",
        {
            "database": {"url": f"sqlite:///{tmp_path}/gateway.db"},
            "storage": {"url": f"file://{tmp_path}/blobs"},
            "upstream": {"base_url": sandbox.url, "sandbox": True},
            "jobs": {
                "poll_min_seconds": 0.05,
                "poll_max_seconds": 0.2,
                "idle_seconds": 0.02,
                "poll_after_ms": 20,
                "refresh_after_seconds": 0.0,
                **jobs,
            },
            "log": {"level": "warning"},
        },
    )


@pytest.fixture
def processes(tmp_path: Path):
    started: list[GatewayProcess] = []

    def start(config: Path) -> GatewayProcess:
        proc = GatewayProcess(config, tmp_path / f"gateway-{len(started)}.log").start()
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


def temp_files(tmp_path: Path) -> list[Path]:
    tmp = tmp_path / "blobs" / "tmp"
    return list(tmp.iterdir()) if tmp.exists() else []


def objects(tmp_path: Path) -> list[Path]:
    return [p for p in (tmp_path / "blobs" / "objects").rglob("*") if p.is_file()]


def test_kill_9_mid_download_then_restart(tmp_path: Path, sandbox: SandboxHandle, processes):
    sandbox.configure(video_bytes=2 * 1024 * 1024)
    sandbox.fault(op="file", kind="slow", delay=0.1, times=1)  # ~3 s for 32 chunks
    config = process_config(
        tmp_path, sandbox, lease_seconds=1.5, temp_max_age_seconds=2.0, sweep_interval_seconds=0.5
    )
    first = processes(config)
    key = first.new_key()
    video = OpenAI(base_url=f"{first.url}/v1", api_key=key, max_retries=0).videos.create(
        model=FAST_MODEL, prompt="Interrupted"
    )
    wait_for(lambda: any(p.stat().st_size > 0 for p in temp_files(tmp_path)))
    first.kill()
    assert temp_files(tmp_path), "a partial download was in progress"
    assert objects(tmp_path) == []

    second = processes(config)
    with OpenAI(base_url=f"{second.url}/v1", api_key=key, max_retries=0) as client:
        done = client.videos.poll(video.id, poll_interval_ms=50)
        assert done.status == "completed"
        upstream_id = sandbox.server.call(_only_job_id(sandbox))
        content = client.videos.download_content(video.id).content
    assert content == expected_video_bytes(sandbox.job(upstream_id))
    assert len(objects(tmp_path)) == 1
    assert sandbox.stats()["create_accepted"] == 1
    wait_for(lambda: temp_files(tmp_path) == [], timeout=20)


async def _only_job_id(sandbox: SandboxHandle) -> str:
    jobs = sandbox.server.config.app.state.sandbox.jobs
    assert len(jobs) == 1
    return next(iter(jobs))


def test_two_runners_never_download_a_job_twice(tmp_path, sandbox: SandboxHandle, processes):
    config = process_config(tmp_path, sandbox)
    one, two = processes(config), processes(config)
    key = one.new_key()
    ids = []
    for index in range(12):
        proc = one if index % 2 else two
        with OpenAI(base_url=f"{proc.url}/v1", api_key=key, max_retries=0) as client:
            ids.append(client.videos.create(model=FAST_MODEL, prompt=f"clip {index}").id)
    with OpenAI(base_url=f"{one.url}/v1", api_key=key, max_retries=0) as client:
        for video_id in ids:
            assert client.videos.poll(video_id, poll_interval_ms=50).status == "completed"
    stats = sandbox.stats()
    assert stats["create_accepted"] == 12
    assert stats["file"] + stats["content"] == 12


def test_separate_worker_process_runs_the_jobs(tmp_path, sandbox: SandboxHandle, processes):
    api = processes(process_config(tmp_path, sandbox, runner=False))
    key = api.new_key()
    with OpenAI(base_url=f"{api.url}/v1", api_key=key, max_retries=0) as client:
        video = client.videos.create(model=FAST_MODEL, prompt="Worker")
        # Without a runner the API only learns the upstream finished; it cannot store the video.
        wait_for(lambda: client.videos.retrieve(video.id).progress == 99)
        assert client.videos.retrieve(video.id).status == "in_progress"
        worker = start_worker(tmp_path / "config.toml", tmp_path / "worker.log")
        try:
            done = client.videos.poll(video.id, poll_interval_ms=50)
        finally:
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=30) == 0
        assert done.status == "completed"
        assert client.videos.download_content(video.id).content[4:8] == b"ftyp"
