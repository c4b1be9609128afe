"""Budgets hold when the upstream's answer to a submit is lost (issue #13): the job's outcome is
unknown, its price stays reserved, the client is told once not to retry blindly, and an operator
(or the deadline) settles it with a clean audit. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import asyncpg
import openai
import pytest

from gateway.domain.budgets import ScopeRef
from gateway.services.creation import RECORD_RETRY_DELAYS
from gateway.store.base import BudgetLimit
from tests.conftest import ADMIN_TOKEN, FAST_MODEL, GatewayHandle, wait_for
from tests.e2e.lost_answers import LostAnswerUpstream, Mode
from tests.store.conftest import ThrowawayDatabase, postgres_database, run_aside  # noqa: F401

BODY = {"model": FAST_MODEL, "prompt": "A lighthouse at dusk", "seconds": "5"}
PRICE = 565_000  # the default 720p price of 5 s
# For an upstream that answers after a test's hook ran: a 5 s answer is still an answer (the
# submit grace must exceed the longest submit).
SLOW_ANSWER: dict[str, Any] = {"timeout": 5.0, "submit_grace_seconds": 8.0}
Result = TypeVar("Result")


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Any) -> dict[str, Any]:
    if request.param == "sqlite":
        return {}
    throwaway: ThrowawayDatabase = request.getfixturevalue("postgres_database")
    return {"database": {"url": run_aside(throwaway.new_schema())}}


def start(
    gateway_factory: Any,
    upstream_url: str,
    database: dict[str, Any],
    timeout: float = 0.5,
    **jobs: Any,
) -> GatewayHandle:
    """A gateway whose upstream answers are lost after ``timeout`` (short: the answer is lost
    on purpose); ``timeout`` is long where the upstream answers, however slowly."""
    sections: dict[str, dict[str, Any]] = {
        "upstream": {
            "base_url": upstream_url,
            "timeout": timeout,
            "connect_timeout": 0.5,
            "retries": 1,
        },
        "jobs": {"submit_grace_seconds": 2.0, **jobs},
        **database,
    }
    return gateway_factory(**sections)


def team_lines(gateway: GatewayHandle, team: str) -> tuple[int, int]:
    found = gateway.server.call(gateway.store.team_by_name(team))
    lines = gateway.server.call(
        gateway.store.budget_lines((ScopeRef("team", found.id),), time.time())
    )
    total = next(line for line in lines if line.window == "total")
    return total.spent, total.reserved


@pytest.mark.parametrize("mode", ["stall", "drop"])
def test_lost_answer_keeps_the_money_and_says_so_once(
    gateway_factory: Any, database: dict[str, Any], mode: Mode
) -> None:
    with LostAnswerUpstream(mode) as upstream:
        gateway = start(gateway_factory, upstream.url, database)
        key = gateway.new_key("team-lost")
        team = gateway.server.call(gateway.store.team_by_name("team-lost"))
        gateway.server.call(
            gateway.store.set_limit(BudgetLimit("team", team.id, "total", PRICE), 0)
        )
        auth = {"Authorization": f"Bearer {key}"}
        answers = [gateway.http.post("/v1/videos", json=BODY, headers=auth) for _ in range(3)]

        first, *others = answers
        assert first.status_code == 502
        assert first.headers["x-should-retry"] == "false"
        error = first.json()["error"]
        assert error["code"] == "submit_outcome_unknown"
        video_id = error["message"].split("video ")[1].split(" ")[0]
        assert video_id.startswith("video_")
        assert "unknown" in error["message"]
        # The reservation is still counted: the budget is full, nothing more goes upstream.
        for other in others:
            assert other.status_code == 429
            assert other.headers["x-should-retry"] == "false"
            assert other.json()["error"]["code"] == "budget_exceeded"
        assert len(upstream.created) == 1
        spent, reserved = team_lines(gateway, "team-lost")
        assert spent + reserved >= PRICE * len(upstream.created)

        # Clients see it still queued (the SDK keeps polling); the operator settles it.
        shown = gateway.http.get(f"/v1/videos/{video_id}", headers=auth).json()
        assert (shown["status"], shown["error"]) == ("queued", None)
        listed = gateway.admin("GET", "/admin/jobs/unknown").json()["data"]
        assert [(j["id"], j["reserved_micros"]) for j in listed] == [(video_id, PRICE)]
        resolved = gateway.admin(
            "POST",
            f"/admin/jobs/{video_id}/resolve",
            json={
                "decision": "charge",
                "reason": "AIHubMix dashboard shows the job",
                "actor": "ana",
            },
        )
        assert resolved.status_code == 200, resolved.text
        assert resolved.json()["money_state"] == "charged"
        assert team_lines(gateway, "team-lost") == (PRICE, 0)
        again = gateway.admin(
            "POST", f"/admin/jobs/{video_id}/resolve", json={"decision": "refund", "reason": "x"}
        )
        assert again.status_code == 409
        assert gateway.admin("GET", "/admin/audit").json()["problems"] == []
        shown = gateway.http.get(f"/v1/videos/{video_id}", headers=auth).json()
        assert (shown["status"], shown["error"]["code"]) == ("failed", "submit_outcome_unknown")


def test_unknown_outcome_is_charged_at_the_deadline(
    gateway_factory: Any, database: dict[str, Any]
) -> None:
    with LostAnswerUpstream("drop") as upstream:
        gateway = start(gateway_factory, upstream.url, database, deadline_seconds=2.5)
        key = gateway.new_key("team-deadline")
        answer = gateway.http.post(
            "/v1/videos", json=BODY, headers={"Authorization": f"Bearer {key}"}
        )
        assert answer.status_code == 502
        assert team_lines(gateway, "team-deadline") == (0, PRICE)
        wait_for(lambda: team_lines(gateway, "team-deadline") == (PRICE, 0), timeout=30)
        assert gateway.admin("GET", "/admin/audit").json()["problems"] == []
        assert len(upstream.created) == 1


def test_the_sdk_does_not_retry_an_unknown_outcome(gateway_factory: Any) -> None:
    """The official SDK with its default retries: one request reaches the upstream."""
    with LostAnswerUpstream("drop") as upstream:
        gateway = start(gateway_factory, upstream.url, {})
        client = openai.OpenAI(
            base_url=f"{gateway.url}/v1", api_key=gateway.new_key(), max_retries=2
        )
        with pytest.raises(openai.APIStatusError) as info:
            client.videos.create(model=FAST_MODEL, prompt="A lighthouse", seconds="5")
        client.close()
        assert info.value.status_code == 502
        assert info.value.response.headers["x-should-retry"] == "false"
        assert len(upstream.created) == 1
        assert ADMIN_TOKEN not in info.value.message


class SqliteWriteLock:
    """Another writer holding the SQLite file's write lock (``BEGIN IMMEDIATE``): the gateway's
    writes wait ``database.busy_timeout_seconds`` (default 5 s), then fail "database is locked"."""

    def __init__(self, path: Any) -> None:
        self._connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)

    def hold(self) -> None:
        self._connection.execute("BEGIN IMMEDIATE")

    def release(self) -> None:
        self._connection.execute("ROLLBACK")
        self._connection.close()


class PostgresRowLocks:
    """Another connection holding every ``jobs`` row ``FOR UPDATE`` in an open transaction (the
    row of the job just admitted included): the gateway's update of that row waits for the lock
    up to the ``lock_timeout`` its database URL sets, then fails ``LockNotAvailableError``.
    asyncpg on a private loop, used by one thread at a time (the upstream's, the test's)."""

    def __init__(self, url: str, table: str = "jobs") -> None:
        self._table = table
        self._loop = asyncio.new_event_loop()
        self._turn = threading.Lock()
        self._connection: asyncpg.Connection[Any] = self._run(asyncpg.connect(url))
        self._transaction = self._connection.transaction()
        self.locked: list[str] = []

    def _run(self, coroutine: Coroutine[Any, Any, Result]) -> Result:
        with self._turn:
            return self._loop.run_until_complete(coroutine)

    def hold(self) -> None:
        async def hold() -> list[str]:
            await self._transaction.start()
            rows = await self._connection.fetch(f"SELECT id FROM {self._table} FOR UPDATE")
            return [row["id"] for row in rows]

        self.locked = self._run(hold())

    def waiters(self) -> int:
        """How many other backends are waiting for a lock this connection holds (live)."""
        count: int = self._run(
            self._connection.fetchval(
                "SELECT count(*) FROM pg_locks WHERE NOT granted"
                " AND pg_backend_pid() = ANY(pg_blocking_pids(pid))"
            )
        )
        return count

    def release(self) -> None:
        self._run(self._transaction.rollback())
        self._run(self._connection.close())
        self._loop.close()


def test_a_database_lock_held_while_recording_keeps_the_money(
    gateway_factory: Any, database: dict[str, Any], tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The upstream accepts; another connection holds a lock the record needs through every
    retry of it (SQLite: the file's write lock; PostgreSQL: the job's row, with a 1 s
    ``lock_timeout`` in the gateway's database URL, as ``busy_timeout`` bounds SQLite's wait).
    The job is never failed or refunded: one 502 with x-should-retry: false, the reservation
    counted, and after the lock goes the sweep and an operator settle it."""
    holder: SqliteWriteLock | PostgresRowLocks
    if database:
        url = database["database"]["url"]
        holder = PostgresRowLocks(url)
        database = {"database": {"url": f"{url}&lock_timeout=1000"}}
    else:
        holder = SqliteWriteLock(tmp_path / "gateway.db")
    with LostAnswerUpstream("answer", holder.hold) as upstream:
        # The hold runs before the upstream answers: it must not look like a lost answer.
        gateway = start(gateway_factory, upstream.url, database, **SLOW_ANSWER)
        key = gateway.new_key("team-locked")
        answer = gateway.http.post(
            "/v1/videos", json=BODY, headers={"Authorization": f"Bearer {key}"}, timeout=120
        )
        holder.release()
        assert answer.status_code == 502
        assert answer.headers["x-should-retry"] == "false"
        assert answer.json()["error"]["code"] == "submit_outcome_unknown"
        video_id = answer.json()["error"]["message"].split("video ")[1].split(" ")[0]
        if isinstance(holder, PostgresRowLocks):
            assert holder.locked == [video_id]  # the lock the record met was the job's row
        # The upstream answered; every try to record its id failed (not a lost answer).
        said = [r.getMessage() for r in caplog.records if getattr(r, "job_id", None) == video_id]
        assert said.count("could not record accepted upstream job yet; retrying") == len(
            RECORD_RETRY_DELAYS
        )
        assert "could not record accepted upstream job; its outcome is now unknown" in said
        assert len(upstream.created) == 1
        assert team_lines(gateway, "team-locked") == (0, PRICE)
        wait_for(lambda: gateway.job(video_id).status == "submit_unknown", timeout=30)
        assert team_lines(gateway, "team-locked") == (0, PRICE)
        resolved = gateway.admin(
            "POST",
            f"/admin/jobs/{video_id}/resolve",
            json={"decision": "charge", "reason": "the upstream accepted cgt-held (log)"},
        )
        assert resolved.status_code == 200, resolved.text
        assert team_lines(gateway, "team-locked") == (PRICE, 0)
        assert gateway.admin("GET", "/admin/audit").json()["problems"] == []


