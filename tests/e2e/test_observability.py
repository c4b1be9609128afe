"""What operators see: exact metric values after a scripted scenario, output that Prometheus's
own promtool accepts, health probes, and no secret anywhere in logs, metrics or the database."""

from __future__ import annotations

import secrets
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.domain.api_keys import display_prefix
from gateway.store.base import BudgetLimit
from tests.conftest import FAST_MODEL, GatewayHandle, SandboxHandle, wait_for
from tests.e2e.test_budgets import PRICE, team_id_of
from tests.processes import GatewayProcess, write_config

VIDEO_BYTES = 64 * 1024  # the sandbox fixture's video size


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"{url}/metrics").text
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def scrape_once(url: str, name: str, **labels: str) -> dict | None:
    """A scrape in which ``name`` has been recorded (metrics follow the commits they count)."""
    samples = scrape(url)
    return samples if value(samples, name, **labels) else None


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is missing: install Debian's `prometheus` package (.ci/run does)")
    return found


def test_metrics_after_a_scripted_scenario(gateway: GatewayHandle, sandbox: SandboxHandle):
    key = gateway.new_key("team-metrics")
    auth = {"Authorization": f"Bearer {key}"}
    client = gateway.client(key)
    seeded = {"model": FAST_MODEL, "prompt": "Measured", "seed": 3}
    sandbox.hold_new_jobs()  # the leader stays queued until the follower has joined it
    first = gateway.http.post("/v1/videos", json=seeded, headers=auth).json()["id"]
    joined = gateway.http.post("/v1/videos", json=seeded, headers=auth)
    assert joined.headers["x-gateway-cache"] == "coalesced"
    sandbox.configure(queue_seconds=0.05)
    sandbox.finish_now(gateway.job(first).upstream_id)
    for video_id in (first, joined.json()["id"]):
        assert client.videos.poll(video_id, poll_interval_ms=20).status == "completed"
    hit = gateway.http.post("/v1/videos", json=seeded, headers=auth)
    assert hit.headers["x-gateway-cache"] == "hit"
    sandbox.fault(op="create", kind="status", status=500)
    failed = gateway.http.post(
        "/v1/videos", json={"model": FAST_MODEL, "prompt": "x"}, headers=auth
    )
    assert failed.status_code == 502
    team = team_id_of(gateway, "team-metrics")
    gateway.server.call(gateway.store.set_limit(BudgetLimit("team", team, "total", PRICE), 0))
    refused = gateway.http.post(
        "/v1/videos", json={"model": FAST_MODEL, "prompt": "y"}, headers=auth
    )
    assert refused.status_code == 429

    model = {"model": FAST_MODEL}
    created = {"model": FAST_MODEL, "resolution": "720p"}
    # Completion metrics are recorded just after the commit the poll saw: wait for them.
    m = wait_for(lambda: scrape_once(gateway.url, "gateway_job_persistence_lag_seconds_count"))
    assert value(m, "gateway_cache_lookups_total", result="miss") == 1
    assert value(m, "gateway_cache_lookups_total", result="coalesced") == 1
    assert value(m, "gateway_cache_lookups_total", result="hit") == 1
    assert value(m, "gateway_cache_lookups_total", result="bypass") == 1
    assert value(m, "gateway_cache_saved_usd_total") == pytest.approx(2 * 0.565)
    assert value(m, "gateway_cache_saved_video_seconds_total") == 10
    assert value(m, "gateway_jobs_created_total", **created) == 1
    assert value(m, "gateway_jobs_completed_total", **created) == 1
    assert value(m, "gateway_jobs_failed_total", **created, code="upstream_error") == 1
    assert value(m, "gateway_spend_usd_total", **model) == pytest.approx(0.565)
    assert value(m, "gateway_refunds_usd_total", **model) == pytest.approx(0.565)
    assert value(m, "gateway_reserved_usd") == 0
    assert value(m, "gateway_budget_rejections_total", scope="team", window="total") == 1
    assert value(m, "gateway_storage_objects") == 1
    assert value(m, "gateway_storage_bytes") == VIDEO_BYTES
    assert value(m, "gateway_job_persistence_lag_seconds_count") == 1
    assert value(m, "gateway_job_generation_duration_seconds_count", **model) == 1
    for state in ("queued", "running", "awaiting_download"):
        assert value(m, "gateway_jobs", state=state) == 0
    post = {"route": "/v1/videos", "method": "POST"}
    assert value(m, "gateway_http_requests_total", **post, status="200") == 3
    assert value(m, "gateway_http_requests_total", **post, status="502") == 1
    assert value(m, "gateway_http_requests_total", **post, status="429") == 1
    assert value(m, "gateway_http_request_duration_seconds_count", route="/v1/videos") >= 5
    assert value(m, "gateway_upstream_requests_total", operation="submit", outcome="ok") == 1
    assert (
        value(m, "gateway_upstream_requests_total", operation="submit", outcome="server_error") == 1
    )
    assert value(m, "gateway_upstream_requests_total", operation="download", outcome="ok") == 1
    assert value(m, "gateway_upstream_requests_in_flight", operation="submit") == 0
    assert (
        value(m, "gateway_budget_remaining_usd", scope="team", window="total") == 0
    )  # no team labels
    build = [k for k in m if k[0] == "gateway_build_info"]
    assert build and dict(build[0][1])["version"]
    labels = " ".join(str(k[1]) for k in m)
    assert first not in labels and key not in labels and "Measured" not in labels
    assert joined.json()["id"] not in labels


