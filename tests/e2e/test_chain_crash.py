"""A real gateway process killed with ``kill -9`` in the middle of a chained video: the
restarted gateway resumes from the last persisted segment and never submits a segment twice."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from tests.conftest import FAST_MODEL, SandboxHandle, wait_for
from tests.e2e.test_processes import process_config, processes  # noqa: F401 - fixture
from tests.processes import GatewayProcess
from tests.sdk import sdk_client
from tests.video_files import decoded_counters, streams_of

FPS = 8


def segment_states(database: Path, video_id: str) -> list[dict[str, object]]:
    """The chain as the gateway persisted it (read-only, straight from its SQLite file)."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
        row = connection.execute("SELECT chain_json FROM jobs WHERE id = ?", (video_id,)).fetchone()
    segments: list[dict[str, object]] = json.loads(row[0])["segments"] if row and row[0] else []
    return segments


def test_kill_9_mid_chain_then_restart_completes_without_a_duplicate_segment(
    tmp_path: Path,
    sandbox: SandboxHandle,
    processes,  # noqa: F811
) -> None:
    sandbox.configure(frame_rate=FPS, run_seconds=1.5)
    config = process_config(tmp_path, sandbox, lease_seconds=1.5)
    first: GatewayProcess = processes(config)
    key = first.new_key()
    with sdk_client(first.url, key) as client:
        video = client.videos.create(
            model=FAST_MODEL,
            prompt="A long walk",
            seconds="40",  # type: ignore[arg-type]
            extra_body={"resolution": "480p"},
        )
    database = tmp_path / "gateway.db"

    def second_segment_running() -> bool:
        segments = segment_states(database, video.id)
        return len(segments) == 3 and segments[1]["upstream_id"] is not None

    wait_for(second_segment_running, timeout=30)
    first.kill()
    assert sandbox.stats()["create_accepted"] == 2

    second = processes(config)
    with sdk_client(second.url, key) as client:
        done = client.videos.poll(video.id, poll_interval_ms=50)
        assert done.status == "completed", done.error
        content = client.videos.download_content(video.id).content
    assert sandbox.stats()["create_accepted"] == 3  # no segment submitted twice
    assert [s["status"] for s in segment_states(database, video.id)] == ["stored"] * 3
    assert abs(streams_of(content).seconds - 40) <= 3 / FPS
    expected: list[int] = []
    start = 0
    for seconds in (14, 13, 13):
        expected += list(range(start, start + seconds * FPS))
        start += seconds * FPS - 1
    assert decoded_counters(content) == expected
