"""A chained video whose segment's submit answer is lost on the wire (issue #13's rule for #16's
chains), over HTTP with the official SDK: the video waits with its money reserved, ``gateway
jobs unknown`` lists it, and ``gateway jobs resolve`` settles it (the upstream id resumes the
chain; ``--charge`` charges that segment and refunds the rest); the deadline charges it. A
segment submit the upstream refused with 503/429 is retried until the chain completes. On SQLite
and PostgreSQL."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from gateway.cli import main
from gateway.domain.budgets import ScopeRef
from tests.conftest import FAST_MODEL, GatewayHandle, SandboxHandle, wait_for
from tests.e2e.lost_answers import LosingProxy
from tests.store.conftest import ThrowawayDatabase, postgres_database, run_aside  # noqa: F401
from tests.video_files import decoded_counters

FPS = 8
SECOND = 55_000  # the fast model at 480p
PRICES = [11 * SECOND, 10 * SECOND, 10 * SECOND]  # 31 s: 11 + 10 + 10
BODY: dict[str, Any] = {"resolution": "480p"}


@pytest.fixture(autouse=True)
def quick_frames(sandbox: SandboxHandle) -> None:
    sandbox.configure(frame_rate=FPS)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/gateway.db"
    throwaway: ThrowawayDatabase = request.getfixturevalue("postgres_database")
    url: str = run_aside(throwaway.new_schema())
    return url


class Cli:
    """``gateway --config FILE ...`` in-process against the gateway's own database."""

    def __init__(self, tmp_path: Path, url: str, capsys: pytest.CaptureFixture[str]) -> None:
        self.config = tmp_path / "cli.toml"
        self.config.write_text(f'[database]\nurl = "{url}"\n')
        self._capsys = capsys

    def __call__(self, *argv: str) -> tuple[int, str]:
        self._capsys.readouterr()
        code = main(["--config", str(self.config), *argv])
        return code, self._capsys.readouterr().out


def start(gateway_factory: Any, proxy: LosingProxy, url: str, **jobs: Any) -> GatewayHandle:
    handle: GatewayHandle = gateway_factory(
        upstream={"base_url": proxy.url, "retries": 1},
        database={"url": url},
        jobs=jobs,
    )
    return handle


def team_money(gateway: GatewayHandle, team: str) -> tuple[int, int]:
    found = gateway.server.call(gateway.store.team_by_name(team))
    lines = gateway.server.call(
        gateway.store.budget_lines((ScopeRef("team", found.id),), time.time())
    )
    total = next(line for line in lines if line.window == "total")
    return total.spent, total.reserved


def chained_counters(durations: list[int]) -> list[int]:
    counters: list[int] = []
    start_at = 0
    for seconds in durations:
        counters += list(range(start_at, start_at + seconds * FPS))
        start_at += seconds * FPS - 1
    return counters


def lose_segment_two(
    gateway: GatewayHandle, sandbox: SandboxHandle, proxy: LosingProxy, team: str
) -> tuple[Any, str]:
    """Create a 31 s chain whose second segment's answer is lost; wait until it is unknown."""
    client = gateway.client(gateway.new_key(team))
    video = client.videos.create(
        model=FAST_MODEL,
        prompt="A long walk on the pier",
        seconds="31",  # type: ignore[arg-type]
        extra_body=BODY,
    )
    assert (video.model_extra or {})["cost_usd"] == "1.705"
    wait_for(lambda: gateway.job(video.id).status == "submit_unknown", timeout=60)
    assert proxy.errors == []
    assert len(proxy.lost_ids) == 1 and sandbox.stats()["create_accepted"] == 2
    # The upstream holds two segments; segment 1 is charged, the rest stays reserved.
    assert team_money(gateway, team) == (PRICES[0], PRICES[1] + PRICES[2])
    shown = client.videos.retrieve(video.id)
    assert (shown.status, shown.error) == ("queued", None)
    segments = (shown.model_extra or {})["segments"]
    assert [s["status"] for s in segments] == ["completed", "queued", "queued"]
    return client, video.id


