"""The dashboard's guards over plain HTTP: sign-in required everywhere, CSRF on every form,
cookie flags, strict headers, off without an admin token, and /v1 untouched by any of it."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.app import create_app
from gateway.settings import Secret
from gateway.web.dashboard.session import COOKIE, Signer
from tests.conftest import (
    ADMIN_TOKEN,
    FAST_MODEL,
    GatewayHandle,
    SandboxHandle,
    gateway_settings,
    wait_for,
)
from tests.dashboard.support import csrf_of, sign_in
from tests.servers import ServerThread

PAGES = ["/dashboard/", "/dashboard/teams", "/dashboard/videos", "/dashboard/jobs"]
FORMS = [
    "/dashboard/teams",
    "/dashboard/keys",
    "/dashboard/keys/key_x/revoke",
    "/dashboard/budgets",
    "/dashboard/budgets/clear",
    "/dashboard/signout",
    "/dashboard/jobs/video_x/resolve",
]


@pytest.fixture
def http(gateway: GatewayHandle) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, timeout=30) as client:
        yield client


def test_every_page_redirects_to_sign_in_without_a_session(
    gateway: GatewayHandle, http: httpx.Client
) -> None:
    video = _one_video(gateway)
    for path in [*PAGES, f"/dashboard/videos/{video}", f"/dashboard/videos/{video}/content"]:
        response = http.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/dashboard/signin?next=%2Fdashboard"), path
    for path in FORMS:
        response = http.post(path, data={"name": "x"})
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/dashboard/signin"), path


def test_forged_tampered_and_expired_sessions_are_refused(
    gateway: GatewayHandle, http: httpx.Client
) -> None:
    signer = Signer(ADMIN_TOKEN)
    _, good = signer.issue("admin", now=0, lifetime=10**10)
    payload, mac = good.split(".")
    _, expired = signer.issue("admin", now=0, lifetime=60)
    _, other_secret = Signer("another-token").issue("admin", now=0, lifetime=10**10)
    for value in (f"{payload}.{mac[:-2]}xx", expired, other_secret, "garbage", ""):
        http.cookies.set(COOKIE, value, path="/dashboard")
        assert http.get("/dashboard/").status_code == 303, value
    http.cookies.set(COOKIE, good, path="/dashboard")
    assert http.get("/dashboard/").status_code == 200


def test_sign_in_sets_a_strict_http_only_expiring_cookie(
    gateway: GatewayHandle, http: httpx.Client
) -> None:
    response = sign_in(http, ADMIN_TOKEN)
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard/"
    [cookie] = [c for c in response.headers.get_list("set-cookie") if c.startswith(COOKIE + "=")]
    flags = {part.strip().split("=")[0].lower(): part for part in cookie.split(";")[1:]}
    assert "httponly" in flags
    assert flags["samesite"].strip().lower() == "samesite=strict"
    assert flags["path"].strip() == "Path=/dashboard"
    assert flags["max-age"].strip() == "Max-Age=43200"  # dashboard.session_hours = 12
    assert "secure" not in flags  # plain HTTP here; Secure whenever the request is HTTPS
    page = http.get("/dashboard/")
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp
    assert "frame-ancestors 'none'" in csp
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["cache-control"] == "no-store"
    assert "<script" not in page.text and "style=" not in page.text


def test_sign_in_needs_its_form_token_and_the_right_secret(
    gateway: GatewayHandle, http: httpx.Client
) -> None:
    no_form = http.post("/dashboard/signin", data={"token": ADMIN_TOKEN, "csrf": "x"})
    assert no_form.status_code == 403
    assert COOKIE not in no_form.cookies
    wrong = sign_in(http, "wrong-token")
    assert wrong.status_code == 401
    assert COOKIE not in http.cookies


def test_every_form_needs_the_sessions_csrf_token(
    gateway: GatewayHandle, http: httpx.Client
) -> None:
    sign_in(http, ADMIN_TOKEN)
    teams_page = http.get("/dashboard/teams")
    token = csrf_of(teams_page.text)
    for path in FORMS:
        altered = token[:-1] + ("A" if token[-1] != "A" else "B")
        for data in ({"name": "evil"}, {"name": "evil", "csrf": altered}):
            response = http.post(path, data=data)
            assert response.status_code == 403, path
            assert "did not come from this dashboard" in response.text
    assert gateway.admin("GET", "/admin/teams").json()["data"] == []
    # Another session's token does not work either.
    with httpx.Client(base_url=gateway.url) as other:
        sign_in(other, ADMIN_TOKEN)
        stolen = csrf_of(other.get("/dashboard/teams").text)
    assert http.post("/dashboard/teams", data={"name": "evil", "csrf": stolen}).status_code == 403
    made = http.post("/dashboard/teams", data={"name": "good", "csrf": token})
    assert made.status_code == 201
    assert [t["name"] for t in gateway.admin("GET", "/admin/teams").json()["data"]] == ["good"]


def test_dashboard_forms_validate_like_the_api(gateway: GatewayHandle, http: httpx.Client) -> None:
    sign_in(http, ADMIN_TOKEN)
    token = csrf_of(http.get("/dashboard/teams").text)
    gateway.new_key("acme")
    cases: list[tuple[dict[str, Any], dict[str, Any], int]] = [
        (
            {"owner": "team:acme", "window": "month", "limit_usd": "-1"},
            {"scope": "team", "team": "acme", "window": "month", "limit_usd": "-1"},
            400,
        ),
        (
            {"owner": "team:nobody", "window": "month", "limit_usd": "1"},
            {"scope": "team", "team": "nobody", "window": "month", "limit_usd": "1"},
            404,
        ),
        (
            {"owner": "team:acme", "window": "week", "limit_usd": "1"},
            {"scope": "team", "team": "acme", "window": "week", "limit_usd": "1"},
            400,
        ),
        (
            {"owner": "team:acme", "window": "day", "limit_usd": "2000000000"},
            {"scope": "team", "team": "acme", "window": "day", "limit_usd": "2000000000"},
            400,
        ),
    ]
    for form, body, status in cases:
        api = gateway.admin("PUT", "/admin/budgets", json=body)
        assert api.status_code == status
        page = http.post("/dashboard/budgets", data={**form, "csrf": token})
        assert page.status_code == status
        message = api.json()["error"]["message"]
        assert _escaped(message) in page.text
    ok = http.post(
        "/dashboard/budgets",
        data={"owner": "team:acme", "window": "day", "limit_usd": "12.5", "csrf": token},
    )
    assert ok.status_code == 200
    [limit] = gateway.admin("GET", "/admin/budgets").json()["data"]
    assert (limit["scope"], limit["window"], limit["limit_micros"]) == ("team", "day", 12_500_000)


def test_the_dashboard_is_off_when_disabled(gateway_factory: Any) -> None:
    handle: GatewayHandle = gateway_factory(dashboard={"enabled": False})
    _assert_off(handle.http)


def test_the_dashboard_is_off_without_an_admin_token(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    settings = dataclasses.replace(gateway_settings(tmp_path, sandbox.url), admin_token=Secret(""))
    server = ServerThread(create_app(settings)).start()
    try:
        with httpx.Client(base_url=server.url) as http:
            _assert_off(http)
            # An empty token must not sign anyone in either.
            assert http.post("/dashboard/signin", data={"token": ""}).status_code == 404
    finally:
        server.stop()


def _assert_off(http: httpx.Client) -> None:
    for path in [*PAGES, "/dashboard/signin", "/dashboard/static/dashboard.css"]:
        response = http.get(path)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "unknown_url"
    assert http.post("/dashboard/signin", data={"token": ADMIN_TOKEN}).status_code == 404


def test_v1_responses_carry_none_of_the_dashboards_headers(gateway: GatewayHandle) -> None:
    key = gateway.new_key("acme")
    listing = gateway.http.get("/v1/videos", headers={"Authorization": f"Bearer {key}"})
    assert listing.status_code == 200
    assert "content-security-policy" not in listing.headers
    assert "set-cookie" not in listing.headers


def _one_video(gateway: GatewayHandle) -> str:
    client = gateway.client(gateway.new_key("acme"))
    video = client.videos.create(model=FAST_MODEL, prompt="a kite", extra_body={"seed": 3})
    wait_for(lambda: gateway.job(video.id).status == "completed")
    return video.id


def _escaped(text: str) -> str:
    return (
        text.replace("&", "&amp;").replace("'", "&#39;").replace('"', "&#34;").replace("<", "&lt;")
    )


def test_hostile_form_bodies_are_refused_before_they_are_buffered(
    gateway: GatewayHandle, http: httpx.Client
) -> None:
    form = http.get("/dashboard/signin")
    token = csrf_of(form.text)
    urlencoded = {"Content-Type": "application/x-www-form-urlencoded"}
    huge = http.post("/dashboard/signin", content=b"token=" + b"a" * 200_000, headers=urlencoded)
    assert huge.status_code == 413

    def endless() -> Iterator[bytes]:  # no Content-Length: refused once 64 KiB have arrived
        for _ in range(1000):
            yield b"a" * 8192

    streamed = http.post("/dashboard/signin", content=endless(), headers=urlencoded)
    assert streamed.status_code == 413
    as_json = http.post("/dashboard/signin", json={"token": ADMIN_TOKEN, "csrf": token})
    assert as_json.status_code == 415
    many = "&".join(f"f{n}=x" for n in range(100))
    assert http.post("/dashboard/signin", content=many, headers=urlencoded).status_code == 400
    assert COOKIE not in http.cookies
    # A repeated field keeps its first value: the token cannot be smuggled in second.
    twice = f"csrf={token}&token=wrong&token={ADMIN_TOKEN}"
    assert http.post("/dashboard/signin", content=twice, headers=urlencoded).status_code == 401


def test_the_cookie_is_secure_behind_a_tls_proxy(gateway: GatewayHandle) -> None:
    # uvicorn trusts X-Forwarded-Proto from 127.0.0.1 (its default forwarded_allow_ips).
    with httpx.Client(base_url=gateway.url, headers={"X-Forwarded-Proto": "https"}) as http:
        form = http.get("/dashboard/signin")
        [pre] = form.headers.get_list("set-cookie")
        assert "; secure" in pre.lower()
        # httpx keeps Secure cookies for https:// URLs: hand it back the way a browser would.
        response = http.post(
            "/dashboard/signin",
            data={"csrf": csrf_of(form.text), "token": ADMIN_TOKEN},
            headers={"Cookie": pre.split(";")[0]},
        )
    assert response.status_code == 303
    [cookie] = [c for c in response.headers.get_list("set-cookie") if c.startswith(COOKIE + "=")]
    assert "; secure" in cookie.lower()


def test_repeated_failed_sign_ins_are_throttled(gateway: GatewayHandle, http: httpx.Client) -> None:
    for _ in range(10):
        assert sign_in(http, "guess").status_code == 401
    refused = sign_in(http, ADMIN_TOKEN)  # even the right token waits now
    assert refused.status_code == 429
    assert "Too many failed sign-ins" in refused.text
    assert COOKIE not in http.cookies
