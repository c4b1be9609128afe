"""A 20 MiB ``data:`` image: the upstream receives it as sent, the database row keeps only a
reference and digest, and a request the upstream refuses leaves no inline media in the row."""

from __future__ import annotations

import base64
import hashlib
import os
import sqlite3
from pathlib import Path

from tests.conftest import FAST_MODEL, GatewayHandle, SandboxHandle, wait_for

IMAGE = b"\x89PNG\r\n\x1a\n" + os.urandom(20 * 1024 * 1024)
DATA_URL = "data:image/png;base64," + base64.b64encode(IMAGE).decode()
BODY = {
    "model": FAST_MODEL,
    "prompt": "the image comes alive",
    "content": [{"type": "image_url", "image_url": {"url": DATA_URL}, "role": "first_frame"}],
}
DIGEST = hashlib.sha256(IMAGE).hexdigest()


def database_bytes(gateway: GatewayHandle) -> int:
    path = Path(gateway.settings.database.url.removeprefix("sqlite:///"))
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


def stored_request(gateway: GatewayHandle, video_id: str) -> str:
    path = gateway.settings.database.url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as db:
        (text,) = db.execute("SELECT request_json FROM jobs WHERE id = ?", (video_id,)).fetchone()
    return str(text)


def post(gateway: GatewayHandle, key: str) -> tuple[int, dict[str, object]]:
    headers = {"Authorization": f"Bearer {key}"}
    resp = gateway.http.post("/v1/videos", json=BODY, headers=headers, timeout=60)
    return resp.status_code, resp.json()


def test_inline_image_goes_to_the_blob_store_not_the_row(
    gateway: GatewayHandle, sandbox: SandboxHandle
) -> None:
    key = gateway.new_key()
    before = database_bytes(gateway)
    status, video = post(gateway, key)
    assert status == 200, video
    video_id = str(video["id"])

    job = gateway.job(video_id)
    sent = sandbox.job(job.upstream_id).body
    assert sent["content"][0]["image_url"]["url"] == DATA_URL  # the upstream got it as sent
    item = job.request.content[0].to_json()["image_url"]
    assert item == {
        "url": f"blob:sha256:{DIGEST}",
        "sha256": DIGEST,
        "bytes": len(IMAGE),
        "media_type": "image/png",
    }
    row = stored_request(gateway, video_id)
    assert len(row.encode()) < 4096 and "base64" not in row
    assert database_bytes(gateway) - before < 2 * 1024 * 1024
    blobs = Path(gateway.settings.storage.url.removeprefix("file://"))
    assert (blobs / "objects" / DIGEST[:2] / DIGEST).read_bytes() == IMAGE
    wait_for(lambda: gateway.job(video_id).status == "completed", timeout=60)


def test_refused_requests_do_not_grow_the_database(
    gateway: GatewayHandle, sandbox: SandboxHandle
) -> None:
    key = gateway.new_key()
    sandbox.fault(op="create", kind="reject", message="the image is not allowed", times=0)
    before = database_bytes(gateway)
    for _ in range(2):
        status, answer = post(gateway, key)
        assert status == 400, answer
    assert database_bytes(gateway) - before < 2 * 1024 * 1024
