"""The envelope over real HTTP for errors raised outside the handlers (routing, methods)."""

from __future__ import annotations

from tests.conftest import GatewayHandle

ENVELOPE_KEYS = {"message", "type", "param", "code"}


def test_unknown_path_is_404_envelope(gateway: GatewayHandle):
    resp = gateway.http.get("/v1/nothing-here")
    assert resp.status_code == 404
    assert set(resp.json()["error"]) == ENVELOPE_KEYS
    assert resp.json()["error"]["code"] == "unknown_url"


def test_wrong_method_is_405_envelope(gateway: GatewayHandle):
    resp = gateway.http.put("/v1/videos")
    assert resp.status_code == 405
    assert set(resp.json()["error"]) == ENVELOPE_KEYS
    assert resp.json()["error"]["code"] == "method_not_allowed"


def test_unknown_video_is_404_envelope(gateway: GatewayHandle):
    key = gateway.new_key()
    resp = gateway.http.get("/v1/videos/video_nope", headers={"Authorization": f"Bearer {key}"})
    assert resp.status_code == 404
    assert resp.json()["error"] == {
        "message": "No video found with id 'video_nope'.",
        "type": "invalid_request_error",
        "param": "video_id",
        "code": "not_found",
    }


def test_admin_without_token_is_401(gateway: GatewayHandle):
    resp = gateway.http.get("/admin/teams")
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "invalid_admin_token"


def test_every_response_carries_a_request_id(gateway: GatewayHandle):
    resp = gateway.http.get("/healthz", headers={"X-Request-Id": "trace-123"})
    assert resp.headers["x-request-id"] == "trace-123"
    assert gateway.http.get("/healthz").headers["x-request-id"].startswith("req_")


def test_readyz_reports_checks(gateway: GatewayHandle):
    resp = gateway.http.get("/readyz")
    assert resp.status_code == 200
    assert resp.json()["checks"]["database"] == "ok"
