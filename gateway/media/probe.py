"""The probe: open a stored video with PyAV, read it end to end, off the event loop.

A stored file is only a video if FFmpeg can demux every frame its index promises and decode
its key frames; a truncated or garbled file raises ``UndecodableMedia`` (the job runner treats it as a
failed download and fetches again while the upstream link lives). The file is read from the
blob store through a small synchronous reader that hops back onto the event loop for each
range, so S3 and local storage are probed the same way, in constant memory.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import IO, Any

import av

from gateway.blobs.base import BlobStore
from gateway.domain.media import MediaFacts

READ_AHEAD = 256 * 1024
RANGE_TIMEOUT_SECONDS = 60.0


class UndecodableMedia(Exception):
    """The file is not a video FFmpeg can decode end to end."""


def probe_file(file: IO[bytes] | io.RawIOBase | str) -> MediaFacts:
    """Demux every packet of ``file`` (a path or a seekable binary file), decode its key frames,
    and measure it.

    Every sample its index promises must be present (a truncated or cut file is short of
    packets, or FFmpeg fails reading them), and every key frame must decode (the frames between
    them are predicted from those and only checked as present): about a fifth of the CPU of
    decoding every frame (bench/README.md, History). Blocking: call through
    ``asyncio.to_thread`` (``probe_blob`` does).
    """
    try:
        with av.open(file, "r") as container:
            if not container.streams.video:
                raise UndecodableMedia("the file has no video stream")
            video = container.streams.video[0]
            video.codec_context.skip_frame = "NONKEY"
            frames, keys, end = 0, 0, 0.0
            for packet in container.demux(video):
                if packet.size == 0:
                    continue  # the demuxer's end-of-stream marker
                frames += 1
                if packet.pts is not None and packet.time_base is not None:
                    end = max(end, float(packet.pts * packet.time_base))
                if packet.is_keyframe:
                    keys += sum(1 for _ in packet.decode())
            keys += sum(1 for _ in video.codec_context.decode(None))  # flush the decoder
            promised = video.frames
            if frames == 0 or keys == 0 or (promised and frames < promised):
                raise UndecodableMedia(
                    f"{frames} of {promised or '?'} frames present, {keys} key frames decoded"
                )
            codec = video.codec_context
            rate = float(video.average_rate) if video.average_rate else 0.0
            decoded_ms = round((end + (1 / rate if rate else 0.0)) * 1000)
            duration_ms = (
                container.duration // 1000 if container.duration is not None else decoded_ms
            )
            return MediaFacts(
                container=_container_name(container.format.name),
                video_codec=codec.name,
                width=codec.width,
                height=codec.height,
                duration_ms=duration_ms,
                has_audio=bool(container.streams.audio),
                frames=frames,
            )
    except UndecodableMedia:
        raise
    except (av.FFmpegError, ValueError, OSError, EOFError) as exc:
        raise UndecodableMedia(f"the file does not decode: {exc}") from exc


def _container_name(demuxer: str) -> str:
    """FFmpeg names the ISO-BMFF demuxer after every format it reads; call it ``mp4``."""
    return "mp4" if "mp4" in demuxer.split(",") else demuxer


async def probe_blob(blobs: BlobStore, key: str, size: int) -> MediaFacts:
    """Probe the stored object ``key`` (``size`` bytes) without blocking the event loop."""
    loop = asyncio.get_running_loop()
    reader = BlobReader(lambda start, end: _collect(blobs.open_range(key, start, end)), size, loop)
    return await asyncio.to_thread(probe_file, reader)


async def _collect(chunks: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in chunks])


class BlobReader(io.RawIOBase):
    """A seekable, synchronous view of a blob for FFmpeg, used from a worker thread: each read
    fetches a range (at least ``READ_AHEAD`` bytes) on the event loop and waits for it."""

    def __init__(
        self,
        fetch: Callable[[int, int], Coroutine[Any, Any, bytes]],
        size: int,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        super().__init__()
        self._fetch = fetch
        self._size = size
        self._loop = loop
        self._pos = 0
        self._window_start = 0
        self._window = b""

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        want = min(len(buffer), self._size - self._pos)
        if want <= 0:
            return 0
        offset = self._pos - self._window_start
        if offset < 0 or offset + want > len(self._window):
            self._load(self._pos, min(self._size, self._pos + max(want, READ_AHEAD)))
            offset = 0
        data = self._window[offset : offset + want]
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def _load(self, start: int, end: int) -> None:
        coroutine = self._fetch(start, end)
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        self._window = future.result(timeout=RANGE_TIMEOUT_SECONDS)
        self._window_start = start
        if len(self._window) < end - start:
            raise OSError(f"short read: {len(self._window)} of {end - start} bytes")
