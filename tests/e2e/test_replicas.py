"""Several gateway replicas sharing one PostgreSQL database and one S3 bucket (a real SeaweedFS):
budgets stay exact, identical requests make one upstream job, every video is stored once, and a
replica killed mid-download loses nothing."""

from __future__ import annotations

import os
import secrets
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.domain.budgets import ScopeRef
from gateway.sandbox.state import expected_video_bytes
from gateway.store.base import BudgetLimit, Store
from gateway.store.opening import open_store
from tests.blobs.conftest import seaweed  # noqa: F401 - a session fixture: the S3 server
from tests.blobs.seaweed import ACCESS_KEY_ID, BUCKET, REGION, SECRET_ACCESS_KEY, SeaweedServer
from tests.conftest import FAST_MODEL, SandboxHandle, wait_for
from tests.e2e.test_processes import finished, post_many
from tests.processes import GatewayProcess, write_config
from tests.store.conftest import ThrowawayDatabase, postgres_database, run_aside  # noqa: F401

PRICE = 565_000


class Cluster:
    def __init__(
        self, tmp_path: Path, database_url: str, sandbox: SandboxHandle, s3: SeaweedServer
    ):
        self.tmp_path = tmp_path
        self.database_url = database_url
        self.config = tmp_path / "config.toml"
        self.sandbox, self.s3 = sandbox, s3
        self.env = {"AWS_ACCESS_KEY_ID": ACCESS_KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY}
        self.replicas: list[GatewayProcess] = []

    def write_config(self, *, lease_seconds: float) -> None:
        """The replicas' shared config. A lease shorter than a stalled event loop is lost (and
        the video downloaded twice), so only the test that needs a quick reclaim asks for a
        short one."""
        sandbox, s3, database_url = self.sandbox, self.s3, self.database_url
        write_config(
            self.config,
            {
                # Small pools: the PostgreSQL server (100 connections) is shared with the other
                # test worker and, on developers' machines, with other runs.
                "database": {"url": database_url, "pool_max_size": 4},
                "storage": {
                    "url": f"s3://{BUCKET}/replicas-{secrets.token_hex(4)}",
                    "s3_endpoint_url": s3.endpoint_url,
                    "s3_region": REGION,
                    "s3_path_style": True,
                },
                "upstream": {"base_url": sandbox.url, "sandbox": True},
                "jobs": {
                    "poll_min_seconds": 0.05,
                    "poll_max_seconds": 0.2,
                    "idle_seconds": 0.02,
                    "refresh_after_seconds": 0.0,
                    "lease_seconds": lease_seconds,
                },
                "log": {"level": "warning"},
            },
        )

    def start(self, count: int, *, lease_seconds: float = 60.0) -> list[GatewayProcess]:
        self.write_config(lease_seconds=lease_seconds)
        for _ in range(count):
            log = self.tmp_path / f"replica-{len(self.replicas)}.log"
            self.replicas.append(GatewayProcess(self.config, log, env=self.env).start())
        return self.replicas

    def store(self, operation: Any) -> Any:
        async def go() -> Any:
            store: Store = await open_store(self.database_url)
            try:
                return await operation(store)
            finally:
                await store.close()

        return run_aside(go())

    def stop(self) -> None:
        for replica in self.replicas:
            replica.stop()


@pytest.fixture
def cluster(tmp_path: Path, sandbox: SandboxHandle, postgres_database: ThrowawayDatabase, seaweed):  # noqa: F811
    url = run_aside(postgres_database.new_schema())
    made = Cluster(tmp_path, url, sandbox, seaweed)
    yield made
    made.stop()


def test_replicas_share_budgets_dedupe_and_storage(cluster: Cluster, sandbox: SandboxHandle):
    replicas = cluster.start(3)
    urls = [r.url for r in replicas]
    key = replicas[0].new_key("team-replicas")
    team = cluster.store(lambda s: s.team_by_name("team-replicas"))

    seeded = {"model": FAST_MODEL, "prompt": "Across replicas", "seed": 42}
    identical = post_many(urls, key, [seeded] * 50)
    assert [r.status_code for r in identical] == [200] * 50
    assert sandbox.stats()["create_accepted"] == 1
    identical_ids = [r.json()["id"] for r in identical]
    wait_for(lambda: finished(urls[1], key, identical_ids), timeout=60)
    with httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
        bodies = {
            client.get(f"{urls[i % 3]}/v1/videos/{v}/content").content
            for i, v in enumerate(identical_ids)
        }
    assert len(bodies) == 1

    n = 29
    cluster.store(lambda s: s.set_limit(BudgetLimit("team", team.id, "total", (n + 1) * PRICE), 0))
    bodies_200 = [{"model": FAST_MODEL, "prompt": f"unique {i}"} for i in range(200)]
    responses = post_many(urls, key, bodies_200)
    accepted = [r.json()["id"] for r in responses if r.status_code == 200]
    assert len(accepted) == n
    assert {r.status_code for r in responses if r.status_code != 200} == {429}
    wait_for(lambda: finished(urls[2], key, accepted), timeout=90)
    stats = sandbox.stats()
    assert stats["create_accepted"] == n + 1
    assert stats["file"] + stats["content"] == n + 1  # every job downloaded exactly once
    assert cluster.store(lambda s: s.audit()) == []
    lines = cluster.store(lambda s: s.budget_lines((ScopeRef("team", team.id),), 0))
    total = next(line for line in lines if line.window == "total")
    assert (total.spent, total.reserved) == ((n + 1) * PRICE, 0)


def test_killing_the_lease_holder_mid_download_loses_nothing(cluster: Cluster, sandbox):
    sandbox.configure(video_bytes=2 * 1024 * 1024)
    # The first download takes ~16 s (32 chunks, 0.5 s apart): the kill lands in the middle
    # of it however slow the machine; the survivor's download, after the lease expires, is fast.
    sandbox.fault(op="file", kind="slow", delay=0.5, times=1)
    replicas = cluster.start(2, lease_seconds=2.0)
    key = replicas[0].new_key("team-kill")
    video = httpx.post(
        f"{replicas[0].url}/v1/videos",
        json={"model": FAST_MODEL, "prompt": "Survive"},
        headers={"Authorization": f"Bearer {key}"},
    ).json()

    def holder() -> str | None:
        job = cluster.store(lambda s: s.get_job(video["id"]))
        return job.lease_owner if job and job.status == "downloading" else None

    owner = wait_for(holder)
    pid = int(owner.split("-")[-2])
    victim = next(r for r in replicas if r.proc is not None and r.proc.pid == pid)
    wait_for(lambda: sandbox.stats()["file"] >= 1)
    os.kill(pid, signal.SIGKILL)
    victim.proc.wait(timeout=10)  # type: ignore[union-attr]
    interrupted = cluster.store(lambda s: s.get_job(video["id"]))
    assert (interrupted.status, interrupted.lease_owner) == ("downloading", owner)
    assert interrupted.video_asset is None  # the kill interrupted the download
    survivor = next(r for r in replicas if r is not victim)
    wait_for(lambda: finished(survivor.url, key, [video["id"]]), timeout=60)
    job = cluster.store(lambda s: s.get_job(video["id"]))
    assert job.status == "completed"
    assert job.lease_owner != owner
    assert sandbox.stats()["file"] >= 2  # ... and the survivor downloaded the video again
    content = httpx.get(
        f"{survivor.url}/v1/videos/{video['id']}/content",
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    ).content
    assert content == expected_video_bytes(sandbox.job(job.upstream_id))
    assert cluster.store(lambda s: s.audit()) == []
