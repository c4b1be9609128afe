"""Dashboard session cookies and CSRF tokens: signed, expiring, tied to the admin token."""

from __future__ import annotations

from gateway.web.dashboard.auth import _next
from gateway.web.dashboard.session import Signer


def test_a_session_round_trips_until_it_expires() -> None:
    signer = Signer("admin-token")
    session, cookie = signer.issue("lead", now=1000, lifetime=60, team_id="team_a", key_id="key_a")
    assert signer.read(cookie, now=1059) == session
    assert signer.read(cookie, now=1060) is None
    assert session.team_id == "team_a" and not session.is_admin


def test_a_new_admin_token_signs_everyone_out() -> None:
    _, cookie = Signer("old-token").issue("admin", now=0, lifetime=60)
    assert Signer("new-token").read(cookie, now=1) is None


def test_tampering_is_detected() -> None:
    signer = Signer("admin-token")
    _, cookie = signer.issue("lead", now=0, lifetime=60, team_id="team_a", key_id="k")
    forged_payload = Signer("admin-token").issue("admin", now=0, lifetime=60)[1].split(".")[0]
    assert signer.read(forged_payload + "." + cookie.split(".")[1], now=1) is None
    for bad in ("", "a", "a.b.c", "!!!.???", None):
        assert signer.read(bad, now=1) is None


def test_csrf_tokens_belong_to_one_nonce() -> None:
    signer = Signer("admin-token")
    token = signer.csrf_token("nonce-1")
    assert signer.csrf_ok("nonce-1", token)
    assert not signer.csrf_ok("nonce-2", token)
    assert not signer.csrf_ok(None, token)
    assert not signer.csrf_ok("nonce-1", None)
    assert not signer.csrf_ok("nonce-1", token + "x")


def test_after_sign_in_only_dashboard_paths() -> None:
    assert _next("/dashboard/videos?status=failed") == "/dashboard/videos?status=failed"
    for hostile in (
        None,
        "",
        "https://evil.example/",
        "//evil.example/dashboard/",
        "/v1/videos",
        "/dashboard",
        "/dashboard/\\evil",
    ):
        assert _next(hostile) == "/dashboard/"


def test_numbers_carry_their_units() -> None:
    from gateway.web.dashboard.render import format_bytes, format_duration, format_percent

    assert [format_bytes(n) for n in (None, 5, 65_536, 3 * 1024**2)] == [
        "—",
        "5 B",
        "64.0 KiB",
        "3.0 MiB",
    ]
    assert [format_duration(s) for s in (None, 42.4, 200, 7500, 3600)] == [
        "—",
        "42 s",
        "3 min 20 s",
        "2 h 5 min",
        "1 h",
    ]
    assert (format_percent(None), format_percent(0.0312)) == ("—", "3.1 %")


def test_the_sign_in_throttle_counts_failures_per_address_in_a_window() -> None:
    from gateway.web.dashboard.throttle import SignInThrottle

    now = [1000.0]
    throttle = SignInThrottle(limit=3, window=60, monotonic=lambda: now[0])
    for _ in range(3):
        assert throttle.retry_after("10.0.0.1") is None
        throttle.failed("10.0.0.1")
        now[0] += 1
    assert throttle.retry_after("10.0.0.1") == 57.0  # the first failure ages out at 1060
    assert throttle.retry_after("10.0.0.2") is None  # another address is not affected
    now[0] = 1060.0
    assert throttle.retry_after("10.0.0.1") is None
    throttle.failed("10.0.0.1")
    throttle.succeeded("10.0.0.1")  # a success forgets the failures
    assert throttle.retry_after("10.0.0.1") is None
