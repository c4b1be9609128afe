"""Concurrency and rate limits across two real gateway processes sharing one database, on SQLite
(one file) and PostgreSQL (one schema): exactly the limit is admitted, the rest answer 429 with
the limit's code and a Retry-After, and each process counts its refusals in its metrics."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import FAST_MODEL, SandboxHandle
from tests.e2e.test_processes import post_many
from tests.processes import GatewayProcess, write_config
from tests.store.conftest import ThrowawayDatabase, postgres_database, run_aside  # noqa: F401


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/gateway.db"
    database: ThrowawayDatabase = request.getfixturevalue("postgres_database")
    return run_aside(database.new_schema())


@pytest.fixture
def two_processes(
    tmp_path: Path, sandbox: SandboxHandle, database_url: str
) -> Iterator[list[GatewayProcess]]:
    config = write_config(
        tmp_path / "config.toml",
        {
            "database": {"url": database_url},
            "storage": {"url": f"file://{tmp_path}/blobs"},
            "upstream": {"base_url": sandbox.url, "sandbox": True},
            "jobs": {"poll_min_seconds": 0.05, "poll_max_seconds": 0.2, "idle_seconds": 0.02},
            "log": {"level": "warning"},
        },
    )
    started: list[GatewayProcess] = []
    try:
        for index in range(2):
            log = tmp_path / f"gateway-{index}.log"
            started.append(GatewayProcess(config, log).start())
        yield started
    finally:
        for process in started:
            process.stop()


def rejections(url: str, limit: str, scope: str) -> float:
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics").text):
        for sample in family.samples:
            if sample.name == "gateway_limit_rejections_total" and sample.labels == {
                "limit": limit,
                "scope": scope,
            }:
                return sample.value
    return 0.0


def refused(responses: list[httpx.Response], code: str) -> list[httpx.Response]:
    out = [r for r in responses if r.status_code != 200]
    assert {r.status_code for r in out} == {429}
    assert {r.json()["error"]["code"] for r in out} == {code}
    assert all(int(r.headers["retry-after"]) >= 1 for r in out)
    return out


def test_in_flight_limit_holds_across_two_processes(
    two_processes: list[GatewayProcess], sandbox: SandboxHandle
) -> None:
    sandbox.configure(queue_seconds=600)  # every admitted job stays in flight
    one, two = two_processes
    key = one.new_key("team-in-flight")
    resp = one.admin(
        "PUT", "/admin/limits", json={"team": "team-in-flight", "max_in_flight_jobs": 4}
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["max_in_flight_jobs"] == 4
    bodies = [{"model": FAST_MODEL, "prompt": f"busy {i}"} for i in range(30)]
    responses = post_many([one.url, two.url], key, bodies)
    assert sum(r.status_code == 200 for r in responses) == 4
    assert len(refused(responses, "concurrency_limit_exceeded")) == 26
    assert sandbox.stats()["create_accepted"] == 4
    shown = two.admin("GET", "/admin/limits", params={"team": "team-in-flight"}).json()
    assert shown["data"][0]["in_flight_jobs"] == 4
    total = sum(rejections(p.url, "max_in_flight_jobs", "team") for p in two_processes)
    assert total == 26


def test_request_rate_holds_across_two_processes(
    two_processes: list[GatewayProcess], sandbox: SandboxHandle
) -> None:
    one, two = two_processes
    key = one.new_key("team-rate")
    key_id = one.admin("GET", "/admin/keys", params={"team": "team-rate"}).json()["data"][0]["id"]
    # 3 at once, then one every 20 s: a burst of 12 finishing within 20 s admits exactly 3.
    resp = two.admin("PUT", "/admin/limits", json={"key_id": key_id, "requests_per_minute": 3})
    assert resp.status_code == 200, resp.text
    bodies: list[dict[str, Any]] = [{"model": FAST_MODEL, "prompt": f"r{i}"} for i in range(12)]
    responses = post_many([one.url, two.url], key, bodies)
    assert sum(r.status_code == 200 for r in responses) == 3
    rate_refused = refused(responses, "rate_limit_exceeded")
    assert all(1 <= int(r.headers["retry-after"]) <= 20 for r in rate_refused)
    assert "3 videos per minute" in rate_refused[0].json()["error"]["message"]
    assert sandbox.stats()["create_accepted"] == 3
    total = sum(rejections(p.url, "requests_per_minute", "key") for p in two_processes)
    assert total == 9
