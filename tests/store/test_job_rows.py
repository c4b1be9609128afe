"""The job row codec: every request shape ever stored decodes to a ``VideoRequest`` and is
written back unchanged; ``JobChanges`` (what mypy checks) and the columns the SQL builders
accept (``UPDATABLE_JOB_FIELDS``) are one list, typed like the ``Job`` fields."""

from __future__ import annotations

import sqlite3
import typing
from contextlib import closing
from typing import Any

import asyncpg
import orjson
import pytest

from gateway.domain.video_request import ContentItem, StoredMedia, VideoRequest
from gateway.ids import new_id
from gateway.store.base import UPDATABLE_JOB_FIELDS, ApiKey, Job, JobChanges, Store

from .conftest import NOW, StoreTarget

DIGEST = "ab" * 32
IMAGE = {
    "type": "image_url",
    "image_url": {"url": "https://example.com/a.png"},
    "role": "first_frame",
}
BASE: dict[str, Any] = {
    "model": "seedance-1",
    "prompt": "a cat",
    "ratio": "16:9",
    "resolution": "720p",
    "duration": 5,
    "generate_audio": False,
    "return_last_frame": False,
    "watermark": False,
}

# What request_json has held: the first release (no seed, no segments), a seeded request with
# a URL reference, an inline image moved to the blob store (migration 0007), and a chained
# video (storyboard segments, media kept inline).
STORED_SHAPES: dict[str, dict[str, Any]] = {
    "first release": {**BASE, "content": []},
    "seeded, URL reference": {**BASE, "content": [IMAGE], "seed": 7},
    "inline media in the blob store": {
        **BASE,
        "content": [
            {
                "type": "image_url",
                "image_url": {
                    "url": f"blob:sha256:{DIGEST}",
                    "sha256": DIGEST,
                    "bytes": 1234,
                    "media_type": "image/png",
                },
                "role": "first_frame",
            }
        ],
    },
    "chained, media inline": {
        **BASE,
        "duration": 20,
        "content": [
            {
                "type": "image_url",
                "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="},
                "role": "first_frame",
            }
        ],
        "segments": [{"prompt": "one", "duration": 10}, {"prompt": "two", "duration": 10}],
    },
}


async def _set_request_json(target: StoreTarget, job_id: str, text: str) -> None:
    """Write a row's stored request as an older release would have."""
    if target.adapter == "sqlite":
        with closing(sqlite3.connect(target.url.removeprefix("sqlite:///"))) as plain:
            plain.execute("UPDATE jobs SET request_json = ? WHERE id = ?", (text, job_id))
            plain.commit()
        return
    connection = await asyncpg.connect(target.url)
    try:
        await connection.execute("UPDATE jobs SET request_json = $1 WHERE id = $2", text, job_id)
    finally:
        await connection.close()


@pytest.mark.parametrize("shape", list(STORED_SHAPES))
async def test_every_stored_request_shape_decodes_and_round_trips(
    store: Store, target: StoreTarget, key: ApiKey, shape: str
) -> None:
    stored = STORED_SHAPES[shape]
    job = Job(
        id=new_id("video", now=NOW),
        team_id=key.team_id,
        key_id=key.id,
        model="seedance-1",
        request=VideoRequest(model="seedance-1", prompt="placeholder"),
        status="queued",
        created_at=NOW,
        updated_at=NOW,
    )
    await store.insert_job(job)
    await _set_request_json(target, job.id, orjson.dumps(stored).decode())

    fetched = await store.get_job(job.id)
    assert fetched is not None
    assert isinstance(fetched.request, VideoRequest)
    assert fetched.request.to_json() == stored  # nothing the row held is lost
    (listed,), _ = await store.list_jobs(key.team_id, after=None, limit=10, order="asc")
    assert listed.request == fetched.request

    # Written back through the codec (any update rewrites no request; an insert does).
    copy = Job(**{**_fields(fetched), "id": new_id("video", now=NOW + 1)})
    await store.insert_job(copy)
    again = await store.get_job(copy.id)
    assert again is not None and again.request == fetched.request


def _fields(job: Job) -> dict[str, Any]:
    return {name: getattr(job, name) for name in Job.__dataclass_fields__}


def test_stored_media_is_typed() -> None:
    request = VideoRequest.from_json(STORED_SHAPES["inline media in the blob store"])
    assert request.content == (
        ContentItem(
            type="image_url",
            url=f"blob:sha256:{DIGEST}",
            role="first_frame",
            stored=StoredMedia(sha256=DIGEST, bytes=1234, media_type="image/png"),
        ),
    )


def test_job_changes_are_exactly_the_updatable_columns_with_the_job_types() -> None:
    changes = typing.get_type_hints(JobChanges)
    job = typing.get_type_hints(Job)
    assert set(changes) == UPDATABLE_JOB_FIELDS
    assert JobChanges.__required_keys__ == frozenset()
    assert {name: job[name] for name in changes} == changes
    # Identity, ownership, the request and money never change through an update.
    assert UPDATABLE_JOB_FIELDS.isdisjoint(
        {"id", "team_id", "key_id", "model", "request", "created_at", "price_micros"}
        | {"cost_micros", "charged_micros", "money_state", "reserved_at", "settled_micros"}
    )


async def test_a_column_outside_job_changes_is_never_written(store: Store, key: ApiKey) -> None:
    """mypy refuses such a key; at run time the SQL builder refuses it too."""
    job = Job(
        id=new_id("video", now=NOW),
        team_id=key.team_id,
        key_id=key.id,
        model="m",
        request=VideoRequest(model="m", prompt="p"),
        status="queued",
        created_at=NOW,
        updated_at=NOW,
    )
    await store.insert_job(job)
    smuggled: Any = {"money_state": "charged"}
    with pytest.raises(ValueError, match="money_state"):
        await store.update_job(job.id, smuggled)
    unchanged = await store.get_job(job.id)
    assert unchanged is not None and unchanged.money_state == "none"
