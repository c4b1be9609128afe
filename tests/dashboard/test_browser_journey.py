"""An operator's session in a real browser (Chromium via Playwright) against a real gateway and
sandbox: sign in, create a team and a key, set a budget, make videos with the OpenAI SDK,
watch the overview change, play a video, revoke the key, sign out. Screenshots of each page go
to build/screenshots/ (see docs/dashboard.md)."""

from __future__ import annotations

import re
import time

import openai
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.conftest import ADMIN_TOKEN, FAST_MODEL, GatewayHandle, wait_for
from tests.dashboard.browser import browser, shoot, top_level_boxes

__all__ = ["browser"]


def sign_in(page: Page, base: str, token: str, path: str = "/dashboard/") -> None:
    page.goto(base + path)
    expect(page).to_have_url(re.compile(r"/dashboard/signin\?next="))
    page.get_by_label("Token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(base + path)


def test_an_operator_session_end_to_end(browser: Browser, gateway: GatewayHandle) -> None:
    base = gateway.url
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()

    # Any page without a session sends the browser to sign in, then back where it was going.
    page.goto(base + "/dashboard/videos?status=completed")
    expect(page).to_have_url(re.compile(r"/dashboard/signin\?next=%2Fdashboard%2Fvideos"))
    shoot(page, "signin")
    page.get_by_label("Token").fill("not-the-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("That token is not valid.")
    sign_in(page, base, ADMIN_TOKEN)

    [cookie] = [c for c in context.cookies() if c["name"] == "gw_dashboard"]
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/dashboard"
    assert time.time() + 11 * 3600 < cookie["expires"] < time.time() + 13 * 3600
    assert page.evaluate("document.cookie") == ""  # scripts cannot read it

    # The overview before any video: nothing in the last 24 h.
    expect(page.locator("#jobs-24h")).to_have_text("0 jobs")

    # A team, a key (shown once) and a monthly budget, through the forms.
    page.get_by_role("link", name="Teams & budgets").click()
    page.get_by_label("Team name").fill("studio")
    page.get_by_role("button", name="Create team").click()
    expect(page.get_by_role("status")).to_have_text("Created team studio.")
    page.get_by_label("Team", exact=True).select_option("studio")
    page.get_by_label("Key name").fill("render-farm")
    page.get_by_role("button", name="Create key").click()
    key = page.locator("#new-key").inner_text().strip()
    assert key.startswith("gw-")
    page.get_by_label("For").select_option("team:studio")
    page.get_by_label("Window").select_option("month")
    page.get_by_label("Limit (USD)").fill("1.30")
    page.get_by_role("button", name="Set budget").click()
    expect(page.get_by_role("status")).to_have_text("Set the month budget of team studio to $1.30.")
    page.get_by_label("For").select_option("team:studio")
    page.get_by_label("Window").select_option("day")
    page.get_by_label("Limit (USD)").fill("1.20")
    page.get_by_role("button", name="Set budget").click()
    expect(page.get_by_role("status")).to_have_text("Set the day budget of team studio to $1.20.")
    page.reload()  # the key is shown only on the page that created it
    assert key not in page.content()
    # The same validation as the API: a negative limit is refused with its message.
    page.get_by_label("For").select_option("team:studio")
    page.get_by_label("Limit (USD)").fill("-3")
    page.get_by_role("button", name="Set budget").click()
    expect(page.get_by_role("alert")).to_contain_text("limit_usd")
    shoot(page, "teams")

    # Videos through the official SDK with the key made in the browser.
    client = gateway.client(key)
    first = client.videos.create(
        model=FAST_MODEL,
        prompt="A lighthouse at dusk",
        extra_body={"seed": 5, "return_last_frame": True},
    )
    second = client.videos.create(
        model=FAST_MODEL,
        prompt="A lighthouse at dusk",
        extra_body={"seed": 5, "return_last_frame": True},
    )
    third = client.videos.create(
        model=FAST_MODEL, prompt="A fox in snow", extra_body={"seed": 9, "return_last_frame": True}
    )
    for video in (first, second, third):
        wait_for(lambda v=video: gateway.job(v.id).status == "completed")

    # The overview now counts them; the studio's bars measure against its budgets: $1.13 is
    # 87 % of the month's $1.30 (amber) and 94 % of the day's $1.20 (red).
    page.get_by_role("link", name="Overview").click()
    expect(page.locator("#jobs-24h")).to_have_text("3 jobs")
    cached = int(page.locator("#cache-hits").inner_text().split()[0]) + int(
        page.locator("#cache-coalesced").inner_text().split()[0]
    )
    assert cached == 1
    month = page.get_by_role("img", name="Spend this month per team against each monthly budget")
    expect(month).to_contain_text("studio — $1.13 of $1.30 (87 %)")
    expect(month.locator("rect.fill")).to_have_class("fill warn")
    day = page.get_by_role("img", name="Spend today per team against each daily budget")
    expect(day).to_contain_text("studio — $1.13 of $1.20 (94 %)")
    expect(day.locator("rect.fill")).to_have_class("fill over")
    expect(page.locator("#p95")).to_have_text(re.compile(r"^\d+ s$"))
    shoot(page, "overview")

    # The gallery, filtered by team, then one video's page.
    page.get_by_role("link", name="Videos").click()
    page.get_by_label("Team").select_option("studio")
    page.get_by_role("button", name="Filter").click()
    tiles = page.locator(".gallery .tile")
    expect(tiles).to_have_count(3)
    expect(page.get_by_role("img", name=f"Last frame of {third.id}")).to_be_visible()
    shoot(page, "videos")
    page.get_by_role("link", name=f"Video {first.id}").click()
    expect(page.get_by_role("heading", name=f"Video {first.id}")).to_be_visible()
    expect(page.locator(".timeline")).to_contain_text("admitted")
    expect(page.locator(".timeline")).to_contain_text("stored")
    expect(page.locator(".timeline")).to_contain_text("charged")
    expect(page.get_by_role("table").first).to_contain_text("charge")
    check_playback(page, base, first.id)
    shoot(page, "video")

    page.get_by_role("link", name="Jobs").click()
    expect(page.get_by_role("heading", name="Jobs that need a person")).to_be_visible()

    # Revoking the key in the browser: the SDK's next create is refused.
    page.get_by_role("link", name="Teams & budgets").click()
    page.get_by_role("button", name="Revoke key render-farm of team studio").click()
    expect(page.get_by_role("status")).to_have_text("Key revoked: its next request is refused.")
    with pytest.raises(openai.AuthenticationError):
        client.videos.create(model=FAST_MODEL, prompt="One more", extra_body={"seed": 1})

    # Signing out ends the session: pages send the browser back to sign in.
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(base + "/dashboard/signin")
    page.goto(base + "/dashboard/teams")
    expect(page).to_have_url(re.compile(r"/dashboard/signin\?next=%2Fdashboard%2Fteams"))
    context.close()


def check_playback(page: Page, base: str, video_id: str) -> None:
    """The <video> element plays the stored video (the sandbox renders real H.264 MP4s) from
    the dashboard's content route, which answers Range requests: its currentTime advances."""
    player = page.locator("video#player")
    expect(player).to_have_attribute("src", f"/dashboard/videos/{video_id}/content")
    ranged = page.request.get(
        f"{base}/dashboard/videos/{video_id}/content", headers={"Range": "bytes=0-99"}
    )
    assert ranged.status == 206
    assert ranged.headers["content-range"].startswith("bytes 0-99/")
    stored = page.request.get(f"{base}/dashboard/videos/{video_id}/content").body()
    assert b"moov" in top_level_boxes(stored)
    page.evaluate("document.querySelector('video#player').play()")
    # Polled from Python: the page's CSP (rightly) forbids the eval wait_for_function needs.
    wait_for(lambda: page.evaluate("document.querySelector('video#player').currentTime") > 0.3)
    assert page.evaluate("document.querySelector('video#player').error") is None
