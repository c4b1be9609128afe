"""Each fault kind, its op matching and its ``times`` budget (in process; truncation over a
real socket lives in test_server.py)."""

from __future__ import annotations

import httpx
import pytest

from gateway.sandbox import FaultRule, SandboxState
from gateway.sandbox.faults import FaultBook
from tests.sandbox.support import AUTH, FakeClock, SleepRecorder, assert_envelope, body, create


@pytest.mark.parametrize("status", [500, 502, 503, 429])
async def test_status_fault_answers_the_status_once(
    client: httpx.AsyncClient, state: SandboxState, status: int
) -> None:
    state.add_fault(FaultRule(op="create", kind="status", status=status, retry_after=7))
    response = await client.post("/v1/videos", json=body(), headers=AUTH)
    assert_envelope(response, status)
    assert response.headers["retry-after"] == "7"
    assert not state.jobs
    assert (await client.post("/v1/videos", json=body(), headers=AUTH)).status_code == 200
    assert state.counters["create"] == 2
    assert state.counters["create_accepted"] == 1


async def test_status_fault_without_retry_after_and_with_message(
    client: httpx.AsyncClient, state: SandboxState
) -> None:
    state.add_fault(FaultRule(op="poll", kind="status", status=503, message="try later"))
    response = await client.get("/v1/videos/x", headers=AUTH)
    assert_envelope(response, 503, "try later")
    assert "retry-after" not in response.headers


async def test_latency_and_timeout_sleep_then_answer(
    client: httpx.AsyncClient, state: SandboxState, sleeps: SleepRecorder
) -> None:
    state.add_fault(FaultRule(op="create", kind="latency", delay=0.25))
    state.add_fault(FaultRule(op="create", kind="timeout"))
    first = await client.post("/v1/videos", json=body(), headers=AUTH)
    second = await client.post("/v1/videos", json=body(), headers=AUTH)
    assert first.status_code == second.status_code == 200
    assert sleeps.calls == [0.25, 30.0]
    assert len(state.jobs) == 2  # a timed-out create still creates the job


async def test_fail_job_accepts_then_fails(
    client: httpx.AsyncClient, state: SandboxState, clock: FakeClock
) -> None:
    state.add_fault(
        FaultRule(
            op="create",
            kind="fail_job",
            error_code="OutputVideoSensitiveContentDetected",
            error_message="The output video may contain sensitive content.",
        )
    )
    video_id = (await create(client))["id"]
    clock.advance(2)
    assert (await client.get(f"/v1/videos/{video_id}", headers=AUTH)).json()["status"] == (
        "in_progress"
    )
    clock.advance(10)
    doc = (await client.get(f"/v1/videos/{video_id}", headers=AUTH)).json()
    assert doc["status"] == "failed"
    assert doc["error"] == {
        "code": "OutputVideoSensitiveContentDetected",
        "message": "The output video may contain sensitive content.",
    }
    assert "video_url" not in doc
    other = (await create(client))["id"]
    clock.advance(10)
    assert (await client.get(f"/v1/videos/{other}", headers=AUTH)).json()["status"] == ("completed")


async def test_reject_answers_400_with_the_message(
    client: httpx.AsyncClient, state: SandboxState
) -> None:
    state.add_fault(FaultRule(op="create", kind="reject", message="InputTextRiskDetection"))
    response = await client.post("/v1/videos", json=body(), headers=AUTH)
    assert_envelope(response, 400, "InputTextRiskDetection")
    assert state.counters["create"] == 1
    assert state.counters["create_accepted"] == 0


async def test_times_counts_down_and_zero_is_forever(
    client: httpx.AsyncClient, state: SandboxState
) -> None:
    state.add_fault(FaultRule(op="poll", kind="status", status=502, times=2))
    codes = [(await client.get("/v1/videos/x", headers=AUTH)).status_code for _ in range(3)]
    assert codes == [502, 502, 404]
    state.add_fault(FaultRule(op="delete", kind="status", status=500, times=0))
    codes = [(await client.delete("/v1/videos/x", headers=AUTH)).status_code for _ in range(5)]
    assert codes == [500] * 5
    assert len(state.faults) == 1
    assert state.counters["poll"] == 3
    assert state.counters["delete"] == 5


async def test_any_op_hits_every_operation_and_file(
    client: httpx.AsyncClient, state: SandboxState, clock: FakeClock
) -> None:
    video_id = (await create(client))["id"]
    clock.advance(10)
    url = (await client.get(f"/v1/videos/{video_id}", headers=AUTH)).json()["video_url"]
    state.add_fault(FaultRule(op="any", kind="status", status=500, times=5))
    responses = [
        await client.post("/v1/videos", json=body(), headers=AUTH),
        await client.get(f"/v1/videos/{video_id}", headers=AUTH),
        await client.get(f"/v1/videos/{video_id}/content", headers=AUTH),
        await client.get(url),
        await client.delete(f"/v1/videos/{video_id}", headers=AUTH),
    ]
    assert [r.status_code for r in responses] == [500] * 5
    assert not state.faults
    assert state.stats() == {
        "create": 2,
        "create_accepted": 1,
        "poll": 2,
        "content": 1,
        "file": 1,
        "delete": 1,
        "jobs": 1,
    }


async def test_auth_failures_do_not_consume_faults(
    client: httpx.AsyncClient, state: SandboxState
) -> None:
    state.add_fault(FaultRule(op="poll", kind="status", status=500))
    assert (await client.get("/v1/videos/x")).status_code == 401
    assert (await client.get("/v1/videos/x", headers=AUTH)).status_code == 500


def test_kind_specific_rules_skip_other_ops() -> None:
    book = FaultBook()
    book.add(FaultRule(op="any", kind="truncate", truncate_at=10))
    book.add(FaultRule(op="any", kind="fail_job"))
    assert book.take("poll") is None
    assert book.take("create") == FaultRule(op="any", kind="fail_job")
    assert book.take("file") == FaultRule(op="any", kind="truncate", truncate_at=10)
    assert not book


@pytest.mark.parametrize(
    "fields",
    [
        {"op": "upload"},
        {"kind": "explode"},
        {"op": "poll", "kind": "truncate"},
        {"op": "poll", "kind": "fail_job"},
        {"status": 200},
        {"times": -1},
        {"delay": -1.0},
    ],
)
def test_invalid_rules_are_refused(fields: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        FaultRule.from_json(fields)


@pytest.mark.parametrize(
    "data",
    [[], {"nope": 1}, {"status": "500"}, {"times": True}, {"delay": "1"}, {"message": 3}],
)
def test_from_json_checks_fields_and_types(data: object) -> None:
    with pytest.raises(ValueError):
        FaultRule.from_json(data)