def test_without_a_lock_timeout_postgresql_waits_for_the_lock_and_records(
    gateway_factory: Any,
    postgres_database: ThrowawayDatabase,  # noqa: F811
) -> None:
    """PostgreSQL's default ``lock_timeout`` is 0 (wait for ever): with none in the database
    URL the record waits for the row lock instead of failing, and the create answers once the
    lock goes. The upstream id is recorded and the reservation kept: nothing refunded, nothing
    unknown. (The create's HTTP request waits as long as the lock is held.)"""
    url = run_aside(postgres_database.new_schema())
    holder = PostgresRowLocks(url)
    with (
        LostAnswerUpstream("answer", holder.hold) as upstream,
        ThreadPoolExecutor(1) as pool,
    ):
        gateway = start(gateway_factory, upstream.url, {"database": {"url": url}}, **SLOW_ANSWER)
        key = gateway.new_key("team-waiting")
        pending = pool.submit(
            gateway.http.post,
            "/v1/videos",
            json=BODY,
            headers={"Authorization": f"Bearer {key}"},
            timeout=120,
        )
        # The upstream took the job, the test's connection holds its row, the record waits on it.
        wait_for(lambda: holder.locked and holder.waiters() > 0, timeout=60)
        assert not pending.done()
        [video_id] = holder.locked
        holder.release()
        answer = pending.result(timeout=60)
        assert answer.status_code == 200, answer.text
        assert answer.json()["id"] == video_id
        job = gateway.job(video_id)
        assert (job.upstream_id, job.money_state) == ("cgt-held", "reserved")
        assert job.status in ("queued", "in_progress")
        assert len(upstream.created) == 1
        assert team_lines(gateway, "team-waiting") == (0, PRICE)
        assert gateway.admin("GET", "/admin/jobs/unknown").json()["data"] == []


