"""The bytes the sandbox serves: a rendered MP4 (``render.py``) followed by one ``free`` box.

The ``free`` box holds the job's 32-byte content seed (so two unseeded jobs never serve the
same bytes even when their render is shared) and then filler up to the configured
``video_bytes``: players skip ``free`` boxes, so a benchmark can ask for a 200 MiB video that
still plays. Filler byte ``i`` is ``block[i % BLOCK_SIZE]`` of 64 KiB of SHAKE-256 output keyed
by the content seed, so large files stream as the same few ``bytes`` objects. Pure: no I/O.
"""

from __future__ import annotations

import asyncio
import hashlib
import struct
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from functools import lru_cache

BLOCK_SIZE = 64 * 1024
SEED_BYTES = 32
FREE_HEADER = 8
MIN_TAIL = FREE_HEADER + SEED_BYTES


@lru_cache(maxsize=64)
def _pattern_block(content_seed: bytes) -> bytes:
    return hashlib.shake_256(b"sandbox-mp4:" + content_seed).digest(BLOCK_SIZE)


def served_size(core_size: int, video_bytes: int) -> int:
    """The file's size: the render plus its ``free`` box, padded up to ``video_bytes``."""
    return max(video_bytes, core_size + MIN_TAIL)


def iter_video_chunks(core: bytes, content_seed: bytes, video_bytes: int) -> Iterator[bytes]:
    """The served file for a render ``core``, in chunks of at most 64 KiB (after the core)."""
    size = served_size(len(core), video_bytes)
    tail = size - len(core)
    if tail >= 2**32:
        raise ValueError("the padding must fit one 32-bit box")
    yield core
    yield struct.pack(">I4s", tail, b"free") + content_seed[:SEED_BYTES].ljust(SEED_BYTES, b"\0")
    block = _pattern_block(content_seed)
    full, rest = divmod(tail - MIN_TAIL, BLOCK_SIZE)
    for _ in range(full):
        yield block
    if rest:
        yield block[:rest]


async def stream_chunks(
    chunks: Iterable[bytes],
    *,
    stop_after: int | None = None,
    pause: float = 0.0,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> AsyncIterator[bytes]:
    """``chunks`` as an async stream; with ``stop_after``, raise after that many bytes; with
    ``pause``, wait that long between chunks (a slow link).

    The exception (``TruncatedStream``) escapes the ASGI app mid-body so the server drops the
    connection: the client gets fewer bytes than the Content-Length it was promised.
    """
    sent = 0
    for chunk in chunks:
        if stop_after is not None and sent + len(chunk) >= stop_after:
            if stop_after > sent:
                yield chunk[: stop_after - sent]
            raise TruncatedStream(f"sandbox fault: body cut after {stop_after} bytes")
        sent += len(chunk)
        yield chunk
        if pause:
            await sleep(pause)


class TruncatedStream(Exception):
    """Raised on purpose inside a response body to cut the connection."""


def video_bytes_for(core: bytes, content_seed: bytes, video_bytes: int) -> bytes:
    """The whole served file (for tests: what ``/content`` must have served)."""
    return b"".join(iter_video_chunks(core, content_seed, video_bytes))
