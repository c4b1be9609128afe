"""A hostile upstream (a real HTTP server on 127.0.0.1) against a real gateway: every unusable
download ends ``failed`` and refunded, nothing internal is fetched or served, the key stays
with the configured origin (docs/security.md)."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse

from gateway.app import create_app
from gateway.media.mp4 import check_mp4
from gateway.sandbox.media import video_bytes_for
from gateway.sandbox.render import RenderSpec, render_mp4
from tests.conftest import FAST_MODEL, GatewayHandle, gateway_settings, wait_for
from tests.hostile import Hostile, Internal, endless, streamed, trickle
from tests.servers import ServerThread

BODY = {"model": FAST_MODEL, "prompt": "A lighthouse at dusk", "seconds": "5"}
SPEC = RenderSpec(width=32, height=32, fps=4, seconds=1, colour=(200, 40, 40))
MP4 = video_bytes_for(render_mp4(SPEC), b"hostile", 4096)
NO_MOOV = struct.pack(">I4s4sI", 16, b"ftyp", b"isom", 0) + struct.pack(">I4s", 4008, b"mdat")
NO_MOOV += b"\0" * 4000


@pytest.fixture
def hostile() -> Iterator[tuple[Hostile, str]]:
    upstream = Hostile()
    server = ServerThread(upstream.app(), lifespan="off").start()
    yield upstream, server.url
    server.stop()


@pytest.fixture
def internal() -> Iterator[Internal]:
    server = Internal()
    yield server
    server.server.stop()


@pytest.fixture
def start(tmp_path: Path, hostile: tuple[Hostile, str]) -> Iterator[Any]:
    started: list[GatewayHandle] = []

    def run(**sections: dict[str, Any]) -> GatewayHandle:
        jobs = {"link_ttl_seconds": 1.5, **sections.pop("jobs", {})}
        settings = gateway_settings(tmp_path, hostile[1], jobs=jobs, **sections)
        handle = GatewayHandle(ServerThread(create_app(settings)).start(), settings)
        started.append(handle)
        return handle

    yield run
    for handle in started:
        handle.close()
        handle.server.stop()


def create(gateway: GatewayHandle) -> tuple[str, dict[str, str]]:
    headers = {"Authorization": f"Bearer {gateway.new_key()}"}
    resp = gateway.http.post("/v1/videos", json=BODY, headers=headers)
    assert resp.status_code == 200, resp.text
    return resp.json()["id"], headers


def finished(gateway: GatewayHandle, video_id: str) -> Any:
    return wait_for(
        lambda: (job := gateway.job(video_id)).status in ("completed", "failed") and job,
        timeout=30,
    )


def assert_failed_and_refunded(gateway: GatewayHandle, video_id: str, headers: Any) -> Any:
    job = finished(gateway, video_id)
    assert job.status == "failed"
    assert job.money_state == "refunded"
    assert not job.charged_micros
    assert job.video_asset is None
    content = gateway.http.get(f"/v1/videos/{video_id}/content", headers=headers)
    assert content.status_code == 400  # nothing to serve, least of all the upstream's bytes
    assert content.json()["error"]["code"] == "video_not_ready"
    blobs = Path(gateway.settings.storage.url.removeprefix("file://"))
    assert [p for p in blobs.rglob("*") if p.is_file()] == []
    return job


def failures(gateway: GatewayHandle, reason: str) -> float:
    text = gateway.http.get("/metrics").text
    prefix = f'gateway_download_failures_total{{reason="{reason}"}} '
    return sum(
        float(line.removeprefix(prefix)) for line in text.splitlines() if line.startswith(prefix)
    )


def test_link_to_an_internal_address_is_never_fetched(
    start: Any, hostile: tuple[Hostile, str], internal: Internal
) -> None:
    upstream, _ = hostile
    upstream.video_url = internal.url("/internal")
    gateway = start()
    video_id, headers = create(gateway)

    assert_failed_and_refunded(gateway, video_id, headers)
    assert internal.seen == []
    assert failures(gateway, "upstream_link_refused") >= 1
    # The gateway fell back to the API's own /content path (which has nothing here).
    assert any(s.path.endswith("/content") for s in upstream.seen)


def test_redirect_to_an_internal_address_is_not_followed(
    start: Any, hostile: tuple[Hostile, str], internal: Internal
) -> None:
    upstream, url = hostile
    upstream.video_url = f"{url}/files/v.mp4"
    upstream.files["v.mp4"] = lambda request: RedirectResponse(internal.url("/admin"), 302)
    upstream.content = upstream.files["v.mp4"]
    gateway = start()
    video_id, headers = create(gateway)

    job = assert_failed_and_refunded(gateway, video_id, headers)
    assert job.error_code == "upstream_link_refused"
    assert internal.seen == []
    assert any(s.path == "/files/v.mp4" for s in upstream.seen)


def test_key_goes_to_the_configured_origin_only_not_another_port(
    start: Any, hostile: tuple[Hostile, str], internal: Internal
) -> None:
    upstream, _ = hostile
    upstream.video_url = internal.url("/v.mp4")  # same host, another port
    gateway = start(upstream={"allow_private_links": True})
    video_id, headers = create(gateway)

    job = assert_failed_and_refunded(gateway, video_id, headers)  # it served HTML
    assert job.error_code == "download_not_media"
    assert internal.seen and all(s.authorization is None for s in internal.seen)
    api_calls = [s for s in upstream.seen if s.path.startswith("/v1/videos")]
    assert api_calls and all(s.authorization == "Bearer sk-sandbox" for s in api_calls)


def test_oversize_chunked_body_is_cut_off(start: Any, hostile: tuple[Hostile, str]) -> None:
    upstream, url = hostile
    header = struct.pack(">I4s4sI", 16, b"ftyp", b"isom", 0) + struct.pack(">I4s", 0, b"mdat")
    upstream.video_url = f"{url}/files/big.mp4"
    upstream.files["big.mp4"] = streamed(lambda: endless(header + b"\0" * 65536), "video/mp4")
    gateway = start(storage={"max_video_bytes": 1024 * 1024})
    video_id, headers = create(gateway)

    job = assert_failed_and_refunded(gateway, video_id, headers)
    assert job.error_code == "download_too_large"
    assert failures(gateway, "download_too_large") >= 1


def test_slow_body_past_the_deadline_fails(start: Any, hostile: tuple[Hostile, str]) -> None:
    upstream, url = hostile
    upstream.video_url = f"{url}/files/slow.mp4"
    upstream.files["slow.mp4"] = streamed(lambda: trickle(MP4, 0.05), "video/mp4")
    gateway = start(
        storage={"download_timeout_seconds": 1.0},
        jobs={"deadline_seconds": 1.0, "link_ttl_seconds": 3600.0},
    )
    video_id, headers = create(gateway)

    job = assert_failed_and_refunded(gateway, video_id, headers)
    assert job.error_code == "download_too_slow"


def test_html_is_not_a_video(start: Any, hostile: tuple[Hostile, str]) -> None:
    upstream, url = hostile
    upstream.video_url = f"{url}/files/page"
    upstream.files["page"] = lambda request: Response(
        "<html><script>steal(document.cookie)</script></html>", media_type="text/html"
    )
    gateway = start()
    video_id, headers = create(gateway)

    job = assert_failed_and_refunded(gateway, video_id, headers)
    assert job.error_code == "download_not_media"


def test_truncated_mp4_without_moov_is_refused(start: Any, hostile: tuple[Hostile, str]) -> None:
    upstream, url = hostile
    upstream.video_url = f"{url}/files/cut.mp4"
    upstream.files["cut.mp4"] = lambda request: Response(NO_MOOV, media_type="video/mp4")
    gateway = start()
    video_id, headers = create(gateway)

    job = assert_failed_and_refunded(gateway, video_id, headers)
    assert job.error_code == "download_not_media"
    assert failures(gateway, "download_not_media") >= 1


def test_a_good_video_is_served_as_a_safe_attachment(
    start: Any, hostile: tuple[Hostile, str]
) -> None:
    upstream, url = hostile
    upstream.video_url = f"{url}/files/good.mp4"

    def good(request: Request) -> Response:
        # The upstream claims a generic type: the gateway stores and serves video/mp4.
        return StreamingResponse(iter([MP4]), media_type="application/octet-stream")

    upstream.files["good.mp4"] = good
    gateway = start()
    video_id, headers = create(gateway)
    job = finished(gateway, video_id)
    assert (job.status, job.money_state) == ("completed", "charged")

    resp = gateway.http.get(f"/v1/videos/{video_id}/content", headers=headers)
    assert resp.status_code == 200 and resp.content == MP4
    check_mp4(resp.content)
    assert resp.headers["content-type"] == "video/mp4"
    assert resp.headers["x-content-type-options"] == "nosniff"
    assert resp.headers["content-disposition"] == f'attachment; filename="{video_id}.mp4"'
    inline = gateway.http.get(
        f"/v1/videos/{video_id}/content", params={"disposition": "inline"}, headers=headers
    )
    assert inline.headers["content-disposition"] == f'inline; filename="{video_id}.mp4"'
    ranged = gateway.http.get(
        f"/v1/videos/{video_id}/content", headers={**headers, "Range": "bytes=" + "9" * 4400 + "-"}
    )
    assert ranged.status_code == 416


def test_huge_poll_answer_is_not_read_whole(
    start: Any, hostile: tuple[Hostile, str], tmp_path: Path
) -> None:
    upstream, _ = hostile
    upstream.video_url = "https://cdn.example/" + "x" * (64 * 1024)
    gateway = start(upstream={"max_answer_bytes": 16 * 1024})
    video_id, _ = create(gateway)
    # Every poll answer is over the cap: the job never moves on what it says.
    wait_for(lambda: any(s.path.startswith("/v1/videos/cgt") for s in upstream.seen))
    wait_for(lambda: sum(s.path.startswith("/v1/videos/cgt") for s in upstream.seen) >= 3)
    assert gateway.job(video_id).status == "queued"


def test_invalid_host_header_is_refused(start: Any) -> None:
    gateway = start()
    for host in ("evil.example/x?", "a b", "user@evil.example", 'x"y'):
        resp = httpx.get(f"{gateway.url}/healthz", headers={"Host": host})
        assert resp.status_code == 400, host
        assert resp.json()["error"]["code"] == "bad_host"
    assert httpx.get(f"{gateway.url}/healthz", headers={"Host": "gw.example:8443"}).is_success


def test_readyz_fails_when_storage_is_short_of_space(start: Any) -> None:
    gateway = start(storage={"min_free_bytes": 2**62})
    resp = gateway.http.get("/readyz")
    assert resp.status_code == 503
    assert resp.json()["checks"]["storage"].startswith("low on space")