def test_org_budget_gauges_and_team_labels(gateway_factory, sandbox):
    gateway = gateway_factory(metrics={"team_labels": True})
    key = gateway.new_key("team-labelled")
    team = team_id_of(gateway, "team-labelled")
    gateway.server.call(gateway.store.set_limit(BudgetLimit("team", team, "day", 10 * PRICE), 0))
    gateway.server.call(gateway.store.set_limit(BudgetLimit("org", "org", "month", 20 * PRICE), 0))
    client = gateway.client(key)
    video = client.videos.create_and_poll(model=FAST_MODEL, prompt="labelled", poll_interval_ms=20)
    assert video.status == "completed"
    m = scrape(gateway.url)
    team_labels = {"scope": "team", "team": "team-labelled", "window": "day"}
    assert value(m, "gateway_budget_limit_usd", **team_labels) == pytest.approx(5.65)
    assert value(m, "gateway_budget_remaining_usd", **team_labels) == pytest.approx(5.085)
    org = {"scope": "org", "team": "", "window": "month"}
    assert value(m, "gateway_budget_remaining_usd", **org) == pytest.approx(10.735)
    spend = {"model": FAST_MODEL, "team": "team-labelled"}
    assert value(m, "gateway_spend_usd_total", **spend) == pytest.approx(0.565)


