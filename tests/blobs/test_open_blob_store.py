"""``open_blob_store`` picks the adapter by URL scheme and hands the S3 options through."""

from __future__ import annotations

import pytest

from gateway.blobs.base import open_blob_store
from gateway.blobs.filesystem import FilesystemBlobStore
from gateway.blobs.s3 import S3BlobStore, parse_s3_url


@pytest.mark.parametrize(
    ("url", "bucket", "prefix"),
    [
        ("s3://videos", "videos", ""),
        ("s3://videos/", "videos", ""),
        ("s3://videos/gateway", "videos", "gateway/"),
        ("s3://videos/team/gateway/", "videos", "team/gateway/"),
    ],
)
def test_parse_s3_url(url: str, bucket: str, prefix: str):
    assert parse_s3_url(url) == (bucket, prefix)


@pytest.mark.parametrize("url", ["s3://", "s3:///prefix", "s3://b/p?x=1", "gs://b/p", "/data"])
def test_bad_urls_are_refused(url: str):
    with pytest.raises(ValueError, match=r"storage\.url"):
        open_blob_store(url)


async def test_s3_url_opens_the_s3_adapter_with_its_options():
    store = open_blob_store(
        "s3://videos/gateway",
        endpoint_url="http://127.0.0.1:9000",
        region="eu-west-1",
        path_style=True,
        access_key_id="AKIDEXAMPLE",
        secret_access_key="very-secret-value",
    )
    try:
        assert isinstance(store, S3BlobStore)
        assert (store.bucket, store.prefix, store.endpoint_url) == (
            "videos",
            "gateway/",
            "http://127.0.0.1:9000",
        )
        assert "very-secret-value" not in repr(store)
    finally:
        await store.close()  # never used: nothing was opened, nothing to release


async def test_empty_option_strings_mean_unset():
    store = S3BlobStore("videos", endpoint_url="", region="", access_key_id="")
    assert store.endpoint_url is None
    await store.close()


def test_part_size_below_the_s3_minimum_is_refused():
    with pytest.raises(ValueError, match="part_size"):
        S3BlobStore("videos", part_size=1024 * 1024)


async def test_file_url_opens_the_filesystem_adapter_and_ignores_s3_options(tmp_path):
    store = open_blob_store(f"file://{tmp_path}", endpoint_url="http://ignored", path_style=True)
    assert isinstance(store, FilesystemBlobStore)
    await store.close()
