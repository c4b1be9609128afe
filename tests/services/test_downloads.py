"""One untrusted download into the blob store: every refusal has its code and leaves nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.blobs.filesystem import FilesystemBlobStore
from gateway.sandbox.media import video_bytes_for
from gateway.sandbox.render import RenderSpec, render_mp4, still_png
from gateway.services.downloads import DownloadLimits, UnusableDownload, store_download
from gateway.upstream.port import Download

SPEC = RenderSpec(width=32, height=32, fps=4, seconds=1, colour=(200, 40, 40))
MP4 = video_bytes_for(render_mp4(SPEC), b"downloads", 10_000)
LIMITS = DownloadLimits(max_bytes=1_000_000, seconds=5.0)


async def chunks(*parts: bytes, pause: float = 0.0) -> AsyncIterator[bytes]:
    for part in parts:
        if pause:
            await asyncio.sleep(pause)
        yield part


def download(*parts: bytes, content_type: str = "video/mp4", length: int | None = None,
             pause: float = 0.0) -> Download:  # fmt: skip
    return Download(content_type, length, chunks(*parts, pause=pause))


@pytest.fixture
def blobs(tmp_path: Path) -> FilesystemBlobStore:
    return FilesystemBlobStore(tmp_path)


def stored(blobs: FilesystemBlobStore) -> list[Path]:
    return [p for p in blobs.root.rglob("*") if p.is_file()]


async def test_a_video_is_stored_as_video_mp4(blobs: FilesystemBlobStore) -> None:
    asset = await store_download(
        download(MP4[:100], MP4[100:], content_type="application/octet-stream"),
        blobs,
        "video",
        LIMITS,
    )
    assert (asset.size, asset.content_type) == (len(MP4), "video/mp4")


async def test_a_last_frames_type_comes_from_its_bytes(blobs: FilesystemBlobStore) -> None:
    png = still_png(SPEC, 1)
    asset = await store_download(download(png, content_type=""), blobs, "last_frame", LIMITS)
    assert asset.content_type == "image/png"


@pytest.mark.parametrize(
    ("variant", "made", "code"),
    [
        ("video", download(MP4, content_type="text/html"), "download_not_media"),
        ("video", download(b"<html>" * 100), "download_not_media"),
        ("video", download(MP4[:-10]), "download_not_media"),
        ("video", download(MP4, length=2_000_000), "download_too_large"),
        ("video", download(MP4, MP4[:0] + b"\0" * 1_000_000), "download_too_large"),
        ("last_frame", download(b"<svg/>", content_type="image/png"), "download_not_media"),
        ("last_frame", download(still_png(SPEC, 2), content_type="image/svg+xml"),
         "download_not_media"),
    ],
)  # fmt: skip
async def test_refusals(
    blobs: FilesystemBlobStore, variant: str, made: Download, code: str
) -> None:
    with pytest.raises(UnusableDownload) as info:
        await store_download(made, blobs, variant, LIMITS)
    assert info.value.code == code
    assert stored(blobs) == []


async def test_too_slow_is_cut_at_the_time_allowed(blobs: FilesystemBlobStore) -> None:
    slow = download(*(MP4[i : i + 1000] for i in range(0, len(MP4), 1000)), pause=0.2)
    with pytest.raises(UnusableDownload) as info:
        await store_download(slow, blobs, "video", DownloadLimits(1_000_000, seconds=0.3))
    assert info.value.code == "download_too_slow"
    assert stored(blobs) == []
