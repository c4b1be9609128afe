"""The probe measures real videos and refuses what does not decode end to end (a truncated MP4,
a file with no video, bytes that are not media), read from a file or from the blob store."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.blobs.filesystem import FilesystemBlobStore
from gateway.media.probe import UndecodableMedia, probe_blob, probe_file
from gateway.sandbox import RenderSpec, render_mp4, still_png
from gateway.sandbox.media import video_bytes_for

SPEC = RenderSpec(width=64, height=36, fps=8, seconds=3, colour=(0xB0, 0x30, 0x70), audio=True)


async def chunks(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 7000):
        yield data[start : start + 7000]


def test_a_sandbox_video_is_measured() -> None:
    facts = probe_file(io.BytesIO(video_bytes_for(render_mp4(SPEC), b"s" * 32, 200_000)))
    assert (facts.container, facts.video_codec, facts.width, facts.height) == (
        "mp4",
        "h264",
        64,
        36,
    )
    assert (facts.duration_ms, facts.has_audio, facts.frames) == (3000, True, 24)
    silent = probe_file(io.BytesIO(render_mp4(RenderSpec(90, 160, 4, 2, (0x30, 0x30, 0x30)))))
    assert (silent.width, silent.height, silent.has_audio, silent.duration_ms) == (
        90,
        160,
        False,
        2000,
    )


@pytest.mark.parametrize("fraction", [0.3, 0.6, 0.95])
def test_a_truncated_mp4_is_rejected(fraction: float) -> None:
    core = render_mp4(SPEC)
    with pytest.raises(UndecodableMedia):
        probe_file(io.BytesIO(core[: int(len(core) * fraction)]))


@pytest.mark.parametrize(
    "data",
    [b"", b"\x00\x00\x00\x20ftypisom" + bytes(200), b"not a video at all" * 100],
    ids=["empty", "ftyp-only", "text"],
)
def test_non_media_is_rejected(data: bytes) -> None:
    with pytest.raises(UndecodableMedia):
        probe_file(io.BytesIO(data))


def test_a_broken_image_is_not_a_video() -> None:
    with pytest.raises(UndecodableMedia):
        probe_file(io.BytesIO(still_png(SPEC, 0)[:40]))


async def test_probe_reads_from_the_blob_store(tmp_path: Path) -> None:
    blobs = FilesystemBlobStore(str(tmp_path))
    data = video_bytes_for(render_mp4(SPEC), b"s" * 32, 600_000)  # > one read-ahead window
    info = await blobs.put(chunks(data), expected_size=len(data))
    facts = await probe_blob(blobs, info.key, info.size)
    assert (facts.frames, facts.duration_ms) == (24, 3000)
    cut = data[: len(render_mp4(SPEC)) // 2]
    broken = await blobs.put(chunks(cut), expected_size=len(cut))
    with pytest.raises(UndecodableMedia):
        await probe_blob(blobs, broken.key, broken.size)
