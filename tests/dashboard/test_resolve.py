"""Unknown outcomes settled from the dashboard (the same use case as `gateway jobs resolve`):
a reason is required, the money moves once, the audit stays clean, and only the admin may."""

from __future__ import annotations

import re
from typing import Any

import httpx
from playwright.sync_api import Browser, expect

from tests.conftest import ADMIN_TOKEN, FAST_MODEL, GatewayHandle
from tests.dashboard.browser import browser, shoot
from tests.dashboard.support import csrf_of, sign_in

__all__ = ["browser"]


def unknown_video(gateway: GatewayHandle, key: str) -> str:
    """A video whose submit outcome is unknown: admitted (price reserved), never polled (the
    runner is off), then marked ``submit_unknown`` as a lost answer would leave it."""
    video = gateway.client(key).videos.create(
        model=FAST_MODEL, prompt="lost", extra_body={"seed": 8}
    )
    gateway.server.call(
        gateway.store.update_job(video.id, {"status": "submit_unknown", "next_check_at": None})
    )
    return video.id


def test_an_operator_refunds_and_charges_unknown_outcomes(gateway_factory: Any) -> None:
    gateway: GatewayHandle = gateway_factory(jobs={"runner": False})
    key = gateway.new_key("acme")
    refund_me, charge_me = unknown_video(gateway, key), unknown_video(gateway, key)
    with httpx.Client(base_url=gateway.url) as http:
        sign_in(http, ADMIN_TOKEN)
        page = http.get("/dashboard/jobs")
        assert refund_me in page.text and charge_me in page.text
        token = csrf_of(page.text)
        no_reason = http.post(
            f"/dashboard/jobs/{refund_me}/resolve",
            data={"decision": "refund", "reason": "", "csrf": token},
        )
        assert no_reason.status_code == 400
        assert "reason" in no_reason.text
        assert gateway.job(refund_me).money_state == "reserved"
        for video_id, decision, state in (
            (refund_me, "refund", "refunded"),
            (charge_me, "charge", "charged"),
        ):
            done = http.post(
                f"/dashboard/jobs/{video_id}/resolve",
                data={"decision": decision, "reason": "checked upstream console", "csrf": token},
            )
            assert done.status_code == 303
            assert gateway.job(video_id).money_state == state
        again = http.post(
            f"/dashboard/jobs/{refund_me}/resolve",
            data={"decision": "charge", "reason": "twice", "csrf": token},
        )
        assert again.status_code == 409
        assert gateway.job(refund_me).money_state == "refunded"
        assert not re.search(
            refund_me, http.get("/dashboard/jobs").text.split("Failing downloads")[0]
        )
    assert gateway.admin("GET", "/admin/audit").json()["clean"] is True


def test_a_team_lead_cannot_resolve(gateway_factory: Any) -> None:
    gateway: GatewayHandle = gateway_factory(jobs={"runner": False})
    key = gateway.new_key("acme")
    video_id = unknown_video(gateway, key)
    with httpx.Client(base_url=gateway.url) as http:
        sign_in(http, key)
        page = http.get("/dashboard/jobs")
        assert video_id in page.text and "/resolve" not in page.text
        refused = http.post(
            f"/dashboard/jobs/{video_id}/resolve",
            data={"decision": "refund", "reason": "x", "csrf": csrf_of(page.text)},
        )
        assert refused.status_code == 403
    assert gateway.job(video_id).money_state == "reserved"


def test_refund_from_the_jobs_page_in_a_browser(browser: Browser, gateway_factory: Any) -> None:
    gateway: GatewayHandle = gateway_factory(jobs={"runner": False})
    video_id = unknown_video(gateway, gateway.new_key("acme"))
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(gateway.url + "/dashboard/jobs")
    page.get_by_label("Token").fill(ADMIN_TOKEN)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("table", name="Jobs with an unknown outcome")).to_contain_text(video_id)
    shoot(page, "jobs")
    page.get_by_label(f"Reason for video {video_id}").fill("not in the upstream console")
    page.get_by_role("button", name=f"Refund video {video_id}").click()
    expect(page.get_by_role("status")).to_have_text(f"Video {video_id} refunded.")
    expect(page.get_by_role("table", name="Jobs with an unknown outcome")).to_have_count(0)
    assert gateway.job(video_id).money_state == "refunded"
    context.close()
