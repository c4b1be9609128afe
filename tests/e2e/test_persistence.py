"""Finished videos live in our storage: served byte-identical, with HTTP caching and ranges,
long after the upstream's links have expired; faults never leave partial files behind."""

from __future__ import annotations

import hashlib
from pathlib import Path

import openai
import pytest

from gateway.sandbox.state import expected_last_frame_bytes, expected_video_bytes
from tests.conftest import FAST_MODEL, GatewayHandle, SandboxHandle


def finished(gateway: GatewayHandle, **extra: object):
    key = gateway.new_key()
    client = gateway.client(key)
    video = client.videos.create_and_poll(
        model=FAST_MODEL, prompt="Persist me", poll_interval_ms=20, extra_body=extra or None
    )
    assert video.status == "completed"
    return client, key, video


def blob_dirs(gateway: GatewayHandle) -> tuple[Path, Path]:
    root = Path(gateway.settings.storage.url.removeprefix("file://"))
    return root / "objects", root / "tmp"


def stored_objects(gateway: GatewayHandle) -> list[Path]:
    objects, _ = blob_dirs(gateway)
    return sorted(p for p in objects.rglob("*") if p.is_file())


def test_content_outlives_upstream_links(gateway: GatewayHandle, sandbox: SandboxHandle):
    client, key, video = finished(gateway, return_last_frame=True, seed=11)
    upstream = sandbox.job(gateway.job(video.id).upstream_id)
    sandbox.expire_links()
    assert client.videos.download_content(video.id).content == expected_video_bytes(upstream)
    frame = client.videos.download_content(video.id, variant="thumbnail").content
    assert frame == expected_last_frame_bytes(upstream)
    assert (video.model_extra or {})["last_frame_url"].endswith(
        f"/v1/videos/{video.id}/content?variant=thumbnail"
    )
    auth = {"Authorization": f"Bearer {key}"}
    alias = gateway.http.get(f"/v1/videos/{video.id}/content?variant=last_frame", headers=auth)
    assert alias.content == frame
    assert alias.headers["content-type"] == "image/png"


class TestRanges:
    @pytest.fixture
    def served(self, gateway: GatewayHandle, sandbox: SandboxHandle):
        _, key, video = finished(gateway)
        body = expected_video_bytes(sandbox.job(gateway.job(video.id).upstream_id))
        url = f"/v1/videos/{video.id}/content"
        return gateway, {"Authorization": f"Bearer {key}"}, url, body

    def test_full_body_headers(self, served):
        gateway, auth, url, body = served
        resp = gateway.http.get(url, headers=auth)
        assert resp.status_code == 200
        assert resp.content == body
        assert resp.headers["content-type"] == "video/mp4"
        assert resp.headers["content-length"] == str(len(body))
        assert resp.headers["accept-ranges"] == "bytes"
        # Browsers may keep it; a shared cache (CDN, proxy) must not serve it to another team.
        assert resp.headers["cache-control"] == "private, max-age=86400"
        etag = resp.headers["etag"].strip('"')
        assert len(etag) == 64 and all(c in "0123456789abcdef" for c in etag)

    @pytest.mark.parametrize(
        ("header", "start", "end"),
        [
            ("bytes=0-99", 0, 100),
            ("bytes=1000-", 1000, None),
            ("bytes=-50", -50, None),
            ("bytes=10-10", 10, 11),
            ("bytes=5-999999999", 5, None),
        ],
    )
    def test_single_ranges(self, served, header: str, start: int, end: int | None):
        gateway, auth, url, body = served
        resp = gateway.http.get(url, headers={**auth, "Range": header})
        expected = body[start:end] if end is not None else body[start:]
        assert resp.status_code == 206
        assert resp.content == expected
        first = start if start >= 0 else len(body) + start
        assert (
            resp.headers["content-range"]
            == f"bytes {first}-{first + len(expected) - 1}/{len(body)}"
        )
        assert resp.headers["content-length"] == str(len(expected))

    def test_unsatisfiable_range_is_416(self, served):
        gateway, auth, url, body = served
        resp = gateway.http.get(url, headers={**auth, "Range": f"bytes={len(body)}-"})
        assert resp.status_code == 416
        assert resp.headers["content-range"] == f"bytes */{len(body)}"
        assert resp.json()["error"]["code"] == "range_not_satisfiable"

    def test_if_none_match_is_304(self, served):
        gateway, auth, url, _ = served
        etag = gateway.http.get(url, headers=auth).headers["etag"]
        resp = gateway.http.get(url, headers={**auth, "If-None-Match": etag})
        assert resp.status_code == 304
        assert resp.content == b""
        assert resp.headers["etag"] == etag

    def test_etag_is_the_stored_assets_digest(self, served):
        gateway, auth, url, body = served
        etag = gateway.http.get(url, headers=auth).headers["etag"]
        video_id = url.split("/")[3]
        stored = gateway.job(video_id).video_asset
        assert etag == f'"{stored}"' == f'"{hashlib.sha256(body).hexdigest()}"'

    def test_etags_differ_per_video_and_304_only_for_the_same_one(self, served):
        gateway, auth, url, body = served
        etag = gateway.http.get(url, headers=auth).headers["etag"]
        _, other_key, other = finished(gateway)
        other_url = f"/v1/videos/{other.id}/content"
        other_auth = {"Authorization": f"Bearer {other_key}"}
        other_resp = gateway.http.get(other_url, headers=other_auth)
        assert other_resp.content != body
        assert other_resp.headers["etag"] != etag
        assert other_resp.headers["etag"] == f'"{hashlib.sha256(other_resp.content).hexdigest()}"'
        # A client revalidating the second video with the first one's ETag gets the second video.
        stale = gateway.http.get(other_url, headers={**other_auth, "If-None-Match": etag})
        assert stale.status_code == 200
        assert stale.content == other_resp.content
        ranged = gateway.http.get(
            other_url, headers={**other_auth, "Range": "bytes=0-9", "If-Range": etag}
        )
        assert (ranged.status_code, ranged.content) == (200, other_resp.content)

    def test_if_range_match_sends_the_range(self, served):
        gateway, auth, url, body = served
        etag = gateway.http.get(url, headers=auth).headers["etag"]
        resp = gateway.http.get(url, headers={**auth, "Range": "bytes=0-9", "If-Range": etag})
        assert resp.status_code == 206
        assert resp.content == body[:10]
        assert resp.headers["content-range"] == f"bytes 0-9/{len(body)}"

    def test_if_range_mismatch_sends_everything(self, served):
        gateway, auth, url, body = served
        resp = gateway.http.get(url, headers={**auth, "Range": "bytes=0-9", "If-Range": '"old"'})
        assert resp.status_code == 200
        assert resp.content == body

    def test_head(self, served):
        gateway, auth, url, body = served
        resp = gateway.http.head(url, headers=auth)
        assert resp.status_code == 200
        assert resp.headers["content-length"] == str(len(body))
        assert resp.content == b""
        ranged = gateway.http.head(url, headers={**auth, "Range": "bytes=0-9"})
        assert ranged.status_code == 206
        assert ranged.headers["content-length"] == "10"


