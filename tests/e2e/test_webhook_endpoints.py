"""Webhook endpoints through the official SDK's ``client.webhooks.*`` against a real gateway:
register, list, retrieve, update, test, rotate, delete; one team never sees another's; URLs
pass the outbound policy; secrets are never stored or answered in plain text after creation.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from gateway.app import create_app
from tests.conftest import ADMIN_TOKEN, GatewayHandle, SandboxHandle
from tests.servers import ServerThread
from tests.webhooks_support import (
    Receiver,
    start_receiver,
    stop_receiver,
    verify_both,
    webhook_settings,
)

BOTH = ["video.completed", "video.failed"]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hook, server = start_receiver(204)
    hook.url = f"{server.url}/hooks"  # type: ignore[attr-defined]
    yield hook
    stop_receiver(hook, server)


@pytest.fixture
def hooks_gateway(tmp_path: Path, sandbox: SandboxHandle) -> Iterator[GatewayHandle]:
    settings = webhook_settings(tmp_path, sandbox.url)
    server = ServerThread(create_app(settings)).start()
    handle = GatewayHandle(server, settings)
    yield handle
    handle.close()
    server.stop()


def test_endpoint_lifecycle_with_the_sdk(hooks_gateway: GatewayHandle, receiver: Any) -> None:
    client = hooks_gateway.client(hooks_gateway.new_key("team-a"))
    assert client.webhooks.event_types.list().data == BOTH
    created = client.webhooks.create(name="primary", url=receiver.url, event_types=BOTH)
    assert created.id.startswith("we_") and created.object == "webhook_endpoint"
    assert created.signing_secret.startswith("whsec_")
    assert created.signing_secret_hint == f"whsec_****{created.signing_secret[-4:]}"
    assert created.event_types == BOTH and created.url == receiver.url

    listed = client.webhooks.list()
    assert [e.id for e in listed.data] == [created.id]
    fetched = client.webhooks.retrieve(created.id)
    assert fetched.name == "primary"
    assert not hasattr(fetched, "signing_secret") or fetched.to_dict().get("signing_secret") is None

    updated = client.webhooks.update(created.id, name="renamed", event_types=["video.failed"])
    assert (updated.name, updated.event_types) == ("renamed", ["video.failed"])

    tested = client.webhooks.test(created.id, event_type="video.completed")
    assert (tested.success, tested.status_code, tested.webhook_endpoint_id) == (
        True,
        204,
        created.id,
    )
    [sample] = receiver.snapshot()
    event = verify_both(sample, created.signing_secret)
    assert event["type"] == "video.completed" and event["object"] == "event"

    rotated = client.webhooks.rotate_secret(created.id)
    assert rotated.signing_secret != created.signing_secret
    client.webhooks.test(created.id, event_type="video.failed")
    latest = receiver.snapshot()[-1]
    verify_both(latest, rotated.signing_secret)
    with pytest.raises(openai.InvalidWebhookSignatureError):  # the old one stopped at once
        verify_both(latest, created.signing_secret)

    kept = client.webhooks.rotate_secret(created.id, keep_old_secret_active_for_24_hours=True)
    client.webhooks.test(created.id, event_type="video.failed")
    both_signed = receiver.snapshot()[-1]
    verify_both(both_signed, kept.signing_secret)
    verify_both(both_signed, rotated.signing_secret)  # still honoured for 24 h

    deleted = client.webhooks.delete(created.id)
    assert (deleted.id, deleted.deleted, deleted.object) == (
        created.id,
        True,
        "webhook_endpoint.deleted",
    )
    assert client.webhooks.list().data == []
    with pytest.raises(openai.NotFoundError):
        client.webhooks.retrieve(created.id)


def test_one_team_cannot_see_or_touch_anothers_endpoints(
    hooks_gateway: GatewayHandle, receiver: Any
) -> None:
    alice = hooks_gateway.client(hooks_gateway.new_key("team-alice"))
    bob = hooks_gateway.client(hooks_gateway.new_key("team-bob"))
    mine = alice.webhooks.create(name="a", url=receiver.url, event_types=BOTH)
    assert bob.webhooks.list().data == []
    for call in (
        lambda: bob.webhooks.retrieve(mine.id),
        lambda: bob.webhooks.update(mine.id, name="stolen"),
        lambda: bob.webhooks.rotate_secret(mine.id),
        lambda: bob.webhooks.test(mine.id, event_type="video.completed"),
        lambda: bob.webhooks.delete(mine.id),
    ):
        with pytest.raises(openai.NotFoundError):
            call()
    assert alice.webhooks.retrieve(mine.id).name == "a"
    assert receiver.snapshot() == []


def test_bad_input_is_refused_with_the_field_named(
    hooks_gateway: GatewayHandle, tmp_path: Path, sandbox: SandboxHandle
) -> None:
    client = hooks_gateway.client(hooks_gateway.new_key("team-a"))
    cases: list[tuple[dict[str, Any], str]] = [
        ({"name": "x", "url": "ftp://example.com/", "event_types": BOTH}, "url"),
        ({"name": "x", "url": "https://user:pw@example.com/", "event_types": BOTH}, "url"),
        (
            {"name": "x", "url": "https://example.com/", "event_types": ["batch.completed"]},
            "event_types",
        ),
        ({"name": "", "url": "https://example.com/", "event_types": BOTH}, "name"),
    ]
    for body, param in cases:
        with pytest.raises(openai.BadRequestError) as caught:
            client.webhooks.create(**body)
        assert caught.value.body["param"] == param  # type: ignore[index]


def test_internal_urls_are_refused_unless_the_operator_allows_them(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    settings = webhook_settings(tmp_path, sandbox.url, upstream={"allow_private_links": False})
    server = ServerThread(create_app(settings)).start()
    handle = GatewayHandle(server, settings)
    try:
        client = handle.client(handle.new_key("team-a"))
        for url in (
            "http://127.0.0.1:8080/hook",
            "http://localhost/hook",
            "http://10.1.2.3/hook",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]/hook",
        ):
            with pytest.raises(openai.BadRequestError) as caught:
                client.webhooks.create(name="x", url=url, event_types=BOTH)
            assert caught.value.code == "url_not_allowed", url
    finally:
        handle.close()
        server.stop()


def test_secrets_are_sealed_in_the_database_and_admin_lists_hide_them(
    hooks_gateway: GatewayHandle, receiver: Any, tmp_path: Path
) -> None:
    client = hooks_gateway.client(hooks_gateway.new_key("team-a"))
    created = client.webhooks.create(name="p", url=receiver.url, event_types=BOTH)
    raw = Path(f"{tmp_path}/gateway.db").read_bytes()
    with sqlite3.connect(f"{tmp_path}/gateway.db") as connection:
        dump = "\n".join(connection.iterdump())
    secret_body = created.signing_secret.removeprefix("whsec_")
    assert secret_body not in dump and secret_body.encode() not in raw
    listed = hooks_gateway.http.get(
        "/admin/webhooks", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    ).json()
    assert secret_body not in str(listed)
    assert listed["data"][0]["signing_secret_hint"].endswith(created.signing_secret[-4:])


def test_webhooks_without_a_secret_key_are_unavailable_not_insecure(
    gateway: GatewayHandle,
) -> None:
    client = gateway.client(gateway.new_key("team-a"))
    with pytest.raises(openai.InternalServerError) as caught:
        client.webhooks.create(name="p", url="https://example.com/h", event_types=BOTH)
    assert caught.value.code == "webhooks_not_configured"
