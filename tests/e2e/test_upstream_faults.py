"""Every upstream fault maps to a precise OpenAI-style error, and nothing is submitted twice."""

from __future__ import annotations

import openai
import pytest

from tests.conftest import FAST_MODEL, GatewayHandle, SandboxHandle, wait_for

BODY = {"model": FAST_MODEL, "prompt": "A lighthouse at dusk"}


def create(gateway: GatewayHandle, key: str | None = None):
    key = key or gateway.new_key()
    return gateway.http.post("/v1/videos", json=BODY, headers={"Authorization": f"Bearer {key}"})


@pytest.mark.parametrize("status", [500, 502, 503])
def test_upstream_5xx_on_create_is_502_and_not_retried(
    gateway: GatewayHandle, sandbox: SandboxHandle, status: int
):
    sandbox.fault(op="create", kind="status", status=status)
    key = gateway.new_key()
    resp = create(gateway, key)
    assert resp.status_code == 502
    error = resp.json()["error"]
    assert error["code"] == "upstream_error"
    assert error["type"] == "upstream_error"
    assert sandbox.stats()["create"] == 1
    listed = gateway.http.get("/v1/videos", headers={"Authorization": f"Bearer {key}"}).json()
    assert listed["data"] == []


def test_upstream_429_passes_retry_after(gateway: GatewayHandle, sandbox: SandboxHandle):
    sandbox.fault(op="create", kind="status", status=429, retry_after=7)
    resp = create(gateway)
    assert resp.status_code == 429
    assert resp.headers["retry-after"] == "7"
    assert resp.json()["error"]["code"] == "rate_limit_exceeded"
    assert sandbox.stats()["create"] == 1


def test_upstream_timeout_on_create_is_an_unknown_outcome_not_retried(gateway_factory, sandbox):
    """The upstream may have the job: not refunded, and the client is told not to retry."""
    gateway = gateway_factory(upstream={"timeout": 0.3})
    sandbox.fault(op="create", kind="timeout", delay=3)
    resp = create(gateway)
    assert resp.status_code == 502
    assert resp.headers["x-should-retry"] == "false"
    assert resp.json()["error"]["code"] == "submit_outcome_unknown"
    assert sandbox.stats()["create"] == 1


def test_upstream_validation_400_keeps_message_without_tid(gateway, sandbox):
    sandbox.fault(op="create", kind="reject", message="the parameter ratio is not valid")
    resp = create(gateway)
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["code"] == "upstream_rejected"
    assert "ratio is not valid" in error["message"]
    assert "tid" not in error["message"]


def test_upstream_auth_failure_is_502_naming_what_to_fix(tmp_path, sandbox, gateway_factory):
    sandbox.configure(api_key="sk-the-right-key")
    gateway = gateway_factory()
    resp = create(gateway)
    assert resp.status_code == 502
    error = resp.json()["error"]
    assert error["code"] == "upstream_auth_error"
    assert "AIHUBMIX_API_KEY" in error["message"]
    assert "sk-" not in error["message"]


def test_upstream_insufficient_balance_is_502_quota(sandbox, gateway_factory):
    sandbox.fault(
        op="create",
        kind="status",
        status=403,
        message="Your account balance is insufficient. Please recharge",
    )
    gateway = gateway_factory()
    resp = create(gateway)
    assert resp.status_code == 502
    assert resp.json()["error"]["code"] == "upstream_quota_error"


def test_poll_failure_does_not_fail_retrieve(gateway: GatewayHandle, sandbox: SandboxHandle):
    sandbox.hold_new_jobs()  # still queued upstream whenever the retrieve comes
    client = gateway.client()
    video = client.videos.create(model=FAST_MODEL, prompt="Resilient")
    sandbox.fault(op="poll", kind="status", status=500, times=0)
    again = client.videos.retrieve(video.id)
    assert again.id == video.id
    assert again.status == "queued"


def test_failed_upstream_job_is_failed_video(gateway: GatewayHandle, sandbox: SandboxHandle):
    sandbox.fault(
        op="create",
        kind="fail_job",
        error_code="OutputVideoSensitiveContentDetected",
        error_message="The output video may contain sensitive content",
    )
    client = gateway.client()
    video = client.videos.create_and_poll(model=FAST_MODEL, prompt="Doomed", poll_interval_ms=20)
    assert video.status == "failed"
    assert video.error is not None
    assert video.error.code == "OutputVideoSensitiveContentDetected"
    with pytest.raises(openai.BadRequestError) as err:
        client.videos.download_content(video.id)
    assert "failed" in err.value.message


def test_download_faults_are_retried_until_stored(gateway: GatewayHandle, sandbox: SandboxHandle):
    sandbox.fault(op="file", kind="status", status=503, times=0)
    sandbox.fault(op="content", kind="status", status=503, times=0)
    client = gateway.client()
    video = client.videos.create(model=FAST_MODEL, prompt="Fetch")
    wait_for(lambda: sandbox.stats()["file"] + sandbox.stats()["content"] >= 2)
    assert client.videos.retrieve(video.id).status == "in_progress"
    sandbox.clear_faults()
    done = client.videos.poll(video.id, poll_interval_ms=20)
    assert done.status == "completed"
    assert client.videos.download_content(video.id).content[4:8] == b"ftyp"
