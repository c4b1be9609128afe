"""A team lead (signed in with a team key) sees only its own team, read-only; every page fits a
phone-width screen. Chromium via Playwright against a real gateway and sandbox."""

from __future__ import annotations

import re

import httpx
from playwright.sync_api import Browser, Page, expect

from tests.conftest import ADMIN_TOKEN, FAST_MODEL, GatewayHandle, wait_for
from tests.dashboard.browser import browser, shoot
from tests.dashboard.support import csrf_of
from tests.dashboard.support import sign_in as http_sign_in

__all__ = ["browser"]

PHONE = {"width": 390, "height": 844}


def make_video(gateway: GatewayHandle, key: str, prompt: str) -> str:
    video = gateway.client(key).videos.create(
        model=FAST_MODEL, prompt=prompt, extra_body={"seed": 2, "return_last_frame": True}
    )
    wait_for(lambda: gateway.job(video.id).status == "completed")
    return video.id


def sign_in(page: Page, base: str, token: str) -> None:
    page.goto(base + "/dashboard/signin")
    page.get_by_label("Token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(base + "/dashboard/")


def test_a_team_lead_sees_only_its_team(browser: Browser, gateway: GatewayHandle) -> None:
    base = gateway.url
    lead_key = gateway.new_key("acme", "lead")
    other_key = gateway.new_key("globex", "ci")
    mine = make_video(gateway, lead_key, "acme's ad")
    theirs = make_video(gateway, other_key, "globex's secret")
    gateway.admin(
        "PUT",
        "/admin/budgets",
        json={"scope": "team", "team": "globex", "window": "month", "limit_usd": 9},
    )

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    sign_in(page, base, lead_key)
    expect(page.locator(".role")).to_have_text("team lead (read-only)")
    expect(page.get_by_role("heading", name="Organisation")).to_have_count(0)
    expect(page.locator("main")).to_contain_text("acme")
    expect(page.locator("main")).not_to_contain_text("globex")
    expect(page.locator("#jobs-24h")).to_have_text("1 job")
    shoot(page, "lead-overview")

    page.get_by_role("link", name="Videos").click()
    expect(page.get_by_role("link", name=f"Video {mine}")).to_be_visible()
    expect(page.get_by_role("link", name=f"Video {theirs}")).to_have_count(0)
    expect(page.get_by_label("Team")).to_have_count(0)  # no team filter to widen the view

    # Another team's video, its content and its thumbnail are simply not there.
    for path in (f"/dashboard/videos/{theirs}", f"/dashboard/videos/{theirs}/content"):
        response = page.goto(base + path)
        assert response is not None and response.status == 404, path
    page.goto(base + "/dashboard/videos?team=globex")
    expect(page.locator("main")).not_to_contain_text(theirs)

    # Read-only: no forms to change anything, and posting anyway is refused.
    page.goto(base + "/dashboard/teams")
    expect(page.get_by_role("button", name="Create team")).to_have_count(0)
    expect(page.get_by_role("button", name=re.compile("^Revoke"))).to_have_count(0)
    expect(page.locator("main")).not_to_contain_text("globex")
    token = csrf_of(page.content())
    refused = page.request.post(base + "/dashboard/teams", form={"name": "x", "csrf": token})
    assert refused.status == 403
    assert [t["name"] for t in gateway.admin("GET", "/admin/teams").json()["data"]] == [
        "acme",
        "globex",
    ]

    # Revoking the lead's key ends its session.
    [key] = [k for k in gateway.admin("GET", "/admin/keys?team=acme").json()["data"]]
    gateway.admin("POST", f"/admin/keys/{key['id']}/revoke")
    page.goto(base + "/dashboard/")
    expect(page).to_have_url(re.compile(r"/dashboard/signin"))
    context.close()


def test_every_page_fits_a_phone(browser: Browser, gateway: GatewayHandle) -> None:
    base = gateway.url
    key = gateway.new_key("acme", "phone")
    video = make_video(gateway, key, "a small screen")
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    page = context.new_page()
    sign_in(page, base, ADMIN_TOKEN)
    for name, path in (
        ("phone-overview", "/dashboard/"),
        ("phone-teams", "/dashboard/teams"),
        ("phone-videos", "/dashboard/videos"),
        ("phone-video", f"/dashboard/videos/{video}"),
        ("phone-jobs", "/dashboard/jobs"),
    ):
        page.goto(base + path)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{path} is {overflow} px wider than the phone"
        unnamed = page.evaluate(
            """() => [...document.querySelectorAll('button, input:not([type=hidden]), select, a')]
                .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                              && !el.textContent.trim()).map(el => el.outerHTML)"""
        )
        assert unnamed == [], f"{path}: controls without an accessible name: {unnamed}"
        shoot(page, name)
    context.close()


def test_sign_in_with_a_team_key_can_be_turned_off(gateway_factory: object) -> None:
    gateway: GatewayHandle = gateway_factory(dashboard={"team_leads": False})  # type: ignore[operator]
    key = gateway.new_key("acme")
    with httpx.Client(base_url=gateway.url) as http:
        assert http_sign_in(http, key).status_code == 401
        assert http_sign_in(http, ADMIN_TOKEN).status_code == 303
