"""Database bytes per video row: how much one finished video costs the database.

Writes ``--videos`` realistic finished jobs through the store port (a 300-character prompt, a
first frame sent inline and moved to the blob store by admission, signed upstream links of
~700 characters while downloading (cleared on completion), a cache key, a last frame) and reports the bytes the ``jobs`` table and its
indexes take per row: SQLite via ``dbstat``, PostgreSQL via ``pg_total_relation_size`` (when
``--postgres URL`` is given). Target: at most 4 KiB per row without inline media.

    .venv/bin/python -m bench.row_bytes [--videos 2000] [--postgres postgresql://127.0.0.1/db]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

from gateway.domain.inline_media import MediaRef, with_references
from gateway.ids import new_id
from gateway.store.base import Asset, Job, Store
from gateway.store.opening import open_store

TARGET = 4096
PROMPT = ("A slow dolly shot through a rain-soaked neon market at night, " * 5)[:300]
SIGNED = "https://ark-content.tos-cn-beijing.volces.com/out/{}.mp4?X-Tos-Algorithm=TOS4-HMAC-SHA256"
SIGNED += "&X-Tos-Credential=" + "A" * 120 + "&X-Tos-Date=20261127T031900Z&X-Tos-Expires=86400"
SIGNED += "&X-Tos-Signature=" + "f" * 64 + "&X-Tos-SignedHeaders=host" + "&x=" + "q" * 300


def request(index: int) -> dict[str, Any]:
    image = f"data:image/png;base64,{'A' * 64}"  # replaced by a reference, as admission does
    body: dict[str, Any] = {
        "model": "doubao-seedance-2-0-fast-260128",
        "prompt": f"{PROMPT} #{index}",
        "content": [{"type": "image_url", "image_url": {"url": image}, "role": "first_frame"}],
        "ratio": "16:9",
        "resolution": "720p",
        "duration": 5,
        "generate_audio": True,
        "return_last_frame": True,
        "watermark": False,
        "seed": index,
    }
    digest = hashlib.sha256(str(index).encode()).hexdigest()
    return with_references(body, [MediaRef(0, digest, 1_048_576, "image/png")])


async def fill(store: Store, videos: int) -> None:
    await store.migrate()
    team = await store.create_team("bench", 0)
    key = await store.create_key(team_id=team.id, name="k", key_hash="h", prefix="sk-gw-b", now=0)
    now = 1_800_000_000
    for index in range(videos):
        job = Job(
            id=new_id("video", now=now + index),
            team_id=team.id,
            key_id=key.id,
            model="doubao-seedance-2-0-fast-260128",
            request=request(index),
            status="queued",
            created_at=now + index,
            updated_at=now + index,
            price_micros=565_000,
            cost_micros=565_000,
            cache_key=hashlib.sha256(f"cache{index}".encode()).hexdigest(),
            upstream_id=f"cgt-2026112703190{index:08d}-abcdef",
        )
        await store.insert_job(job)
        video = hashlib.sha256(f"video{index}".encode()).hexdigest()
        await store.update_job(  # downloading: the signed links are in the row ...
            job.id,
            {
                "status": "downloading",
                "upstream_video_url": SIGNED.format(index),
                "upstream_last_frame_url": SIGNED.format(index).replace(".mp4", ".png"),
                "upstream_finished_at": now + index + 55.5,
                "refreshed_at": now + index + 55.5,
                "delivered_seconds": 5,
            },
        )
        await store.update_job(  # ... and gone once the video is stored (services/jobs.py)
            job.id,
            {
                "status": "completed",
                "progress": 100,
                "completed_at": now + index + 60,
                "upstream_video_url": None,
                "upstream_last_frame_url": None,
            },
        )
        await store.attach_media(job.id, [Asset(video, 1_048_576, "image/png")], now)


async def sqlite_bytes(videos: int) -> float:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "rows.db"
        store = await open_store(f"sqlite:///{path}")
        try:
            await fill(store, videos)
        finally:
            await store.close()
        with sqlite3.connect(path) as db:
            (size,) = db.execute(
                "SELECT SUM(pgsize) FROM dbstat WHERE name = 'jobs'"
                " OR name IN (SELECT name FROM sqlite_master WHERE tbl_name = 'jobs')"
            ).fetchone()
        return float(size) / videos


async def postgres_bytes(url: str, videos: int) -> float:
    store = await open_store(url)
    try:
        await fill(store, videos)
    finally:
        await store.close()
    import asyncpg

    connection = await asyncpg.connect(url)
    try:
        # Compacted: the dead versions two updates per row leave behind are reused by later
        # rows in a running database, so they are not part of a row's lasting cost.
        await connection.execute("VACUUM FULL ANALYZE jobs")
        size = await connection.fetchval("SELECT pg_total_relation_size('jobs')")
    finally:
        await connection.close()
    return float(size) / videos


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=2000)
    parser.add_argument("--postgres", help="an empty PostgreSQL database URL to measure too")
    args = parser.parse_args()
    results = {"sqlite": asyncio.run(sqlite_bytes(args.videos))}
    if args.postgres:
        results["postgresql"] = asyncio.run(postgres_bytes(args.postgres, args.videos))
    for name, per_row in results.items():
        verdict = "ok" if per_row <= TARGET else "OVER TARGET"
        print(
            f"{name}: {per_row:,.0f} bytes per video row (jobs + indexes; target {TARGET}): {verdict}"
        )


if __name__ == "__main__":
    main()
