"""The dashboard's <video> element really plays a stored video: a real H.264 MP4 is made by a
real gateway (the upstream's download answered with a committed fixture file, everything else
by the sandbox), stored, and played in Chromium from /dashboard/videos/{id}/content with Range
requests until its currentTime advances."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Request, expect

from gateway.app import create_app
from tests.conftest import (
    ADMIN_TOKEN,
    FAST_MODEL,
    GatewayHandle,
    SandboxHandle,
    gateway_settings,
    wait_for,
)
from tests.dashboard.browser import browser, shoot
from tests.servers import ServerThread

__all__ = ["browser"]

REAL_VIDEO = Path(__file__).resolve().parents[1] / "fixtures" / "media" / "h264-160x90-3s.mp4"


class RealVideoDownloads(httpx.AsyncBaseTransport):
    """The network to the sandbox, except that its video downloads (``/files/*.mp4``) answer
    with a real H.264 MP4."""

    def __init__(self) -> None:
        self._network = httpx.AsyncHTTPTransport()
        self.replaced = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if (
            request.method == "GET"
            and request.url.path.startswith("/files/")
            and request.url.path.endswith(".mp4")
        ):
            self.replaced += 1
            body = REAL_VIDEO.read_bytes()
            return httpx.Response(
                200,
                content=body,
                headers={"Content-Type": "video/mp4", "Content-Length": str(len(body))},
            )
        return await self._network.handle_async_request(request)

    async def aclose(self) -> None:
        await self._network.aclose()


@pytest.fixture
def real_video_gateway(
    tmp_path: Path, sandbox: SandboxHandle
) -> Iterator[tuple[GatewayHandle, RealVideoDownloads]]:
    transport = RealVideoDownloads()
    settings = gateway_settings(tmp_path, sandbox.url)
    server = ServerThread(create_app(settings, transport=transport)).start()
    handle = GatewayHandle(server, settings)
    yield handle, transport
    handle.close()
    server.stop()


def test_the_player_plays_a_stored_video(
    browser: Browser, real_video_gateway: tuple[GatewayHandle, RealVideoDownloads]
) -> None:
    gateway, transport = real_video_gateway
    client = gateway.client(gateway.new_key("studio", "player"))
    video = client.videos.create(model=FAST_MODEL, prompt="A test card", extra_body={"seed": 4})
    wait_for(lambda: gateway.job(video.id).status == "completed")
    assert transport.replaced >= 1

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    ranges: list[str] = []

    def remember(request: Request) -> None:
        if request.url.endswith(f"/dashboard/videos/{video.id}/content"):
            ranges.append(request.headers.get("range", ""))

    page.on("request", remember)
    page.goto(gateway.url + "/dashboard/signin")
    page.get_by_label("Token").fill(ADMIN_TOKEN)
    page.get_by_role("button", name="Sign in").click()
    page.goto(gateway.url + f"/dashboard/videos/{video.id}")
    player = page.get_by_role("region", name="Playback").locator("video")
    expect(player).to_have_attribute("src", f"/dashboard/videos/{video.id}/content")
    page.evaluate("document.querySelector('video#player').play()")
    # Polled from Python: the page's CSP (rightly) forbids the eval wait_for_function needs.
    wait_for(lambda: page.evaluate("document.querySelector('video#player').currentTime") > 0.5)
    assert page.evaluate("document.querySelector('video#player').error") is None
    assert page.evaluate("document.querySelector('video#player').duration") == pytest.approx(
        3.0, abs=0.2
    )
    assert any(r.startswith("bytes=") for r in ranges), ranges  # the browser asked for ranges
    shoot(page, "video-playing")
    context.close()
