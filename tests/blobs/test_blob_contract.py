"""The blob-store contract: every adapter (local directory, S3-compatible) behaves the same.

Sizes above ``PART`` make the S3 adapter take its multipart path (temporary key, server-side
copy); smaller ones take its single-PUT path.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tracemalloc
from collections.abc import AsyncIterator

import pytest

from gateway.blobs.base import BlobError, BlobStore, IncompleteBlob
from tests.blobs.conftest import BlobTarget

MiB = 1024 * 1024
PART = 8 * MiB  # the S3 adapter's default part size
SMALL = 300 * 1024 + 7
MULTIPART = PART + MiB + 3
UNKNOWN = "0" * 64


async def stream(data: bytes, chunk: int = 64 * 1024) -> AsyncIterator[bytes]:
    for offset in range(0, len(data), chunk):
        yield data[offset : offset + chunk]


async def read(store: BlobStore, key: str, start: int = 0, end: int | None = None) -> bytes:
    return b"".join([chunk async for chunk in store.open_range(key, start, end)])


async def listed(store: BlobStore) -> list[str]:
    return [key async for key in store.keys()]  # noqa: SIM118 (an async iterator, not a dict)


async def assert_nothing_left(store: BlobStore, target: BlobTarget) -> None:
    assert await listed(store) == []
    assert target.leftovers() == 0
    assert await store.sweep_temporary(0) == 0


@pytest.mark.parametrize("size", [0, SMALL, MULTIPART], ids=["empty", "small", "multipart"])
async def test_put_then_stat_and_read_back(store: BlobStore, target: BlobTarget, size: int):
    data = os.urandom(size)
    info = await store.put(stream(data), expected_size=size)
    assert info.key == hashlib.sha256(data).hexdigest()
    assert info.size == size
    assert await store.stat(info.key) == info
    assert await read(store, info.key) == data
    assert target.leftovers() == 0


async def test_put_without_expected_size(store: BlobStore):
    data = os.urandom(SMALL)
    info = await store.put(stream(data), expected_size=None)
    assert (info.key, info.size) == (hashlib.sha256(data).hexdigest(), SMALL)


async def test_stat_of_unknown_key_is_none(store: BlobStore):
    assert await store.stat(UNKNOWN) is None


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (1000, None),  # start only
        (1000, 5000),  # start and end
        (SMALL - 1, SMALL),  # the last byte
        (SMALL - 1, None),
        (0, None),  # whole
        (0, SMALL),
        (0, 1),  # the first byte
        (7, 7),  # empty range
        (SMALL, None),  # at the end: nothing
    ],
)
async def test_ranges(store: BlobStore, start: int, end: int | None):
    data = os.urandom(SMALL)
    info = await store.put(stream(data), expected_size=SMALL)
    assert await read(store, info.key, start, end) == data[start:end]


async def test_range_of_a_multipart_object_crosses_parts(store: BlobStore):
    data = os.urandom(MULTIPART)
    info = await store.put(stream(data, chunk=MiB), expected_size=MULTIPART)
    assert await read(store, info.key, PART - 10, PART + 10) == data[PART - 10 : PART + 10]


@pytest.mark.parametrize(
    ("start", "end"),
    [(0, None), (MiB - 5, 2 * MiB + 5), (MiB, None), (3, 2 * MiB)],
)
async def test_ranges_across_read_chunks(store: BlobStore, start: int, end: int | None):
    """Reads come in chunks (1 MiB on the filesystem, 256 KiB on S3): ranges across them."""
    data = os.urandom(2 * MiB + 1000)
    info = await store.put(stream(data, chunk=MiB), expected_size=len(data))
    assert await read(store, info.key, start, end) == data[start:end]


async def test_reading_a_missing_blob_raises(store: BlobStore):
    with pytest.raises(BlobError):
        await read(store, UNKNOWN)


@pytest.mark.parametrize("size", [SMALL, MULTIPART], ids=["small", "multipart"])
async def test_identical_bytes_are_stored_once(store: BlobStore, target: BlobTarget, size: int):
    data = os.urandom(size)
    first = await store.put(stream(data, chunk=4096 if size == SMALL else MiB), expected_size=size)
    second = await store.put(stream(data, chunk=MiB), expected_size=size)
    assert first == second
    assert await listed(store) == [first.key]
    assert target.leftovers() == 0
    assert await read(store, first.key) == data


@pytest.mark.parametrize("size", [SMALL, MULTIPART], ids=["small", "multipart"])
@pytest.mark.parametrize("offset", [1, -1], ids=["too-short", "too-long"])
async def test_size_mismatch_is_refused_and_leaves_nothing(
    store: BlobStore, target: BlobTarget, size: int, offset: int
):
    data = os.urandom(size)
    with pytest.raises(IncompleteBlob) as refused:
        await store.put(stream(data, chunk=MiB), expected_size=size + offset)
    assert refused.value.expected == size + offset
    assert await store.stat(hashlib.sha256(data).hexdigest()) is None
    await assert_nothing_left(store, target)


@pytest.mark.parametrize("size", [SMALL, MULTIPART], ids=["small", "multipart"])
async def test_source_failing_midway_leaves_nothing(
    store: BlobStore, target: BlobTarget, size: int
):
    async def failing() -> AsyncIterator[bytes]:
        async for chunk in stream(os.urandom(size), chunk=MiB):
            yield chunk
        raise RuntimeError("upstream connection reset")

    with pytest.raises(RuntimeError, match="upstream connection reset"):
        await store.put(failing(), expected_size=None)
    await assert_nothing_left(store, target)


async def test_cancelled_put_leaves_nothing(store: BlobStore, target: BlobTarget):
    stalled = asyncio.Event()

    async def stalling() -> AsyncIterator[bytes]:
        async for chunk in stream(os.urandom(MULTIPART), chunk=MiB):
            yield chunk
        stalled.set()
        await asyncio.Event().wait()  # the upstream goes quiet
        yield b"never"

    put = asyncio.create_task(store.put(stalling(), expected_size=None))
    await asyncio.wait_for(stalled.wait(), timeout=30)
    put.cancel()
    with pytest.raises(asyncio.CancelledError):
        await put
    await assert_nothing_left(store, target)


async def test_sweep_spares_a_slow_put_in_progress(store: BlobStore, target: BlobTarget):
    data = os.urandom(MULTIPART)
    stalled, resume = asyncio.Event(), asyncio.Event()

    async def slow() -> AsyncIterator[bytes]:
        yield data[: PART + 1]
        stalled.set()
        await resume.wait()
        yield data[PART + 1 :]

    put = asyncio.create_task(store.put(slow(), expected_size=MULTIPART))
    await asyncio.wait_for(stalled.wait(), timeout=30)
    assert target.leftovers() == 1
    assert await store.sweep_temporary(0) == 0
    resume.set()
    info = await put
    assert await read(store, info.key) == data
    assert target.leftovers() == 0


async def test_delete_is_idempotent(store: BlobStore):
    info = await store.put(stream(b"video bytes"), expected_size=11)
    await store.delete(info.key)
    assert await store.stat(info.key) is None
    await store.delete(info.key)
    await store.delete(UNKNOWN)
    assert await listed(store) == []


async def test_keys_lists_exactly_what_is_stored(store: BlobStore):
    assert await listed(store) == []
    infos = [await store.put(stream(os.urandom(100 + n)), expected_size=100 + n) for n in range(3)]
    assert sorted(await listed(store)) == sorted(info.key for info in infos)
    await store.delete(infos[1].key)
    assert sorted(await listed(store)) == sorted([infos[0].key, infos[2].key])


async def test_sweep_removes_only_abandoned_uploads_older_than_asked(
    store: BlobStore, target: BlobTarget
):
    kept = await store.put(stream(b"a finished video"), expected_size=16)
    abandoned = target.abandon()
    assert target.leftovers() == abandoned
    assert await store.sweep_temporary(3600) == 0  # too recent
    assert target.leftovers() == abandoned
    await asyncio.sleep(1.1)  # S3 timestamps have whole seconds
    assert await store.sweep_temporary(1) == abandoned
    assert target.leftovers() == 0
    assert await store.sweep_temporary(0) == 0
    assert await listed(store) == [kept.key]


async def test_check_writable(store: BlobStore, target: BlobTarget):
    await store.check_writable()
    assert target.leftovers() == 0
    unwritable = target.unwritable()
    try:
        with pytest.raises(BlobError):
            await unwritable.check_writable()
    finally:
        await unwritable.close()


async def test_invalid_keys_are_refused(store: BlobStore):
    for bad in ("../etc/passwd", "abc", "F" * 64, UNKNOWN + "0"):
        with pytest.raises(BlobError):
            await store.stat(bad)


async def test_large_object_streams_in_constant_memory(store: BlobStore):
    size, chunk = 40 * MiB, MiB
    block = os.urandom(chunk)

    async def source() -> AsyncIterator[bytes]:
        for n in range(size // chunk):
            yield n.to_bytes(4, "big") + block[4:]  # a fresh MiB each time, like a download

    expected = hashlib.sha256()
    for n in range(size // chunk):
        expected.update(n.to_bytes(4, "big") + block[4:])
    await store.stat(UNKNOWN)  # warm up: the S3 client loads its models on first use

    tracemalloc.start()
    try:
        info = await store.put(source(), expected_size=size)
        put_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        digest, received = hashlib.sha256(), 0
        async for piece in store.open_range(info.key):
            digest.update(piece)
            received += len(piece)
        read_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert (info.key, info.size) == (expected.hexdigest(), size)
    assert (digest.hexdigest(), received) == (expected.hexdigest(), size)
    print(f"peak memory: put {put_peak / MiB:.1f} MiB, read {read_peak / MiB:.1f} MiB")
    assert put_peak < 2 * PART < size  # a part in memory (S3), never the whole object
    assert read_peak < 3 * MiB  # the piece held and the next read (1 MiB each): constant
