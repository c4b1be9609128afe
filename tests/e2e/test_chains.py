"""Long videos over HTTP with the official SDK: one request past the per-job maximum becomes
segments chained through their last frames, priced up front, joined losslessly into one MP4.

The sandbox renders each segment with a frame counter, so the joined video's counters prove the
chain: every segment starts on the previous segment's last frame (the repeated boundary frame).
"""

from __future__ import annotations

import itertools
from typing import Any

import openai
import pytest

from gateway.sandbox.state import SandboxState, expected_last_frame_bytes
from tests.conftest import FAST_MODEL, GatewayHandle, SandboxHandle
from tests.video_files import audio_seconds, decoded_counters, streams_of

FPS = 8  # few frames keep rendering and decoding quick; one frame = 125 ms


@pytest.fixture(autouse=True)
def quick_frames(sandbox: SandboxHandle) -> None:
    sandbox.configure(frame_rate=FPS)


def state_of(sandbox: SandboxHandle) -> SandboxState:
    state: SandboxState = sandbox.server.config.app.state.sandbox
    return state


def upstream_bodies(sandbox: SandboxHandle) -> list[dict[str, Any]]:
    return [job.body for job in state_of(sandbox).jobs.values()]


def chained_counters(durations: list[int]) -> list[int]:
    """The counters a chain of ``durations`` shows: each segment repeats the previous last."""
    counters: list[int] = []
    start = 0
    for seconds in durations:
        counters += list(range(start, start + seconds * FPS))
        start += seconds * FPS - 1
    return counters


def test_45_seconds_are_three_chained_segments_in_one_mp4(
    gateway: GatewayHandle, sandbox: SandboxHandle
) -> None:
    client = gateway.client()
    created = client.videos.with_raw_response.create(
        model=FAST_MODEL,
        prompt="Seconds 0-45: a lighthouse at dusk",
        seconds="45",  # type: ignore[arg-type]
        extra_body={"resolution": "720p", "seed": 11},
    )
    assert created.headers["x-gateway-cost-usd"] == "5.085"  # 45 x 0.113, reserved up front
    video = created.parse()
    assert video.seconds == "45"
    done = client.videos.poll(video.id, poll_interval_ms=20)
    assert done.status == "completed", done.error
    extra = done.model_extra or {}
    assert extra["cost_usd"] == "5.085"
    assert [s["duration"] for s in extra["segments"]] == [15, 15, 15]
    assert {s["status"] for s in extra["segments"]} == {"completed"}

    jobs = list(state_of(sandbox).jobs.values())
    assert len(jobs) == 3 and sandbox.stats()["create_accepted"] == 3
    assert [job.params.duration for job in jobs] == [15, 15, 15]
    assert jobs[0].body["content"] == [] and jobs[0].body["return_last_frame"] is True
    for previous, job in itertools.pairwise(jobs):
        first_frame = job.params.first_frame_url
        assert first_frame is not None
        assert state_of(sandbox)._job_behind_frame(first_frame) is previous
        assert job.body["seed"] == 11
    assert jobs[2].body["return_last_frame"] is False  # the client did not ask for it

    content = client.videos.download_content(video.id).content
    streams = streams_of(content)
    assert (streams.video_codec, streams.audio_codec) == ("h264", None)
    assert abs(streams.seconds - 45) <= 3 / FPS  # within a frame per boundary
    assert decoded_counters(content) == chained_counters([15, 15, 15])
    assert extra["delivered_duration_ms"] == pytest.approx(45_000, abs=3 * 1000 / FPS)
    assert gateway.admin("GET", "/admin/audit").json() == {"clean": True, "problems": []}


def test_45_seconds_with_audio(gateway: GatewayHandle, sandbox: SandboxHandle) -> None:
    client = gateway.client()
    video = client.videos.create_and_poll(
        model=FAST_MODEL,
        prompt="Rain on a tin roof",
        seconds="45",  # type: ignore[arg-type]
        extra_body={"generate_audio": True, "resolution": "720p", "return_last_frame": True},
        poll_interval_ms=20,
    )
    assert video.status == "completed", video.error
    assert (video.model_extra or {})["cost_usd"] == "5.085"
    jobs = list(state_of(sandbox).jobs.values())
    assert [job.params.duration for job in jobs] == [15, 15, 15]
    assert all(job.params.generate_audio for job in jobs)
    content = client.videos.download_content(video.id).content
    streams = streams_of(content)
    assert streams.audio_codec == "aac"
    assert abs(streams.seconds - 45) <= 3 / FPS
    assert audio_seconds(content) == pytest.approx(45, abs=0.25)  # decodes to the end, in sync
    assert decoded_counters(content) == chained_counters([15, 15, 15])
    frame = client.videos.download_content(video.id, variant="thumbnail").content
    assert frame == expected_last_frame_bytes(jobs[2])  # the final segment's last frame


