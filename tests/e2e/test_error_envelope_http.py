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


def test_a_locked_database_is_503_and_nothing_is_lost(gateway, sandbox):
    """Another process holds SQLite's write lock past the busy timeout: 503, then all is well."""
    import sqlite3

    key = gateway.new_key()
    auth = {"Authorization": f"Bearer {key}"}
    path = gateway.settings.database.url.removeprefix("sqlite:///")
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        body = {"model": "doubao-seedance-2-0-fast-260128", "prompt": "Locked out"}
        resp = gateway.http.post("/v1/videos", json=body, headers=auth)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert resp.status_code == 503
    assert resp.json()["error"]["code"] == "service_unavailable"
    assert resp.headers["retry-after"] == "1"
    assert sandbox.stats()["create"] == 0
    assert gateway.http.get("/v1/videos", headers=auth).json()["data"] == []
    again = gateway.http.post("/v1/videos", json=body, headers=auth)
    assert again.status_code == 200


def test_non_ascii_admin_token_is_401(gateway: GatewayHandle):
    resp = gateway.http.get("/admin/teams", headers={"Authorization": b"Bearer caf\xe9-token"})
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "invalid_admin_token"