def test_a_lost_segment_answer_waits_and_the_upstream_id_resumes_the_chain(
    gateway_factory: Any,
    sandbox: SandboxHandle,
    database_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cli = Cli(tmp_path, database_url, capsys)
    with LosingProxy(sandbox.url, lose=frozenset({2})) as proxy:
        gateway = start(gateway_factory, proxy, database_url)
        client, video_id = lose_segment_two(gateway, sandbox, proxy, "team-pier")
        code, listed = cli("jobs", "unknown")
        assert code == 0
        [row] = [line.split("\t") for line in listed.splitlines() if line.startswith(video_id)]
        assert row[3] == str(PRICES[1] + PRICES[2])  # what stays reserved
        assert row[4].startswith("Segment 2 of 3: the upstream's answer was lost")
        code, out = cli(
            "jobs",
            "resolve",
            video_id,
            "--upstream-id",
            proxy.lost_ids[0],
            "--reason",
            "found in the upstream's console",
        )
        assert code == 0
        assert json.loads(out)["status"] == "in_progress"
        done = client.videos.poll(video_id, poll_interval_ms=50)
        assert done.status == "completed", done.error
        assert (done.model_extra or {})["cost_usd"] == "1.705"
        content = client.videos.download_content(video_id).content
        assert decoded_counters(content) == chained_counters([11, 10, 10])
        assert sandbox.stats()["create_accepted"] == 3  # segment 2 was never submitted again
        assert team_money(gateway, "team-pier") == (sum(PRICES), 0)
        assert cli("audit")[0] == 0


def test_charging_the_unknown_segment_fails_the_video_and_refunds_the_rest(
    gateway_factory: Any,
    sandbox: SandboxHandle,
    database_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cli = Cli(tmp_path, database_url, capsys)
    with LosingProxy(sandbox.url, lose=frozenset({2})) as proxy:
        gateway = start(gateway_factory, proxy, database_url)
        client, video_id = lose_segment_two(gateway, sandbox, proxy, "team-storm")
        code, out = cli(
            "jobs", "resolve", video_id, "--charge", "--reason", "billed", "--actor", "ops-ana"
        )
        assert code == 0
        assert json.loads(out)["charged_micros"] == PRICES[0] + PRICES[1]
        shown = client.videos.retrieve(video_id)
        assert shown.status == "failed" and shown.error is not None
        assert shown.error.code == "submit_outcome_unknown"
        assert shown.error.message.startswith("Segment 2 of 3 failed")
        assert (shown.model_extra or {})["cost_usd"] == "1.155"  # segments 1 and 2
        assert [s["status"] for s in (shown.model_extra or {})["segments"]] == [
            "completed",
            "failed",
            "queued",
        ]
        assert team_money(gateway, "team-storm") == (PRICES[0] + PRICES[1], 0)
        code, listed = cli("jobs", "unknown")
        assert code == 0 and video_id not in listed
        assert cli("audit")[0] == 0
        assert sandbox.stats()["create_accepted"] == 2


def test_an_unknown_segment_is_charged_at_the_deadline(
    gateway_factory: Any, sandbox: SandboxHandle
) -> None:
    with LosingProxy(sandbox.url, lose=frozenset({2})) as proxy:
        gateway: GatewayHandle = gateway_factory(
            upstream={"base_url": proxy.url, "retries": 1}, jobs={"deadline_seconds": 4.0}
        )
        client, video_id = lose_segment_two(gateway, sandbox, proxy, "team-late")
        wait_for(lambda: gateway.job(video_id).status == "failed", timeout=60)
        assert team_money(gateway, "team-late") == (PRICES[0] + PRICES[1], 0)
        shown = client.videos.retrieve(video_id)
        assert shown.error is not None and "charged by gateway" in shown.error.message
        assert gateway.admin("GET", "/admin/audit").json()["problems"] == []


@pytest.mark.parametrize(
    "fault",
    [
        {"op": "create", "kind": "status", "status": 503, "after": 1, "times": 2},
        {"op": "create", "kind": "status", "status": 429, "retry_after": 1, "after": 2},
    ],
)
def test_a_refused_segment_submit_is_retried_until_the_chain_completes(
    gateway: GatewayHandle, sandbox: SandboxHandle, fault: dict[str, Any]
) -> None:
    sandbox.fault(**fault)
    client = gateway.client()
    video = client.videos.create(
        model=FAST_MODEL,
        prompt="Waves",
        seconds="31",  # type: ignore[arg-type]
        extra_body=BODY,
    )
    done = client.videos.poll(video.id, poll_interval_ms=50)
    assert done.status == "completed", done.error
    assert sandbox.stats()["create_accepted"] == 3
    assert sandbox.stats()["create"] == 3 + fault.get("times", 1)
    assert (done.model_extra or {})["cost_usd"] == "1.705"
    assert gateway.admin("GET", "/admin/audit").json() == {"clean": True, "problems": []}
