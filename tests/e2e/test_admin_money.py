"""The money admin API over real HTTP: budget limits for every scope and window, precise
validation errors, usage reports after real videos, and the audit."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from tests.clocks import AnchoredClock
from tests.conftest import FAST_MODEL, GatewayHandle, SandboxHandle

PRICE = 565_000  # doubao-seedance-2-0-fast-260128 at 720p: 0.113 USD/s x 5 s
TEAM = "research"


def key_id_of(gateway: GatewayHandle, team: str = TEAM) -> str:
    keys = gateway.admin("GET", "/admin/keys", params={"team": team}).json()["data"]
    return str(keys[-1]["id"])


def team_id_of(gateway: GatewayHandle, team: str = TEAM) -> str:
    teams = gateway.admin("GET", "/admin/teams").json()["data"]
    return str(next(t["id"] for t in teams if t["name"] == team))


def owner(gateway: GatewayHandle, scope: str) -> dict[str, str]:
    """The body/query fields naming one owner of each scope (the team and key exist)."""
    if scope == "team":
        return {"scope": "team", "team": TEAM}
    if scope == "key":
        return {"scope": "key", "key_id": key_id_of(gateway)}
    return {"scope": "org"}


def assert_error(resp: Any, status: int, param: str | None, code: str) -> None:
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert (error["param"], error["code"]) == (param, code), error
    assert error["message"]


@pytest.fixture
def clock() -> AnchoredClock:
    return AnchoredClock()


@pytest.fixture
def gateway(gateway_factory: Any, clock: AnchoredClock) -> GatewayHandle:
    """A gateway on an anchored clock: budget periods and usage dates never cross midnight."""
    handle: GatewayHandle = gateway_factory(clock=clock)
    return handle


@pytest.fixture
def team_key(gateway: GatewayHandle) -> str:
    return gateway.new_key(TEAM)


class TestLimits:
    @pytest.mark.parametrize("window", ["total", "day", "month"])
    @pytest.mark.parametrize("scope", ["team", "key", "org"])
    def test_set_show_clear(self, gateway: GatewayHandle, team_key: str, scope: str, window: str):
        fields = owner(gateway, scope)
        resp = gateway.admin(
            "PUT", "/admin/budgets", json={**fields, "window": window, "limit_usd": 12.5}
        )
        assert resp.status_code == 200, resp.text
        budget = resp.json()
        expected_id = {"team": team_id_of(gateway), "key": fields.get("key_id"), "org": "org"}
        assert budget["object"] == "budget"
        assert (budget["scope"], budget["scope_id"], budget["window"]) == (
            scope,
            expected_id[scope],
            window,
        )
        assert budget["name"] == {"team": TEAM, "key": "test", "org": None}[scope]
        assert (budget["limit_usd"], budget["limit_micros"]) == ("12.50", 12_500_000)
        assert (budget["spent_usd"], budget["reserved_usd"]) == ("0.00", "0.00")
        assert (budget["remaining_usd"], budget["remaining_micros"]) == ("12.50", 12_500_000)
        clock = gateway.clock
        assert isinstance(clock, AnchoredClock)
        period = {"total": "total", "day": clock.day(), "month": clock.month()}
        assert budget["period"] == period[window]
        assert (budget["resets_at"] is None) == (window == "total")

        shown = gateway.admin("GET", "/admin/budgets").json()
        assert shown["object"] == "list"
        assert shown["data"] == [budget]

        resp = gateway.admin("DELETE", "/admin/budgets", params={**fields, "window": window})
        assert resp.status_code == 200, resp.text
        assert resp.json()["deleted"] is True
        assert gateway.admin("GET", "/admin/budgets").json()["data"] == []
        again = gateway.admin("DELETE", "/admin/budgets", params={**fields, "window": window})
        assert_error(again, 404, None, "not_found")

    @pytest.mark.parametrize(
        ("limit", "micros"),
        [("50", 50_000_000), ("0.0123", 12_300), (7, 7_000_000), (0, 0), ("1e3", 1_000_000_000)],
    )
    def test_amounts_as_numbers_or_strings(
        self, gateway: GatewayHandle, team_key: str, limit: object, micros: int
    ):
        body = {"scope": "org", "window": "total", "limit_usd": limit}
        resp = gateway.admin("PUT", "/admin/budgets", json=body)
        assert resp.status_code == 200, resp.text
        assert resp.json()["limit_micros"] == micros

    def test_put_replaces_the_limit(self, gateway: GatewayHandle, team_key: str):
        for amount in ("5", "9.99"):
            body = {"scope": "team", "team": TEAM, "window": "day", "limit_usd": amount}
            assert gateway.admin("PUT", "/admin/budgets", json=body).status_code == 200
        data = gateway.admin("GET", "/admin/budgets").json()["data"]
        assert [(b["scope"], b["window"], b["limit_usd"]) for b in data] == [
            ("team", "day", "9.99")
        ]

    def test_filters_and_order(self, gateway: GatewayHandle, team_key: str):
        gateway.new_key("design")
        key_id = key_id_of(gateway)
        for body in (
            {"scope": "key", "key_id": key_id, "window": "month", "limit_usd": 1},
            {"scope": "team", "team": "design", "window": "total", "limit_usd": 2},
            {"scope": "team", "team": TEAM, "window": "month", "limit_usd": 3},
            {"scope": "team", "team": TEAM, "window": "total", "limit_usd": 4},
            {"scope": "org", "window": "day", "limit_usd": 5},
        ):
            assert gateway.admin("PUT", "/admin/budgets", json=body).status_code == 200

        def shown(**params: str) -> list[tuple[str, str | None, str]]:
            resp = gateway.admin("GET", "/admin/budgets", params=params)
            assert resp.status_code == 200, resp.text
            return [(b["scope"], b["name"], b["window"]) for b in resp.json()["data"]]

        assert shown() == [
            ("org", None, "day"),
            ("team", "design", "total"),
            ("team", TEAM, "total"),
            ("team", TEAM, "month"),
            ("key", "test", "month"),
        ]
        assert shown(team=TEAM) == [("team", TEAM, "total"), ("team", TEAM, "month")]
        assert shown(scope="team", team="design") == [("team", "design", "total")]
        assert shown(scope="team") == shown()[1:4]
        assert shown(key_id=key_id) == [("key", "test", "month")]
        assert shown(scope="org") == [("org", None, "day")]

    def test_admin_token_required(self, gateway: GatewayHandle):
        for method, path in (
            ("PUT", "/admin/budgets"),
            ("GET", "/admin/budgets"),
            ("DELETE", "/admin/budgets"),
            ("GET", "/admin/usage"),
            ("GET", "/admin/audit"),
        ):
            resp = gateway.http.request(method, path, headers={"Authorization": "Bearer wrong"})
            assert_error(resp, 401, None, "invalid_admin_token")


PUT_ERRORS = [
    ({}, 400, "scope", "missing_required_parameter"),
    ({"scope": "galaxy", "window": "day", "limit_usd": 1}, 400, "scope", "invalid_value"),
    ({"scope": 3, "window": "day", "limit_usd": 1}, 400, "scope", "invalid_type"),
    ({"scope": "team", "window": "day", "limit_usd": 1}, 400, "team", "missing_required_parameter"),
    ({"scope": "team", "team": 7, "window": "day", "limit_usd": 1}, 400, "team", "invalid_type"),
    ({"scope": "team", "team": " ", "window": "day", "limit_usd": 1}, 400, "team", "invalid_value"),
    (
        {"scope": "team", "team": "ghosts", "window": "day", "limit_usd": 1},
        404,
        "team",
        "not_found",
    ),
    (
        {"scope": "key", "window": "day", "limit_usd": 1},
        400,
        "key_id",
        "missing_required_parameter",
    ),
    (
        {"scope": "key", "key_id": "key_nope", "window": "day", "limit_usd": 1},
        404,
        "key_id",
        "not_found",
    ),
    (
        {"scope": "team", "team": TEAM, "key_id": "key_x", "window": "day", "limit_usd": 1},
        400,
        "key_id",
        "conflicting_parameters",
    ),
    (
        {"scope": "org", "team": TEAM, "window": "day", "limit_usd": 1},
        400,
        "team",
        "conflicting_parameters",
    ),
    ({"scope": "org", "limit_usd": 1}, 400, "window", "missing_required_parameter"),
    ({"scope": "org", "window": "week", "limit_usd": 1}, 400, "window", "invalid_value"),
    ({"scope": "org", "window": ["day"], "limit_usd": 1}, 400, "window", "invalid_type"),
    ({"scope": "org", "window": "day"}, 400, "limit_usd", "missing_required_parameter"),
    (
        {"scope": "org", "window": "day", "limit_usd": None},
        400,
        "limit_usd",
        "missing_required_parameter",
    ),
    ({"scope": "org", "window": "day", "limit_usd": -1}, 400, "limit_usd", "invalid_value"),
    ({"scope": "org", "window": "day", "limit_usd": "-0.01"}, 400, "limit_usd", "invalid_value"),
    ({"scope": "org", "window": "day", "limit_usd": "ten"}, 400, "limit_usd", "invalid_value"),
    ({"scope": "org", "window": "day", "limit_usd": "NaN"}, 400, "limit_usd", "invalid_value"),
    ({"scope": "org", "window": "day", "limit_usd": 1e16}, 400, "limit_usd", "invalid_value"),
    ({"scope": "org", "window": "day", "limit_usd": True}, 400, "limit_usd", "invalid_type"),
    ({"scope": "org", "window": "day", "limit_usd": [1]}, 400, "limit_usd", "invalid_type"),
    ({"scope": "org", "window": "day", "limit": 1}, 400, "limit", "unknown_parameter"),
]


@pytest.mark.parametrize(("body", "status", "param", "code"), PUT_ERRORS)
def test_put_validation(
    gateway: GatewayHandle, team_key: str, body: dict[str, Any], status: int, param: str, code: str
):
    assert_error(gateway.admin("PUT", "/admin/budgets", json=body), status, param, code)
    assert gateway.admin("GET", "/admin/budgets").json()["data"] == []


def test_put_body_must_be_a_json_object(gateway: GatewayHandle):
    assert_error(gateway.admin("PUT", "/admin/budgets", json=[1]), 400, None, "invalid_type")
    resp = gateway.admin("PUT", "/admin/budgets", content=b"{")
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "invalid_json"


QUERY_ERRORS = [
    ("GET", "/admin/budgets", {"scope": "galaxy"}, 400, "scope", "invalid_value"),
    ("GET", "/admin/budgets", {"team": "ghosts"}, 404, "team", "not_found"),
    ("GET", "/admin/budgets", {"key_id": "key_nope"}, 404, "key_id", "not_found"),
    ("GET", "/admin/budgets", {"teem": TEAM}, 400, "teem", "unknown_parameter"),
    (
        "GET",
        "/admin/budgets",
        {"team": TEAM, "key_id": "k"},
        400,
        "key_id",
        "conflicting_parameters",
    ),
    (
        "GET",
        "/admin/budgets",
        {"scope": "org", "team": TEAM},
        400,
        "team",
        "conflicting_parameters",
    ),
    ("DELETE", "/admin/budgets", {"window": "day"}, 400, "scope", "missing_required_parameter"),
    (
        "DELETE",
        "/admin/budgets",
        {"scope": "team", "team": TEAM},
        400,
        "window",
        "missing_required_parameter",
    ),
    (
        "DELETE",
        "/admin/budgets",
        {"scope": "team", "window": "day"},
        400,
        "team",
        "missing_required_parameter",
    ),
    (
        "DELETE",
        "/admin/budgets",
        {"scope": "org", "window": "year"},
        400,
        "window",
        "invalid_value",
    ),
    (
        "DELETE",
        "/admin/budgets",
        {"scope": "org", "window": "day", "all": "1"},
        400,
        "all",
        "unknown_parameter",
    ),
    ("GET", "/admin/usage", {}, 400, "team", "missing_required_parameter"),
    ("GET", "/admin/usage", {"team": "ghosts"}, 404, "team", "not_found"),
    ("GET", "/admin/usage", {"team": TEAM, "since": "2026-13-01"}, 400, "since", "invalid_value"),
    ("GET", "/admin/usage", {"team": TEAM, "since": "yesterday"}, 400, "since", "invalid_value"),
    ("GET", "/admin/usage", {"team": TEAM, "by": "week"}, 400, "by", "invalid_value"),
    ("GET", "/admin/usage", {"team": TEAM, "group": "model"}, 400, "group", "unknown_parameter"),
    ("GET", "/admin/audit", {"fix": "1"}, 400, "fix", "unknown_parameter"),
    ("GET", "/admin/audit", {"month": "2026-11"}, 400, "month", "invalid_value"),
    ("GET", "/admin/audit", {"team": "ghosts"}, 404, "team", "not_found"),
    ("GET", "/admin/audit", {"team": TEAM, "month": "2026-13"}, 400, "month", "invalid_value"),
    ("GET", "/admin/audit", {"team": TEAM, "month": "Nov"}, 400, "month", "invalid_value"),
]


@pytest.mark.parametrize(("method", "path", "params", "status", "param", "code"), QUERY_ERRORS)
def test_query_validation(
    gateway: GatewayHandle,
    team_key: str,
    method: str,
    path: str,
    params: dict[str, str],
    status: int,
    param: str,
    code: str,
):
    assert_error(gateway.admin(method, path, params=params), status, param, code)


def test_repeated_query_parameter_is_rejected(gateway: GatewayHandle, team_key: str):
    resp = gateway.admin("GET", "/admin/budgets?team=research&team=design")
    assert_error(resp, 400, "team", "duplicate_parameter")


def test_usage_and_budgets_after_real_videos(
    gateway: GatewayHandle, sandbox: SandboxHandle, clock: AnchoredClock
):
    first, second = gateway.new_key(TEAM, "first"), gateway.new_key(TEAM, "second")
    ids = {k["name"]: k["id"] for k in gateway.admin("GET", "/admin/keys").json()["data"]}
    first_id, second_id = ids["first"], ids["second"]
    limit = {"scope": "team", "team": TEAM, "window": "month", "limit_usd": "10"}
    assert gateway.admin("PUT", "/admin/budgets", json=limit).status_code == 200

    a, b = gateway.client(first), gateway.client(second)
    for client, prompt in ((a, "One"), (a, "Two"), (b, "Three")):
        video = client.videos.create_and_poll(
            model=FAST_MODEL, prompt=prompt, poll_interval_ms=20, extra_body={"seed": 5}
        )
        assert video.status == "completed"
    # The same seeded request again is served from the cache: free, and counted as saved.
    hit = b.videos.create_and_poll(
        model=FAST_MODEL, prompt="Three", poll_interval_ms=20, extra_body={"seed": 5}
    )
    assert hit.status == "completed"
    assert sandbox.stats()["create_accepted"] == 3

    today = clock.day()
    resp = gateway.admin(
        "GET", "/admin/usage", params={"team": TEAM, "since": today, "by": "model"}
    )
    assert resp.status_code == 200, resp.text
    report = resp.json()
    assert (report["object"], report["team"], report["since"], report["by"]) == (
        "list",
        TEAM,
        today,
        "model",
    )
    assert report["data"] == [
        {
            "group": FAST_MODEL,
            "spent_usd": "1.695",
            "spent_micros": 3 * PRICE,
            "reserved_usd": "0.00",
            "reserved_micros": 0,
            "refunded_usd": "0.00",
            "refunded_micros": 0,
            "videos": 3,
            "seconds": 15,
            "saved_usd": "0.565",
            "saved_micros": PRICE,
            "videos_saved": 1,
        }
    ]
    assert report["totals"] == {k: v for k, v in report["data"][0].items() if k != "group"}

    by_key = gateway.admin("GET", "/admin/usage", params={"team": TEAM, "by": "key"}).json()
    assert [
        (r["group"], r["spent_micros"], r["videos"], r["videos_saved"]) for r in by_key["data"]
    ] == sorted([(first_id, 2 * PRICE, 2, 0), (second_id, PRICE, 1, 1)])
    assert by_key["since"] is None
    by_day = gateway.admin("GET", "/admin/usage", params={"team": TEAM, "by": "day"}).json()
    assert [(r["group"], r["spent_usd"]) for r in by_day["data"]] == [(today, "1.695")]
    tomorrow = clock.day(1)
    later = gateway.admin("GET", "/admin/usage", params={"team": TEAM, "since": tomorrow}).json()
    assert later["data"] == []
    assert later["totals"]["spent_micros"] == 0

    budget = gateway.admin("GET", "/admin/budgets", params={"team": TEAM}).json()["data"][0]
    assert (budget["spent_usd"], budget["reserved_usd"], budget["remaining_usd"]) == (
        "1.695",
        "0.00",
        "8.305",
    )
    assert gateway.admin("GET", "/admin/audit").json() == {"clean": True, "problems": []}
    month = datetime.now(UTC).strftime("%Y-%m")
    for params in ({"team": TEAM}, {"team": TEAM, "month": month}):
        team_audit = gateway.admin("GET", "/admin/audit", params=params).json()
        assert team_audit == {"clean": True, "problems": []}


def test_a_limit_set_over_the_api_holds(gateway: GatewayHandle, sandbox: SandboxHandle):
    key = gateway.new_key(TEAM)
    body = {"scope": "team", "team": TEAM, "window": "day", "limit_usd": "1.00"}
    assert gateway.admin("PUT", "/admin/budgets", json=body).status_code == 200
    client = gateway.client(key)
    video = client.videos.create_and_poll(model=FAST_MODEL, prompt="Fits", poll_interval_ms=20)
    assert video.status == "completed"
    auth = {"Authorization": f"Bearer {key}"}
    resp = gateway.http.post(
        "/v1/videos", json={"model": FAST_MODEL, "prompt": "Too much"}, headers=auth
    )
    assert resp.status_code == 429
    assert resp.json()["error"]["code"] == "budget_exceeded"
    assert sandbox.stats()["create_accepted"] == 1

    shown = gateway.admin("GET", "/admin/budgets").json()["data"]
    assert [(b["spent_usd"], b["remaining_usd"]) for b in shown] == [("0.565", "0.435")]
    cleared = gateway.admin(
        "DELETE", "/admin/budgets", params={"scope": "team", "team": TEAM, "window": "day"}
    )
    assert cleared.status_code == 200
    resp = gateway.http.post(
        "/v1/videos", json={"model": FAST_MODEL, "prompt": "Now fine"}, headers=auth
    )
    assert resp.status_code == 200, resp.text
    assert gateway.admin("GET", "/admin/audit").json()["clean"] is True
