"""Revocation is immediate for money (issue #13): another replica may still read with a revoked
key while its key lookups are cached, but it never admits a new paid job. On SQLite (two
gateways on one file) and PostgreSQL (two gateways on one schema).

The refusal must come from the admission check (``KeyRevoked`` in ``admit_job``), not from a
lookup cache that happened to expire: the second gateway's key cache is pinned for an hour, and
the test shows it still lets reads with the revoked key through after the create was refused."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from gateway.services.keys import KeyService
from tests.conftest import FAST_MODEL, HELD_SECONDS, GatewayHandle, SandboxHandle
from tests.store.conftest import ThrowawayDatabase, postgres_database, run_aside  # noqa: F401


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest) -> dict[str, Any]:
    if request.param == "sqlite":
        return {}
    throwaway: ThrowawayDatabase = request.getfixturevalue("postgres_database")
    return {"database": {"url": run_aside(throwaway.new_schema())}}


def pin_key_cache(gateway: GatewayHandle) -> None:
    """From now on ``gateway`` trusts a key lookup for an hour (the default is 5 s): its cache
    stays stale for the whole test however slow the machine is."""
    app = gateway.server.config.app
    context = app.state.context
    keys = KeyService(context.store, clock=context.clock, cache_seconds=HELD_SECONDS)
    app.state.context = dataclasses.replace(context, keys=keys)


def test_a_key_revoked_elsewhere_pays_for_nothing_more(
    gateway_factory: Any, sandbox: SandboxHandle, database: dict[str, Any]
) -> None:
    one, two = gateway_factory(**database), gateway_factory(**database)  # one database
    pin_key_cache(two)
    key = one.new_key("team-revoke")
    auth = {"Authorization": f"Bearer {key}"}
    body = {"model": FAST_MODEL, "prompt": "before"}
    made = two.http.post("/v1/videos", json=body, headers=auth)
    assert made.status_code == 200  # `two` now has the key in its lookup cache, as active
    video = f"/v1/videos/{made.json()['id']}"
    key_id = one.server.call(one.store.list_keys())[0].id
    assert one.admin("POST", f"/admin/keys/{key_id}/revoke").status_code == 200
    assert one.http.get(video, headers=auth).status_code == 401  # the database says revoked
    assert two.http.get(video, headers=auth).status_code == 200  # `two`'s cache does not

    # A create on `two` passes its stale cache and is refused by the admission check.
    refused = two.http.post("/v1/videos", json={**body, "prompt": "after"}, headers=auth)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "invalid_api_key"
    assert "revoked" in refused.json()["error"]["message"]
    assert refused.headers["x-should-retry"] == "false"
    # The cache was not what refused it: it still holds the key as active.
    assert two.http.get(video, headers=auth).status_code == 200
    assert sandbox.stats()["create"] == 1
    assert one.admin("GET", "/admin/audit").json()["problems"] == []