def test_promtool_accepts_the_metrics(gateway: GatewayHandle):
    client = gateway.client()
    client.videos.create_and_poll(model=FAST_MODEL, prompt="lint", poll_interval_ms=20)
    text = httpx.get(f"{gateway.url}/metrics").text
    result = subprocess.run(
        [promtool(), "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_health_probes_need_no_key(gateway: GatewayHandle):
    assert gateway.http.get("/healthz").json() == {"status": "ok"}
    ready = gateway.http.get("/readyz").json()
    assert ready == {
        "status": "ready",
        "checks": {"database": "ok", "migrations": "ok", "storage": "ok"},
        "upstream": "sandbox",  # which upstream is in use, always said (issue #13)
    }


def test_readyz_names_the_failing_check(gateway: GatewayHandle, tmp_path: Path):
    blobs = Path(gateway.settings.storage.url.removeprefix("file://"))
    shutil.rmtree(blobs / "tmp")
    (blobs / "tmp").write_text("not a directory")
    resp = gateway.http.get("/readyz")
    assert resp.status_code == 503
    assert resp.json()["checks"]["storage"].startswith("error")
    assert resp.json()["checks"]["database"] == "ok"


def secret_fragments(secret: str, public_prefix: str = "") -> list[str]:
    """Every 8-character piece of ``secret`` (so every longer piece too) that is not wholly
    inside its public prefix: a log that kept the last 12 characters of a key leaks it."""
    return [
        secret[i : i + FRAGMENT]
        for i in range(len(secret) - FRAGMENT + 1)
        if i + FRAGMENT > len(public_prefix)
    ]


FRAGMENT = 8


def test_secrets_never_leak(tmp_path: Path, sandbox: SandboxHandle):
    upstream_key = f"sk-{secrets.token_hex(16)}"
    admin_token = f"adm-{secrets.token_hex(16)}"
    config = write_config(
        tmp_path / "config.toml",
        {
            "database": {"url": f"sqlite:///{tmp_path}/gateway.db"},
            "storage": {"url": f"file://{tmp_path}/blobs"},
            "upstream": {"base_url": sandbox.url, "retries": 2, "backoff_base": 0.01},
            "jobs": {"poll_min_seconds": 0.05, "idle_seconds": 0.02, "refresh_after_seconds": 0.0},
            "log": {"level": "debug", "format": "json"},
        },
    )
    env = {"AIHUBMIX_API_KEY": upstream_key, "GATEWAY_ADMIN_TOKEN": admin_token}
    proc = GatewayProcess(config, tmp_path / "gateway.log", env=env)
    proc._env.update(env)
    proc.start()
    answers: list[httpx.Response] = []  # every answer but the one that hands out the key
    try:
        admin = {"Authorization": f"Bearer {admin_token}"}
        with httpx.Client(base_url=proc.url, timeout=30) as http:
            answers.append(http.post("/admin/teams", json={"name": "t"}, headers=admin))
            key = http.post("/admin/keys", json={"team": "t"}, headers=admin).json()["key"]
            auth = {"Authorization": f"Bearer {key}"}
            created = http.post(
                "/v1/videos", json={"model": FAST_MODEL, "prompt": "s", "seed": 1}, headers=auth
            )
            answers.append(created)
            video = created.json()
            answers.append(
                http.post(
                    "/v1/videos",
                    files={"model": (None, FAST_MODEL), "prompt": (None, "m")},
                    headers=auth,
                )
            )
            answers.append(http.get(f"/v1/videos/{video['id']}", headers=auth))
            answers.append(http.get("/v1/videos", headers=auth))
            answers.append(http.get(f"/v1/videos/{video['id']}/content", headers=auth))
            answers.append(http.get("/admin/keys", headers=admin))
            answers.append(http.get("/v1/videos", headers={"Authorization": f"Bearer {key}x"}))
            answers.append(
                http.get("/admin/teams", headers={"Authorization": f"Bearer {admin_token}x"})
            )
            sandbox.configure(api_key="sk-some-other-key")  # the upstream now rejects our key
            rejected = http.post(
                "/v1/videos", json={"model": FAST_MODEL, "prompt": "r"}, headers=auth
            )
            answers.append(rejected)
            assert rejected.json()["error"]["code"] == "upstream_auth_error"
            sandbox.configure(api_key=None)
            sandbox.fault(op="create", kind="status", status=503, times=3)
            answers.append(
                http.post("/v1/videos", json={"model": FAST_MODEL, "prompt": "f"}, headers=auth)
            )
            metrics = http.get("/metrics").text
    finally:
        proc.stop()
    logs = (tmp_path / "gateway.log").read_text()
    assert '"route"' in logs and "key_id" in logs  # the access log did record these requests
    database = b"".join(p.read_bytes() for p in tmp_path.glob("gateway.db*"))
    responses = "\n".join(f"{answer.headers}\n{answer.text}" for answer in answers)
    pieces = [
        *secret_fragments(upstream_key),
        *secret_fragments(admin_token),
        *secret_fragments(key, display_prefix(key)),  # listings show the display prefix
    ]
    assert len(pieces) > 80
    for piece in pieces:
        assert piece not in logs, f"a piece of a secret is in the logs: {piece!r}"
        assert piece not in metrics, f"a piece of a secret is in the metrics: {piece!r}"
        assert piece not in responses, f"a piece of a secret is in an answer: {piece!r}"
        assert piece.encode() not in database, f"a piece of a secret is stored: {piece!r}"
