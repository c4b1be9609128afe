"""The bytes the sandbox serves: a deterministic MP4 of any size and a tiny PNG last frame.

An MP4 is an ``ftyp`` box, then one ``mdat`` box filling the rest; every byte at file offset
``i`` past the header is ``block[i % BLOCK_SIZE]`` where ``block`` is 64 KiB of SHAKE-256 output
keyed by the content seed. So the file streams as the same few ``bytes`` objects over and over:
no copy per chunk, no whole file in memory. Pure: no I/O.
"""

from __future__ import annotations

import asyncio
import hashlib
import struct
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from functools import lru_cache

BLOCK_SIZE = 64 * 1024
FTYP = struct.pack(
    ">I4s4sI4s4s4s4s", 32, b"ftyp", b"isom", 0x200, b"isom", b"iso2", b"avc1", b"mp41"
)
HEADER_SIZE = len(FTYP) + 8  # ftyp box + the mdat box header
PNG_SIDE = 16


@lru_cache(maxsize=64)
def _pattern_block(content_seed: bytes) -> bytes:
    return hashlib.shake_256(b"sandbox-mp4:" + content_seed).digest(BLOCK_SIZE)


def _first_block(content_seed: bytes, size: int) -> bytes:
    """The first BLOCK_SIZE bytes of the file (the header laid over the pattern)."""
    mdat = struct.pack(">I4s", size - len(FTYP), b"mdat")
    return FTYP + mdat + _pattern_block(content_seed)[HEADER_SIZE:]


def iter_video_chunks(content_seed: bytes, size: int) -> Iterator[bytes]:
    """The MP4 of exactly ``size`` bytes for ``content_seed``, in chunks of at most 64 KiB."""
    if size < HEADER_SIZE:
        raise ValueError(f"an MP4 needs at least {HEADER_SIZE} bytes")
    first = _first_block(content_seed, size)
    if size <= BLOCK_SIZE:
        yield first[:size]
        return
    yield first
    block = _pattern_block(content_seed)
    full, rest = divmod(size - BLOCK_SIZE, BLOCK_SIZE)
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


def video_bytes_for(content_seed: bytes, size: int) -> bytes:
    """The whole MP4 (for tests: what ``/content`` must have served)."""
    return b"".join(iter_video_chunks(content_seed, size))


@lru_cache(maxsize=256)
def png_bytes_for(content_seed: bytes) -> bytes:
    """A valid 16x16 RGB PNG whose pixels derive from ``content_seed``."""
    pixels = hashlib.shake_256(b"sandbox-png:" + content_seed).digest(PNG_SIDE * PNG_SIDE * 3)
    row = PNG_SIDE * 3
    raw = b"".join(b"\x00" + pixels[y * row : (y + 1) * row] for y in range(PNG_SIDE))
    header = struct.pack(">IIBBBBB", PNG_SIDE, PNG_SIDE, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(raw, 9))
        + _png_chunk(b"IEND", b"")
    )


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
