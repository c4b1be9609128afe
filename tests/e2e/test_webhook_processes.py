"""Webhooks across real gateway processes: a ``kill -9`` between completion and delivery (and
one in the middle of a delivery) loses no event, and two replicas on PostgreSQL deliver each
event once per success."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from openai import OpenAI

from gateway.store.base import Store
from gateway.store.opening import open_store
from tests.conftest import FAST_MODEL, SandboxHandle, wait_for
from tests.e2e.test_processes import finished, post_many
from tests.processes import GatewayProcess, write_config
from tests.store.conftest import ThrowawayDatabase, postgres_database, run_aside  # noqa: F401
from tests.webhooks_support import (
    FAST_WEBHOOKS,
    SECRET_KEY,
    Receiver,
    start_receiver,
    stop_receiver,
    verify_both,
)

BOTH = ["video.completed", "video.failed"]


def config(tmp_path: Path, sandbox: SandboxHandle, database_url: str, **hooks: Any) -> Path:
    return write_config(
        tmp_path / "config.toml",
        {
            "database": {"url": database_url},
            "storage": {"url": f"file://{tmp_path}/blobs"},
            "upstream": {"base_url": sandbox.url, "sandbox": True, "allow_private_links": True},
            "jobs": {
                "poll_min_seconds": 0.05,
                "poll_max_seconds": 0.2,
                "idle_seconds": 0.02,
                "poll_after_ms": 20,
                "refresh_after_seconds": 0.0,
            },
            "webhooks": {**FAST_WEBHOOKS, **hooks},
            "log": {"level": "warning"},
        },
    )


def in_store(url: str, operation: Any) -> Any:
    async def go() -> Any:
        store: Store = await open_store(url)
        try:
            return await operation(store)
        finally:
            await store.close()

    return run_aside(go())


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    made, server = start_receiver(200)
    yield made, f"{server.url}/hooks"
    stop_receiver(made, server)


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Any]:
    started: list[GatewayProcess] = []

    def start(path: Path, **env: str) -> GatewayProcess:
        log = tmp_path / f"gateway-{len(started)}.log"
        proc = GatewayProcess(path, log, env={"GATEWAY_WEBHOOK_SECRET_KEY": SECRET_KEY, **env})
        started.append(proc.start())
        return proc

    yield start
    for proc in started:
        proc.stop()


def test_kill_9_between_completion_and_delivery_loses_no_event(
    tmp_path: Path, sandbox: SandboxHandle, receiver: tuple[Receiver, str], spawn: Any
) -> None:
    hook_receiver, url = receiver
    database = f"sqlite:///{tmp_path}/gateway.db"
    path = config(tmp_path, sandbox, database)
    # This process completes videos but delivers nothing: it dies with the event queued.
    first = spawn(path, GATEWAY_WEBHOOKS__DELIVER="false")
    key = first.new_key("team-crash")
    with OpenAI(base_url=f"{first.url}/v1", api_key=key, max_retries=0) as client:
        hook = client.webhooks.create(name="c", url=url, event_types=BOTH)
        video = client.videos.create_and_poll(
            model=FAST_MODEL, prompt="Survive the crash", poll_interval_ms=20
        )
    assert video.status == "completed"
    [(queued, attempts)] = in_store(database, lambda s: s.list_deliveries(hook.id))
    assert (queued.status, queued.video_id, attempts) == ("pending", video.id, [])
    first.kill()
    assert hook_receiver.snapshot() == []

    spawn(path)
    wait_for(lambda: len(hook_receiver.answered(200)) == 1)
    [received] = hook_receiver.snapshot()
    event = verify_both(received, hook.signing_secret)
    assert (event["id"], event["type"], event["data"]["id"]) == (
        queued.event_id,
        "video.completed",
        video.id,
    )
    assert received.headers["webhook-id"] == queued.id


def test_kill_9_mid_delivery_is_sent_again_after_the_lease(
    tmp_path: Path, sandbox: SandboxHandle, receiver: tuple[Receiver, str], spawn: Any
) -> None:
    hook_receiver, url = receiver
    hook_receiver.status = None  # holds the first request open: the gateway dies waiting
    database = f"sqlite:///{tmp_path}/gateway.db"
    path = config(tmp_path, sandbox, database, timeout_seconds=30.0, lease_seconds=31.0)
    first = spawn(path)
    key = first.new_key("team-inflight")
    with OpenAI(base_url=f"{first.url}/v1", api_key=key, max_retries=0) as client:
        hook = client.webhooks.create(name="c", url=url, event_types=BOTH)
        client.videos.create(model=FAST_MODEL, prompt="In flight")
    wait_for(lambda: len(hook_receiver.snapshot()) == 1)
    first.kill()
    hook_receiver.status = 200
    # Shorten the wait for the dead process's lease: the second process takes it over.
    _expire_leases(tmp_path / "gateway.db")
    spawn(path)
    wait_for(lambda: len(hook_receiver.answered(200)) == 1)
    unanswered, delivered = hook_receiver.snapshot()
    verify_both(delivered, hook.signing_secret)
    assert unanswered.body == delivered.body
    assert unanswered.headers["webhook-id"] == delivered.headers["webhook-id"]


def _expire_leases(path: Path) -> None:
    """What the passage of ``lease_seconds`` does, without waiting for it."""
    with closing(sqlite3.connect(path)) as connection, connection:
        connection.execute(
            "UPDATE webhook_deliveries SET locked_until = 0 WHERE lease_owner IS NOT NULL"
        )


def test_two_replicas_on_postgresql_deliver_each_event_once(
    tmp_path: Path,
    sandbox: SandboxHandle,
    receiver: tuple[Receiver, str],
    spawn: Any,
    postgres_database: ThrowawayDatabase,  # noqa: F811
) -> None:
    hook_receiver, url = receiver
    database = run_aside(postgres_database.new_schema())
    path = config(
        tmp_path,
        sandbox,
        database,
        concurrency_per_endpoint=2,
        timeout_seconds=10.0,
        lease_seconds=20.0,
    )
    one, two = spawn(path), spawn(path)
    key = one.new_key("team-replicas")
    with OpenAI(base_url=f"{two.url}/v1", api_key=key, max_retries=0) as client:
        hook = client.webhooks.create(name="r", url=url, event_types=BOTH)
    bodies = [{"model": FAST_MODEL, "prompt": f"replica {n}"} for n in range(12)]
    responses = post_many([one.url, two.url], key, bodies)
    ids = [r.json()["id"] for r in responses]
    wait_for(lambda: finished(one.url, key, ids), timeout=60)
    wait_for(lambda: len(hook_receiver.answered(200)) >= 12, timeout=60)

    def delivered() -> list[Any]:
        found = in_store(database, lambda s: s.list_deliveries(hook.id))
        return found if all(d.status == "delivered" for d, _ in found) else []

    found = wait_for(delivered)
    assert len(found) == 12
    for _, attempts in found:
        assert [a.outcome for a in attempts].count("delivered") == 1  # no duplicate success
    events = [verify_both(r, hook.signing_secret) for r in hook_receiver.snapshot()]
    assert sorted(e["data"]["id"] for e in events) == sorted(ids)
    assert len({e["id"] for e in events}) == 12
