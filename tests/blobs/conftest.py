"""Fixtures for the blob-store contract suite: one empty ``BlobStore`` per adapter.

Each adapter comes with a ``BlobTarget``: how to open it, and the few adapter-specific probes the
contract needs (what temporary state is left, how a crash abandons an upload, an unwritable store).
The S3 adapter runs against a real SeaweedFS server started once per session.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from gateway.blobs.base import BlobStore, open_blob_store
from tests.blobs.seaweed import ACCESS_KEY_ID, BUCKET, REGION, SECRET_ACCESS_KEY, SeaweedServer

ADAPTERS = [pytest.param("filesystem", id="filesystem"), pytest.param("s3", id="s3")]


@dataclass
class BlobTarget:
    url: str
    leftovers: Callable[[], int]  # temporary files, objects or uploads present now
    abandon: Callable[[], int]  # leave uploads behind as a crash would; how many
    unwritable: Callable[[], BlobStore]
    options: dict[str, Any] = field(default_factory=dict)

    def open(self) -> BlobStore:
        return open_blob_store(self.url, **self.options)


def filesystem_target(root: Path) -> BlobTarget:
    tmp = root / "tmp"

    def abandon() -> int:
        (tmp / f"{secrets.token_hex(16)}.part").write_bytes(b"half a video")
        return 1

    def unwritable() -> BlobStore:
        store = open_blob_store(f"file://{root.parent / 'unwritable'}")
        (root.parent / "unwritable" / "tmp").rmdir()
        (root.parent / "unwritable" / "tmp").write_bytes(b"not a directory")
        return store

    return BlobTarget(
        url=f"file://{root}",
        leftovers=lambda: len(list(tmp.iterdir())) if tmp.exists() else 0,
        abandon=abandon,
        unwritable=unwritable,
    )


def s3_target(server: SeaweedServer, prefix: str) -> BlobTarget:
    client = server.client
    options = {
        "endpoint_url": server.endpoint_url,
        "region": REGION,
        "path_style": True,
        "access_key_id": ACCESS_KEY_ID,
        "secret_access_key": SECRET_ACCESS_KEY,
    }
    tmp = f"{prefix}/tmp/"

    def leftovers() -> int:
        objects = client.list_objects_v2(Bucket=BUCKET, Prefix=tmp).get("Contents", [])
        uploads = client.list_multipart_uploads(Bucket=BUCKET, Prefix=tmp).get("Uploads", [])
        return len(objects) + len(uploads)

    def abandon() -> int:
        client.put_object(Bucket=BUCKET, Key=f"{tmp}{secrets.token_hex(16)}", Body=b"completed")
        name = f"{tmp}{secrets.token_hex(16)}"
        upload = client.create_multipart_upload(Bucket=BUCKET, Key=name)
        client.upload_part(
            Bucket=BUCKET, Key=name, UploadId=upload["UploadId"], PartNumber=1, Body=b"x" * 1024
        )
        return 2

    return BlobTarget(
        url=f"s3://{BUCKET}/{prefix}",
        options=options,
        leftovers=leftovers,
        abandon=abandon,
        unwritable=lambda: open_blob_store(
            f"s3://{BUCKET}/{prefix}", **{**options, "secret_access_key": "wrong-secret"}
        ),
    )


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedServer]:
    server = SeaweedServer(tmp_path_factory.mktemp("seaweedfs"))
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(params=ADAPTERS)
def target(request: pytest.FixtureRequest, tmp_path: Path) -> BlobTarget:
    if request.param == "filesystem":
        return filesystem_target(tmp_path / "blobs")
    server: SeaweedServer = request.getfixturevalue("seaweed")
    return s3_target(server, prefix=f"test-{secrets.token_hex(6)}")


@pytest.fixture
async def store(target: BlobTarget) -> AsyncIterator[BlobStore]:
    opened = target.open()
    try:
        yield opened
    finally:
        await opened.close()
