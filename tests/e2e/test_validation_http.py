"""Every bad request is a precise 400 over real HTTP, and nothing reaches the upstream."""

from __future__ import annotations

import json

import pytest

from tests.cases import BAD_REQUESTS, BadCase
from tests.conftest import FAST_MODEL, GatewayHandle, SandboxHandle


@pytest.fixture
def auth(gateway: GatewayHandle) -> dict[str, str]:
    return {"Authorization": f"Bearer {gateway.new_key()}"}


def test_there_are_at_least_40_distinct_cases():
    assert len({case.id for case in BAD_REQUESTS}) >= 40
    assert len({json.dumps(case.body, sort_keys=True) for case in BAD_REQUESTS}) >= 40


@pytest.mark.parametrize("case", BAD_REQUESTS, ids=lambda c: c.id)
def test_bad_request_is_rejected_before_upstream(
    gateway: GatewayHandle, sandbox: SandboxHandle, auth: dict[str, str], case: BadCase
):
    resp = gateway.http.post("/v1/videos", json=case.body, headers=auth)
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["param"] == case.param
    assert error["code"] == case.code
    assert error["type"] == "invalid_request_error"
    assert error["message"]
    assert sandbox.stats()["create"] == 0


def test_body_over_limit_is_413(gateway_factory, sandbox: SandboxHandle):
    gateway = gateway_factory(server={"max_body_bytes": 1024})
    headers = {"Authorization": f"Bearer {gateway.new_key()}"}
    body = {"model": FAST_MODEL, "prompt": "x" * 2000}
    resp = gateway.http.post("/v1/videos", json=body, headers=headers)
    assert resp.status_code == 413
    assert resp.json()["error"]["code"] == "payload_too_large"
    assert sandbox.stats()["create"] == 0


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_wrong_content_type_is_415(
    gateway: GatewayHandle, sandbox: SandboxHandle, auth: dict[str, str], content_type: str | None
):
    headers = dict(auth)
    if content_type:
        headers["Content-Type"] = content_type
    resp = gateway.http.post("/v1/videos", content=b"model=x", headers=headers)
    assert resp.status_code == 415
    assert resp.json()["error"]["code"] == "unsupported_media_type"
    assert sandbox.stats()["create"] == 0


def test_invalid_json_is_400(gateway: GatewayHandle, sandbox: SandboxHandle, auth):
    resp = gateway.http.post(
        "/v1/videos", content=b"{not json", headers={**auth, "Content-Type": "application/json"}
    )
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "invalid_json"
    assert sandbox.stats()["create"] == 0


def test_ambiguous_multipart_content_tells_how_to_fix(
    gateway: GatewayHandle, sandbox: SandboxHandle, auth: dict[str, str]
):
    files = [
        ("model", (None, "doubao-seedance-2-0-260128")),
        ("prompt", (None, "x")),
        ("content[][type]", (None, "image_url")),
        ("content[][type]", (None, "video_url")),
        ("content[][image_url][url]", (None, "https://example.com/a.jpg")),
        ("content[][video_url][url]", (None, "https://example.com/b.mp4")),
        ("content[][role]", (None, "first_frame")),
        ("content[][role]", (None, "reference_video")),
    ]
    resp = gateway.http.post("/v1/videos", files=files, headers=auth)
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["code"] == "ambiguous_multipart"
    assert error["param"] == "content"
    assert "application/json" in error["message"]
    assert sandbox.stats()["create"] == 0
