"""Blob storage in a local directory: ``objects/ab/<sha256>`` plus ``tmp/`` for uploads in flight.

A put writes to a temporary file, hashes while writing, checks the length, fsyncs, then renames
into place, so a crash never leaves a partial object where a reader can see it. File I/O runs in
worker threads so the event loop never blocks on the disk.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import shutil
import time
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path
from typing import BinaryIO

from gateway.blobs.base import BlobError, BlobInfo, IncompleteBlob, StorageFailed
from gateway.errors import OutageTypes

READ_CHUNK = 1024 * 1024  # one read (and one send) for a 1 MiB video
WRITE_BUFFER = 256 * 1024
TEMP_SUFFIX = ".part"


class FilesystemBlobStore:
    outage_errors: OutageTypes = ()  # a local disk is not "briefly" down

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.objects = self.root / "objects"
        self.tmp = self.root / "tmp"
        self.objects.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)
        # Uploads this process is writing: the sweep never touches them, however slow.
        self._active: set[str] = set()

    def path_for(self, key: str) -> Path:
        if len(key) != 64 or any(c not in "0123456789abcdef" for c in key):
            raise BlobError(f"not a blob key: {key!r}")
        return self.objects / key[:2] / key

    async def put(self, chunks: AsyncIterable[bytes], *, expected_size: int | None) -> BlobInfo:
        temp = self.tmp / f"{secrets.token_hex(16)}{TEMP_SUFFIX}"
        self._active.add(temp.name)
        try:
            return await self._write(temp, chunks, expected_size)
        except OSError as exc:  # ENOSPC, EROFS, EIO: a storage error, not a crash
            raise StorageFailed(exc) from exc
        finally:
            self._active.discard(temp.name)

    async def _write(
        self, temp: Path, chunks: AsyncIterable[bytes], expected_size: int | None
    ) -> BlobInfo:
        digest = hashlib.sha256()
        size = 0
        # Opened here, not in a worker thread: a cancellation while a thread opened it would
        # leave the file open and the temporary file behind. One syscall.
        fh = open(temp, "wb")  # noqa: ASYNC230, SIM115
        try:
            buffer = bytearray()
            async for chunk in chunks:
                size += len(chunk)
                if expected_size is not None and size > expected_size:
                    raise IncompleteBlob(expected_size, size)
                buffer += chunk
                if len(buffer) >= WRITE_BUFFER:
                    full, buffer = buffer, bytearray()
                    await asyncio.to_thread(_hash_and_write, digest, fh, full)
            if buffer:
                await asyncio.to_thread(_hash_and_write, digest, fh, buffer)
            if expected_size is not None and size != expected_size:
                raise IncompleteBlob(expected_size, size)
            await asyncio.to_thread(_flush_and_sync, fh)
            fh.close()
            key = digest.hexdigest()
            await asyncio.to_thread(self._publish, temp, self.path_for(key))
            return BlobInfo(key=key, size=size)
        except BaseException:
            fh.close()
            temp.unlink(missing_ok=True)  # noqa: ASYNC240 - must run even when cancelled; one syscall
            raise

    def _publish(self, temp: Path, final: Path) -> None:
        # Replaced even when identical bytes are already there: a concurrent delete of the old
        # copy (its last reference just went) then cannot take this new one with it.
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(temp, final)
        _sync_directory(final.parent)

    async def stat(self, key: str) -> BlobInfo | None:
        try:
            st = await asyncio.to_thread(os.stat, self.path_for(key))
        except FileNotFoundError:
            return None
        return BlobInfo(key=key, size=st.st_size)

    async def open_range(
        self, key: str, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        # Opening and the first read share one thread hop, and reads are 1 MiB: a 1 MiB video
        # costs one hop, where 256 KiB reads through a file object cost five (measured in
        # bench/README.md's History).
        path = self.path_for(key)
        try:
            fd, chunk = await asyncio.to_thread(_open_and_read, path, start, _wanted(start, end))
        except FileNotFoundError as exc:
            raise BlobError(f"blob {key} is missing") from exc
        try:
            offset = start
            while chunk:
                offset += len(chunk)
                yield chunk
                want = _wanted(offset, end)
                if want == 0:
                    break
                chunk = await asyncio.to_thread(os.pread, fd, want, offset)
        finally:
            os.close(fd)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self.path_for(key).unlink, missing_ok=True)

    async def keys(self) -> AsyncIterator[str]:
        names = await asyncio.to_thread(_list_objects, self.objects)
        for name in names:
            yield name

    async def sweep_temporary(self, older_than_seconds: float) -> int:
        cutoff = time.time() - older_than_seconds
        return await asyncio.to_thread(_sweep, self.tmp, cutoff, frozenset(self._active))

    async def check_writable(self) -> None:
        probe = self.tmp / f"probe-{secrets.token_hex(4)}"
        try:
            await asyncio.to_thread(probe.write_bytes, b"ok")
            await asyncio.to_thread(probe.unlink)
        except OSError as exc:
            raise BlobError(f"blob directory {self.root} is not writable: {exc}") from exc

    async def free_bytes(self) -> int | None:
        usage = await asyncio.to_thread(shutil.disk_usage, self.root)
        return usage.free

    async def close(self) -> None:
        """Nothing to release: every file is closed when its call returns."""


def _hash_and_write(digest: hashlib._Hash, fh: BinaryIO, data: bytearray) -> None:
    """Hash and write one buffer on a worker thread, in order: the sha256 of a large video on
    the event loop took about 7% of its time while the runner persisted 80 MiB/s (bench/README.md,
    "Busy"), and hashlib releases the GIL for buffers this size."""
    digest.update(data)
    fh.write(data)


def _flush_and_sync(fh: object) -> None:
    fh.flush()  # type: ignore[attr-defined]
    os.fsync(fh.fileno())  # type: ignore[attr-defined]


def _sync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _list_objects(objects: Path) -> list[str]:
    return sorted(p.name for p in objects.glob("??/*") if len(p.name) == 64)


def _sweep(tmp: Path, cutoff: float, active: frozenset[str]) -> int:
    removed = 0
    for path in tmp.iterdir():
        if path.name in active:
            continue
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            continue
    return removed


def _wanted(offset: int, end: int | None) -> int:
    """How many bytes the next read asks for: a chunk, or what is left of ``[offset, end)``."""
    return READ_CHUNK if end is None else max(0, min(READ_CHUNK, end - offset))


def _open_and_read(path: Path, start: int, want: int) -> tuple[int, bytes]:
    """Open ``path`` and read its first ``want`` bytes from ``start``; the caller closes."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return fd, os.pread(fd, want, start) if want else b""
    except BaseException:
        os.close(fd)
        raise
