"""The video gallery over HTTP: newest first, paged by cursor, filtered by team, key, model,
status and date; bad filters are explained, never widened."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from gateway.web.dashboard import pages
from tests.conftest import ADMIN_TOKEN, FAST_MODEL, GatewayHandle, wait_for
from tests.dashboard.support import sign_in

TILE = re.compile(r'aria-label="Video (video_[0-9a-f]+)"')


@pytest.fixture
def http(gateway: GatewayHandle) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, timeout=30) as client:
        sign_in(client, ADMIN_TOKEN)
        yield client


def make_videos(gateway: GatewayHandle, team: str, count: int) -> list[str]:
    client = gateway.client(gateway.new_key(team))
    made = [
        client.videos.create(model=FAST_MODEL, prompt=f"{team} {n}", extra_body={"seed": n}).id
        for n in range(count)
    ]
    for video_id in made:
        wait_for(lambda v=video_id: gateway.job(v).status == "completed")
    return made


def tiles(html: str) -> list[str]:
    return TILE.findall(html)


def test_pages_newest_first_with_a_cursor(
    gateway: GatewayHandle, http: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = make_videos(gateway, "acme", 3)
    monkeypatch.setattr(pages, "PAGE_SIZE", 2)
    first = http.get("/dashboard/videos", params={"team": "acme"})
    assert tiles(first.text) == [made[2], made[1]]
    older = re.search(r'href="(/dashboard/videos\?[^"]+)">Older videos', first.text)
    assert older is not None
    second = http.get(older.group(1).replace("&amp;", "&"))
    assert tiles(second.text) == [made[0]]
    assert "Older videos" not in second.text


def test_filters_narrow_and_bad_filters_are_explained(
    gateway: GatewayHandle, http: httpx.Client
) -> None:
    acme = make_videos(gateway, "acme", 1)
    globex = make_videos(gateway, "globex", 1)
    assert tiles(http.get("/dashboard/videos").text) == [globex[0], acme[0]]
    assert tiles(http.get("/dashboard/videos", params={"team": "globex"}).text) == globex
    key_id = gateway.job(acme[0]).key_id
    assert tiles(http.get("/dashboard/videos", params={"key": key_id}).text) == acme
    assert tiles(http.get("/dashboard/videos", params={"status": "completed"}).text) == [
        globex[0],
        acme[0],
    ]
    assert tiles(http.get("/dashboard/videos", params={"status": "failed"}).text) == []
    assert tiles(http.get("/dashboard/videos", params={"model": "no-such-model"}).text) == []
    assert (
        tiles(http.get("/dashboard/videos", params={"from": "2000-01-01", "to": "2000-01-02"}).text)
        == []
    )
    for params, message in (
        ({"team": "nobody"}, "No team named &#39;nobody&#39;."),
        ({"from": "yesterday"}, "from must be a date YYYY-MM-DD."),
        ({"status": "bogus"}, "status must be one of queued, in_progress, completed, failed."),
    ):
        page = http.get("/dashboard/videos", params=params)
        assert page.status_code == 200
        assert message in page.text
        assert tiles(page.text) == []  # never "everything" instead


def test_an_unknown_video_is_a_page_not_an_error_envelope(http: httpx.Client) -> None:
    page = http.get("/dashboard/videos/video_nope")
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "No video &#39;video_nope&#39;." in page.text
