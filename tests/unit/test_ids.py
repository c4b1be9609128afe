"""Ids: format, time order, and the pooled randomness never handing out the same bytes twice
(across threads and across a fork)."""

from __future__ import annotations

import os
import re
import threading

from gateway.ids import RandomPool, new_id, new_request_id


def test_formats_and_time_order() -> None:
    assert re.fullmatch(r"video_[0-9a-f]{12}[0-9a-f]{16}", new_id("video"))
    assert re.fullmatch(r"req_[0-9a-f]{24}", new_request_id())
    assert new_id("video", now=1000.0) < new_id("video", now=1000.002)


def test_ids_are_unique_past_many_refills() -> None:
    ids = {new_request_id() for _ in range(20_000)}  # ~60 refills of the 4 KiB pool
    assert len(ids) == 20_000


def test_a_small_pool_refills_and_serves_requests_larger_than_itself() -> None:
    pool = RandomPool(size=16)
    parts = [pool.hex(6) for _ in range(10)]
    assert all(len(p) == 12 for p in parts) and len(set(parts)) == 10
    assert len(pool.hex(40)) == 80


def test_threads_never_get_the_same_slice() -> None:
    pool = RandomPool(size=64)
    seen: list[str] = []
    lock = threading.Lock()

    def take() -> None:
        mine = [pool.hex(8) for _ in range(2_000)]
        with lock:
            seen.extend(mine)

    threads = [threading.Thread(target=take) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(seen)) == len(seen) == 16_000


def test_a_forked_child_draws_its_own_bytes() -> None:
    new_request_id()  # the parent's pool now holds bytes a child must not reuse
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read)
        os.write(write, new_request_id().encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 100).decode()
    os.close(read)
    os.waitpid(pid, 0)
    parent = new_request_id()
    assert child != parent
