"""Outage exception types come from the adapters the app opened, not an import-time registry."""

from __future__ import annotations

import sqlite3

import asyncpg
from botocore.exceptions import EndpointConnectionError

from gateway import errors
from gateway.blobs.filesystem import FilesystemBlobStore
from gateway.blobs.s3 import S3BlobStore
from gateway.errors import is_unavailable
from gateway.store.postgres import PostgresStore
from gateway.store.sqlite import SqliteStore


def test_each_adapter_declares_its_drivers_outages() -> None:
    locked = sqlite3.OperationalError("database is locked")
    assert is_unavailable(locked, SqliteStore.outage_errors)
    assert not is_unavailable(locked)  # unknown to an app that opened no SQLite store
    assert is_unavailable(asyncpg.CannotConnectNowError(), PostgresStore.outage_errors)
    unreachable = EndpointConnectionError(endpoint_url="http://s3.test")
    assert is_unavailable(unreachable, S3BlobStore.outage_errors)
    assert FilesystemBlobStore.outage_errors == ()
    assert is_unavailable(ConnectionResetError())  # the standard library's own outages


def test_there_is_no_global_registry() -> None:
    assert not hasattr(errors, "register_unavailable")
    assert not hasattr(errors, "_UNAVAILABLE")