def test_a_lock_held_past_the_wait_bound_at_admission_answers_503_and_admits_nothing(
    gateway_factory: Any, database: dict[str, Any], tmp_path: Any
) -> None:
    """Another connection holds what admission must lock (SQLite: the file's write lock, waited
    for ``busy_timeout``; PostgreSQL: the calling key's row, waited for the URL's
    ``lock_timeout``): the create answers 503 ``service_unavailable`` on both stores — a lock
    wait is a brief outage, retried by the SDK — and nothing was admitted, sent or reserved."""
    holder: SqliteWriteLock | PostgresRowLocks
    if database:
        url = database["database"]["url"]
        holder = PostgresRowLocks(url, table="api_keys")
        database = {"database": {"url": f"{url}&lock_timeout=1000"}}
    else:
        holder = SqliteWriteLock(tmp_path / "gateway.db")
    with LostAnswerUpstream("answer") as upstream:
        gateway = start(gateway_factory, upstream.url, database, **SLOW_ANSWER)
        key = gateway.new_key("team-waiting")
        holder.hold()
        try:
            answer = gateway.http.post(
                "/v1/videos", json=BODY, headers={"Authorization": f"Bearer {key}"}, timeout=120
            )
        finally:
            holder.release()
        assert answer.status_code == 503, answer.text
        assert answer.json()["error"]["code"] == "service_unavailable"
        assert "asyncpg" not in answer.text and "sqlite" not in answer.text.lower()
        assert upstream.created == []
        assert team_lines(gateway, "team-waiting") == (0, 0)
        # The lock gone, the same request is admitted.
        retried = gateway.http.post(
            "/v1/videos", json=BODY, headers={"Authorization": f"Bearer {key}"}, timeout=120
        )
        assert retried.status_code == 200, retried.text
        assert len(upstream.created) == 1