def test_storyboard_segments(gateway: GatewayHandle, sandbox: SandboxHandle) -> None:
    client = gateway.client()
    video = client.videos.create(
        model=FAST_MODEL,
        prompt="A day at the harbour",
        extra_headers={"Content-Type": "application/json"},
        extra_body={
            "resolution": "480p",
            "segments": [
                {"prompt": "Seconds 0-8: boats leave at dawn", "duration": 8},
                {"prompt": "Seconds 8-12: gulls over the water", "duration": 4},
            ],
        },
    )
    assert video.seconds == "12"
    assert (video.model_extra or {})["cost_usd"] == "0.66"  # 12 x 0.055
    done = client.videos.poll(video.id, poll_interval_ms=20)
    assert done.status == "completed", done.error
    bodies = upstream_bodies(sandbox)
    assert [(b["prompt"], b["duration"]) for b in bodies] == [
        ("Seconds 0-8: boats leave at dawn", 8),
        ("Seconds 8-12: gulls over the water", 4),
    ]
    assert all("segments" not in body for body in bodies)
    content = client.videos.download_content(video.id).content
    assert decoded_counters(content) == chained_counters([8, 4])


def test_failure_in_segment_two_charges_segment_one_only(
    gateway: GatewayHandle, sandbox: SandboxHandle
) -> None:
    sandbox.fault(op="create", kind="fail_job", after=1, error_message="content policy")
    client = gateway.client()
    video = client.videos.create(
        model=FAST_MODEL,
        prompt="A storm",
        seconds="30",  # type: ignore[arg-type]
        extra_body={"resolution": "720p"},
    )
    assert (video.model_extra or {})["cost_usd"] == "3.39"  # 30 x 0.113 reserved
    done = client.videos.poll(video.id, poll_interval_ms=20)
    assert done.status == "failed"
    assert done.error is not None
    assert done.error.message.startswith("Segment 2 of 2 failed: content policy")
    extra = done.model_extra or {}
    assert extra["cost_usd"] == "1.695"  # segment 1: 15 x 0.113; segment 2 refunded
    assert [s["status"] for s in extra["segments"]] == ["completed", "failed"]
    assert sandbox.stats()["create_accepted"] == 2
    usage = gateway.admin("GET", "/admin/usage", params={"team": "team-a"}).json()
    assert "1.695" in str(usage), usage
    assert gateway.admin("GET", "/admin/audit").json() == {"clean": True, "problems": []}
    with pytest.raises(openai.BadRequestError):
        client.videos.download_content(video.id)


@pytest.mark.parametrize(
    ("extra", "param", "fragment"),
    [
        ({"duration": 61}, "duration", "up to 60 seconds"),
        (
            {"segments": [{"prompt": "a", "duration": 8}, {"prompt": "b", "duration": 8}]},
            "segments",
            None,
        ),
        (
            {
                "duration": 20,
                "segments": [{"prompt": "a", "duration": 8}, {"prompt": "b", "duration": 8}],
            },
            "segments",
            "must agree",
        ),
        (
            {"segments": [{"prompt": "a", "duration": 20}, {"prompt": "b"}]},
            "segments[0].duration",
            None,
        ),
        ({"segments": [{"prompt": "only", "duration": 8}]}, "segments", "from 2"),
    ],
)
def test_chained_requests_are_validated(
    gateway: GatewayHandle,
    sandbox: SandboxHandle,
    extra: dict[str, Any],
    param: str,
    fragment: str | None,
) -> None:
    client = gateway.client()
    body = {"model": FAST_MODEL, "prompt": "x", **extra}
    response = client._client.post(  # raw JSON, as curl would send it
        f"{client.base_url}videos",
        json=body,
        headers={"Authorization": f"Bearer {client.api_key}"},
    )
    if fragment is None and param == "segments":
        assert response.status_code == 200  # 8 + 8: a valid storyboard
        return
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param
    if fragment:
        assert fragment in error["message"]
    assert sandbox.stats()["create"] == 0


def test_identical_seeded_chains_dedupe_as_one_request(
    gateway: GatewayHandle, sandbox: SandboxHandle
) -> None:
    client = gateway.client()
    body: dict[str, Any] = {"resolution": "480p", "seed": 5}
    first = client.videos.create(model=FAST_MODEL, prompt="Twice", seconds="20", extra_body=body)  # type: ignore[arg-type]
    again = client.videos.with_raw_response.create(
        model=FAST_MODEL,
        prompt="Twice",
        seconds="20",  # type: ignore[arg-type]
        extra_body=body,
    )
    assert again.headers["x-gateway-cache"] in ("coalesced", "hit")
    second = again.parse()
    for video in (first, second):
        done = client.videos.poll(video.id, poll_interval_ms=20)
        assert done.status == "completed", done.error
        assert [s["status"] for s in (done.model_extra or {})["segments"]] == ["completed"] * 2
    assert sandbox.stats()["create_accepted"] == 2  # one chain of two segments, not two chains
    assert (
        client.videos.download_content(first.id).content
        == client.videos.download_content(second.id).content
    )
    later = client.videos.with_raw_response.create(
        model=FAST_MODEL,
        prompt="Twice",
        seconds="20",  # type: ignore[arg-type]
        extra_body=body,
    )
    assert later.headers["x-gateway-cache"] == "hit"
    assert sandbox.stats()["create_accepted"] == 2
