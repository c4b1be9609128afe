"""A real gateway process killed with ``kill -9`` in the middle of a chained video: the
restarted gateway resumes from the last persisted segment, never submits a segment twice, never
charges one twice, and delivers every frame.

The kill lands at a known step, whatever the machine's speed: the sandbox holds every segment
queued until the test finishes it (``SandboxHandle.hold_new_jobs``), so when segment 2's upstream
id is persisted, segment 1 is stored and charged and segment 2 waits upstream until the test
says so."""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import closing
from pathlib import Path
from typing import Any

from tests.conftest import FAST_MODEL, SandboxHandle, wait_for
from tests.e2e.test_processes import (  # noqa: F401 - fixture
    process_config,
    processes,
    run_store,
    spent_per_window,
)
from tests.processes import GatewayProcess
from tests.sdk import sdk_client
from tests.video_files import decoded_counters, streams_of

FPS = 8


def segment_states(database: Path, video_id: str) -> list[dict[str, Any]]:
    """The chain as the gateway persisted it (read-only, straight from its SQLite file)."""
    with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)) as connection:
        row = connection.execute("SELECT chain_json FROM jobs WHERE id = ?", (video_id,)).fetchone()
    segments: list[dict[str, Any]] = json.loads(row[0])["segments"] if row and row[0] else []
    return segments


def upstream_id(database: Path, video_id: str, index: int) -> str | None:
    """Segment ``index``'s upstream id, once the gateway has recorded the upstream's answer."""
    segments = segment_states(database, video_id)
    return segments[index]["upstream_id"] if len(segments) > index else None


def expire_lease(database: Path, video_id: str) -> None:
    """What the dead process's lease comes to after ``jobs.lease_seconds``: run out. The
    processes keep the default 60 s lease, so no step of a live one can outlast its lease on a
    slow machine (a runner that lost its lease mid-submit would see its own segment as an
    interrupted submit); the test ends the dead one's lease instead of waiting a minute."""
    with closing(sqlite3.connect(database, timeout=30)) as connection, connection:
        connection.execute(
            "UPDATE jobs SET locked_until = 0 WHERE id = ? AND locked_until IS NOT NULL",
            (video_id,),
        )


def test_kill_9_mid_chain_then_restart_completes_without_a_duplicate_segment(
    tmp_path: Path,
    sandbox: SandboxHandle,
    processes,  # noqa: F811
) -> None:
    sandbox.configure(frame_rate=FPS)
    sandbox.hold_new_jobs()
    config = process_config(tmp_path, sandbox)
    first: GatewayProcess = processes(config)
    key = first.new_key("team-chain")
    team = run_store(tmp_path, lambda s: s.team_by_name("team-chain"))
    started = time.time()
    with sdk_client(first.url, key) as client:
        video = client.videos.create(
            model=FAST_MODEL,
            prompt="A long walk",
            seconds="40",  # type: ignore[arg-type]
            extra_body={"resolution": "480p"},
        )
    database = tmp_path / "gateway.db"
    planned = segment_states(database, video.id)
    prices = [segment["price_micros"] for segment in planned]
    assert len(prices) == 3 and all(prices)
    total = sum(prices)

    sandbox.finish_now(wait_for(lambda: upstream_id(database, video.id, 0), timeout=60))
    held = wait_for(lambda: upstream_id(database, video.id, 1), timeout=60)
    # The known step: segment 1 stored and charged, segment 2 accepted and held upstream.
    before = segment_states(database, video.id)
    assert [s["status"] for s in before] == ["stored", "queued", "pending"]
    assert sandbox.stats()["create_accepted"] == 2
    first.kill()
    downloads = sandbox.stats()["file"]
    assert spent_per_window(tmp_path, team.id, started, time.time()) == {
        window: (prices[0], total - prices[0]) for window in ("total", "day", "month")
    }

    expire_lease(database, video.id)
    polls = sandbox.stats()["poll"]
    second = processes(config)
    wait_for(lambda: sandbox.stats()["poll"] > polls, timeout=60)  # it polls segment 2 again
    sandbox.configure(queue_seconds=0.05)  # segment 3 runs on its own
    sandbox.finish_now(held)
    with sdk_client(second.url, key) as client:
        done = client.videos.poll(video.id, poll_interval_ms=50)
        assert done.status == "completed", done.error
        content = client.videos.download_content(video.id).content

    # No segment submitted or charged twice, none downloaded again, no money lost.
    assert sandbox.stats()["create_accepted"] == 3
    after = segment_states(database, video.id)
    assert [s["status"] for s in after] == ["stored"] * 3
    assert after[0] == before[0]  # segment 1 as stored before the kill
    assert after[1]["upstream_id"] == held
    # Segment 2's video and last frame, segment 3's video: segment 1 was not fetched again.
    assert (downloads, sandbox.stats()["file"]) == (2, 5)
    assert spent_per_window(tmp_path, team.id, started, time.time()) == {
        window: (total, 0) for window in ("total", "day", "month")
    }
    assert second.admin("GET", "/admin/audit").json()["problems"] == []

    # Every frame delivered, in order: the segments join without a gap or a repeat.
    assert abs(streams_of(content).seconds - 40) <= 3 / FPS
    expected: list[int] = []
    start = 0
    for seconds in (14, 13, 13):
        expected += list(range(start, start + seconds * FPS))
        start += seconds * FPS - 1
    assert decoded_counters(content) == expected