def test_thumbnail_without_last_frame_is_404(gateway: GatewayHandle):
    client, _, video = finished(gateway)
    with pytest.raises(openai.NotFoundError) as err:
        client.videos.download_content(video.id, variant="thumbnail")
    assert err.value.code == "variant_not_found"
    assert (video.model_extra or {})["last_frame_url"] is None


def test_spritesheet_is_a_clear_400(gateway: GatewayHandle):
    client, _, video = finished(gateway)
    with pytest.raises(openai.BadRequestError) as err:
        client.videos.download_content(video.id, variant="spritesheet")
    assert err.value.code == "unsupported_feature"


def test_truncated_download_is_retried_without_partial_files(gateway, sandbox):
    sandbox.fault(op="file", kind="truncate", truncate_at=1000, times=2)
    client, _, video = finished(gateway)
    upstream = sandbox.job(gateway.job(video.id).upstream_id)
    assert client.videos.download_content(video.id).content == expected_video_bytes(upstream)
    assert sandbox.stats()["file"] == 3
    _, tmp = blob_dirs(gateway)
    assert list(tmp.iterdir()) == []
    assert len(stored_objects(gateway)) == 1


def test_poll_faults_do_not_stop_a_job(gateway: GatewayHandle, sandbox: SandboxHandle):
    sandbox.fault(op="poll", kind="status", status=502, times=3)
    sandbox.fault(op="poll", kind="status", status=429, retry_after=0, times=1)
    _, _, video = finished(gateway)
    assert video.status == "completed"


def test_link_expiring_before_download_fails_precisely(gateway_factory, sandbox):
    gateway = gateway_factory(jobs={"link_ttl_seconds": 0.5})
    sandbox.fault(op="file", kind="status", status=503, times=0)
    sandbox.fault(op="content", kind="status", status=503, times=0)
    client = gateway.client()
    video = client.videos.create(model=FAST_MODEL, prompt="Too late")
    done = client.videos.poll(video.id, poll_interval_ms=20)
    assert done.status == "failed"
    assert done.error is not None and done.error.code == "upstream_link_expired"
    assert stored_objects(gateway) == []
    assert list(blob_dirs(gateway)[1].iterdir()) == []


def test_delete_removes_the_last_reference(gateway: GatewayHandle):
    client, _, video = finished(gateway)
    assert len(stored_objects(gateway)) == 1
    client.videos.delete(video.id)
    assert stored_objects(gateway) == []


def test_retention_sets_expires_at(gateway_factory):
    gateway = gateway_factory(storage={"retention_days": 7})
    _, _, video = finished(gateway)
    assert video.expires_at is not None
    assert video.expires_at - (video.completed_at or 0) == 7 * 86400
