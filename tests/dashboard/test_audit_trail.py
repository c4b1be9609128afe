"""One audit trail for the three front doors: the admin API, the dashboard and the CLI call the
same use cases, which log each change once to ``gateway.audit`` with the actor — never a key."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest

from gateway.cli import main
from tests.conftest import ADMIN_TOKEN, GatewayHandle
from tests.dashboard.support import csrf_of, sign_in


def audit_lines(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    return [
        (record.getMessage(), record.actor)  # type: ignore[attr-defined]
        for record in caplog.records
        if record.name == "gateway.audit"
    ]


def test_api_and_dashboard_leave_the_same_lines(
    gateway: GatewayHandle, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.audit")
    gateway.admin("POST", "/admin/teams", json={"name": "api-team"})
    made = gateway.admin("POST", "/admin/keys", json={"team": "api-team"}).json()
    gateway.admin("PUT", "/admin/budgets", json={"scope": "org", "window": "day", "limit_usd": 5})
    gateway.admin("DELETE", "/admin/budgets?scope=org&window=day")
    gateway.admin("POST", f"/admin/keys/{made['id']}/revoke")
    api = audit_lines(caplog)
    caplog.clear()

    with httpx.Client(base_url=gateway.url) as http:
        sign_in(http, ADMIN_TOKEN)
        token = csrf_of(http.get("/dashboard/teams").text)
        http.post("/dashboard/teams", data={"name": "ui-team", "csrf": token})
        http.post("/dashboard/keys", data={"team": "ui-team", "name": "", "csrf": token})
        owner = {"owner": "org", "window": "day", "csrf": token}
        http.post("/dashboard/budgets", data={**owner, "limit_usd": "5"})
        http.post("/dashboard/budgets/clear", data=owner)
        [key] = gateway.admin("GET", "/admin/keys?team=ui-team").json()["data"]
        http.post(f"/dashboard/keys/{key['id']}/revoke", data={"csrf": token})
    ui = audit_lines(caplog)

    events = ["team created", "key created", "budget set", "budget cleared", "key revoked"]
    assert api == [(event, "admin-api") for event in events]
    assert ui == [(event, "dashboard") for event in events]
    assert made["key"] not in caplog.text  # the plaintext key is never logged


def test_the_cli_leaves_them_too(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{tmp_path}/gateway.db"\n')
    caplog.set_level(logging.INFO, logger="gateway.audit")
    assert main(["--config", str(config), "teams", "create", "cli-team"]) == 0
    assert main(["--config", str(config), "keys", "create", "--team", "cli-team"]) == 0
    assert (
        main(["--config", str(config), "budgets", "set", "--org", "--window", "day", "--usd", "5"])
        == 0
    )
    assert audit_lines(caplog) == [
        ("team created", "cli"),
        ("key created", "cli"),
        ("budget set", "cli"),
    ]
