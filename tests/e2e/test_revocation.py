"""Revocation is immediate for money (issue #13): another replica may still read with a revoked
key for a few seconds (its key lookups are cached), but it never admits a new paid job."""

from __future__ import annotations

from typing import Any

from tests.conftest import FAST_MODEL, SandboxHandle


def test_a_key_revoked_elsewhere_pays_for_nothing_more(
    gateway_factory: Any, sandbox: SandboxHandle
) -> None:
    one, two = gateway_factory(), gateway_factory()  # two processes' worth: one SQLite file
    key = one.new_key("team-revoke")
    auth = {"Authorization": f"Bearer {key}"}
    body = {"model": FAST_MODEL, "prompt": "before"}
    made = two.http.post("/v1/videos", json=body, headers=auth)
    assert made.status_code == 200  # `two` now has the key in its lookup cache
    key_id = one.server.call(one.store.list_keys())[0].id
    assert one.admin("POST", f"/admin/keys/{key_id}/revoke").status_code == 200

    # Reads on `two` may still pass while its cache lasts; a create never does.
    refused = two.http.post("/v1/videos", json={**body, "prompt": "after"}, headers=auth)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "invalid_api_key"
    assert refused.headers["x-should-retry"] == "false"
    assert sandbox.stats()["create"] == 1
    assert one.admin("GET", "/admin/audit").json()["problems"] == []
