"""``gateway budgets``, ``gateway usage`` and ``gateway audit`` against a real SQLite file, no
server: tables, ``--json`` output, and exit codes (0 done, 1 audit problems, 2 bad input)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gateway.cli import main
from gateway.cli_money import AUDIT_CLEAN
from gateway.domain.budgets import scopes_for
from gateway.domain.video_request import VideoRequest
from gateway.store.base import AdmissionPlan, ApiKey, Job
from gateway.store.opening import open_store
from tests.clocks import AnchoredClock

MODEL = "doubao-seedance-2-0-fast-260128"
PRICE = 565_000  # MODEL at 720p: 0.113 USD/s x 5 s


class Cli:
    """Runs ``gateway --config FILE ...`` in-process and captures what it printed. Its clock
    (and the money ``spend`` records) is anchored: budget periods and usage dates are fixed."""

    def __init__(self, config: Path, db: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.config = config
        self.db = db
        self.capsys = capsys
        self.clock = AnchoredClock()

    def __call__(self, *argv: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = main(["--config", str(self.config), *argv], clock=self.clock)
        out, err = self.capsys.readouterr()
        return code, out, err

    def ok(self, *argv: str) -> str:
        code, out, err = self(*argv)
        assert code == 0, err
        return out

    def json(self, *argv: str) -> Any:
        return json.loads(self.ok(*argv, "--json"))

    def key_id(self, team: str, name: str) -> str:
        self.ok("keys", "create", "--team", team, "--name", name)
        keys = self.json("keys", "list", "--team", team)["data"]
        return str(next(key["id"] for key in keys if key["name"] == name))


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.delenv("GATEWAY_DATABASE__URL", raising=False)
    db = tmp_path / "gateway.db"
    config = tmp_path / "config.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{db}"\n')
    handle = Cli(config, db, capsys)
    handle.ok("teams", "create", "research")
    return handle


def spend(cli: Cli, key_id: str, *, charged: int = 0, refunded: int = 0) -> None:
    """Record money the way the gateway does: reserve each job, then charge or refund it."""

    async def go() -> None:
        store = await open_store(f"sqlite:///{cli.db}")
        try:
            [key] = [k for k in await store.list_keys() if k.id == key_id]
            now = cli.clock()
            for index in range(charged + refunded):
                job = await admitted(store, key, index, now)
                if index < charged:
                    await store.update_job(job.id, {"status": "in_progress"})
                    [claimed] = await store.claim_due_jobs(
                        owner="test", now=now, lease_seconds=60, limit=1
                    )
                    done = {"status": "completed", "completed_at": int(now)}
                    done |= {"delivered_seconds": 5, "next_check_at": None}
                    await store.complete_job(
                        claimed.id, owner="test", changes=done, video=None, last_frame=None
                    )
                else:
                    await store.fail_job(job.id, owner=None, code="x", message="x", now=now)
        finally:
            await store.close()

    asyncio.run(go())


async def admitted(store: Any, key: ApiKey, index: int, now: float) -> Job:
    job = Job(
        id=f"video_{key.id}_{index}",
        team_id=key.team_id,
        key_id=key.id,
        model=MODEL,
        request=VideoRequest(model=MODEL, prompt=f"p{index}", duration=5, resolution="720p"),
        status="submitting",
        created_at=int(now),
        updated_at=int(now),
        cost_micros=PRICE,
        next_check_at=now - 1,
    )
    admission = await store.admit_job(
        AdmissionPlan(job=job, scopes=scopes_for(key.id, key.team_id), now=now)
    )
    return admission.job  # type: ignore[no-any-return]


# -- budgets --------------------------------------------------------------------------------


def test_set_show_clear_every_scope(cli: Cli):
    key_id = cli.key_id("research", "notebook")
    assert cli.ok("budgets", "set", "--team", "research", "--window", "day", "--usd", "50") == (
        "set team research day limit: $50.00\n"
    )
    assert cli.ok("budgets", "set", "--key", key_id, "--window", "month", "--usd", "0.0123") == (
        f"set key {key_id} month limit: $0.0123\n"
    )
    assert cli.ok("budgets", "set", "--org", "--window", "total", "--usd", "1000") == (
        "set org total limit: $1000.00\n"
    )

    table = cli.ok("budgets", "show").splitlines()
    assert table[0].split() == ["scope", "who", "window", "limit", "spent", "reserved", "remaining"]
    assert [line.split() for line in table[1:]] == [
        ["org", "org", "total", "$1000.00", "$0.00", "$0.00", "$1000.00"],
        ["team", "research", "day", "$50.00", "$0.00", "$0.00", "$50.00"],
        ["key", key_id, "month", "$0.0123", "$0.00", "$0.00", "$0.0123"],
    ]
    assert len({len(line) for line in table}) == 1  # aligned columns

    [team] = cli.json("budgets", "show", "--team", "research")["data"]
    assert team["scope"] == "team"
    assert team["name"] == "research"
    assert team["window"] == "day"
    assert team["period"] == cli.clock.day()
    assert (team["limit_usd"], team["limit_micros"]) == ("50.00", 50_000_000)
    assert (team["remaining_usd"], team["remaining_micros"]) == ("50.00", 50_000_000)
    [key] = cli.json("budgets", "show", "--key", key_id)["data"]
    assert (key["scope_id"], key["name"], key["limit_micros"]) == (key_id, "notebook", 12_300)
    [org] = cli.json("budgets", "show", "--org")["data"]
    assert (org["scope_id"], org["window"], org["resets_at"]) == ("org", "total", None)

    assert cli.ok("budgets", "clear", "--team", "research", "--window", "day") == (
        "cleared team research day limit\n"
    )
    assert cli.ok("budgets", "clear", "--org", "--window", "total") == "cleared org total limit\n"
    assert [b["scope"] for b in cli.json("budgets", "show")["data"]] == ["key"]
    code, _, err = cli("budgets", "clear", "--org", "--window", "total")
    assert (code, err) == (2, "error: no total limit for org\n")


def test_set_replaces_and_show_reports_spend(cli: Cli):
    key_id = cli.key_id("research", "notebook")
    cli.ok("budgets", "set", "--team", "research", "--window", "month", "--usd", "1")
    cli.ok("budgets", "set", "--team", "research", "--window", "month", "--usd", "2.5")
    spend(cli, key_id, charged=2, refunded=1)
    [line] = cli.json("budgets", "show")["data"]
    assert (line["limit_usd"], line["spent_usd"], line["reserved_usd"], line["remaining_usd"]) == (
        "2.50",
        "1.13",
        "0.00",
        "1.37",
    )
    assert cli.ok("budgets", "show").splitlines()[1].split() == [
        "team",
        "research",
        "month",
        "$2.50",
        "$1.13",
        "$0.00",
        "$1.37",
    ]


def test_show_with_no_limits_prints_only_the_header(cli: Cli):
    assert cli.ok("budgets", "show").split() == [
        "scope",
        "who",
        "window",
        "limit",
        "spent",
        "reserved",
        "remaining",
    ]
    assert cli.json("budgets", "show") == {"object": "list", "data": []}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--team", "ghosts", "--window", "day", "--usd", "1"], "error: No team named 'ghosts'."),
        (
            ["--key", "key_nope", "--window", "day", "--usd", "1"],
            "error: No key with id 'key_nope'.",
        ),
        (["--org", "--window", "day", "--usd", "-5"], "must not be negative"),
        (["--org", "--window", "day", "--usd=-0.01"], "must not be negative"),
        (["--org", "--window", "day", "--usd", "lots"], "must be a decimal number"),
        (["--org", "--window", "day", "--usd", "1e20"], "--usd must be at most"),
    ],
)
def test_set_errors_exit_2(cli: Cli, argv: list[str], message: str):
    code, out, err = cli("budgets", "set", *argv)
    assert code == 2
    assert out == ""
    assert err.startswith("error: ")
    assert message in err
    assert cli.json("budgets", "show")["data"] == []


@pytest.mark.parametrize(
    "argv",
    [
        ["budgets", "set", "--org", "--window", "week", "--usd", "1"],  # bad window
        ["budgets", "set", "--org", "--usd", "1"],  # no window
        ["budgets", "set", "--window", "day", "--usd", "1"],  # no owner
        ["budgets", "set", "--org", "--team", "research", "--window", "day", "--usd", "1"],
        ["budgets", "clear", "--org", "--window", "year"],
        ["usage", "--team", "research", "--by", "week"],
        ["usage", "--since", "2026-11-01"],  # no team
    ],
)
def test_argument_errors_exit_2(cli: Cli, argv: list[str], capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit) as exc:
        main(["--config", str(cli.config), *argv])
    assert exc.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_show_and_clear_for_unknown_owners_exit_2(cli: Cli):
    assert cli("budgets", "show", "--team", "ghosts")[0] == 2
    assert cli("budgets", "clear", "--key", "key_nope", "--window", "day")[0] == 2


# -- usage ---------------------------------------------------------------------------------


def test_usage_table_and_json(cli: Cli):
    first = cli.key_id("research", "first")
    second = cli.key_id("research", "second")
    spend(cli, first, charged=2)
    spend(cli, second, charged=1, refunded=1)
    today = cli.clock.day()

    table = cli.ok("usage", "--team", "research", "--since", today, "--by", "model").splitlines()
    assert table[0].split() == [
        "group",
        "spend",
        "reserved",
        "refunded",
        "videos",
        "seconds",
        "saved",
    ]
    assert table[1].split() == [MODEL, "$1.695", "$0.00", "$0.565", "3", "15", "$0.00"]
    assert table[2].split() == ["total", "$1.695", "$0.00", "$0.565", "3", "15", "$0.00"]
    assert len(table) == 3

    report = cli.json("usage", "--team", "research", "--since", today, "--by", "key")
    assert (report["team"], report["since"], report["by"]) == ("research", today, "key")
    groups = {row["group"]: row for row in report["data"]}
    assert set(groups) == {first, second}
    assert (groups[first]["spent_micros"], groups[first]["videos"]) == (2 * PRICE, 2)
    assert (groups[second]["spent_usd"], groups[second]["refunded_usd"]) == ("0.565", "0.565")
    assert report["totals"]["spent_micros"] == 3 * PRICE
    assert report["totals"]["seconds"] == 15
    assert "group" not in report["totals"]

    by_day = cli.json("usage", "--team", "research", "--by", "day")
    assert [(row["group"], row["videos"]) for row in by_day["data"]] == [(today, 3)]
    assert by_day["since"] is None

    tomorrow = cli.clock.day(1)
    empty = cli.ok("usage", "--team", "research", "--since", tomorrow).splitlines()
    assert [line.split()[0] for line in empty] == ["group", "total"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--team", "ghosts"], "error: No team named 'ghosts'."),
        (["--team", "research", "--since", "11/01/2026"], "since must be a UTC date YYYY-MM-DD"),
    ],
)
def test_usage_errors_exit_2(cli: Cli, argv: list[str], message: str):
    code, out, err = cli("usage", *argv)
    assert (code, out) == (2, "")
    assert message in err


# -- audit ---------------------------------------------------------------------------------


def test_audit_clean_then_problems(cli: Cli):
    assert cli("audit") == (0, AUDIT_CLEAN + "\n", "")
    key_id = cli.key_id("research", "notebook")
    spend(cli, key_id, charged=1, refunded=1)
    assert cli("audit") == (0, "audit clean: counters match the ledger\n", "")

    with closing(sqlite3.connect(cli.db)) as db, db:
        db.execute(
            "UPDATE budget_counters SET spent = spent + 1"
            " WHERE scope = 'org' AND window_kind = 'total'"
        )
    code, out, err = cli("audit")
    assert code == 1
    [problem] = out.splitlines()
    assert problem.startswith("counter org/org/total/total:")
    assert "spent 565001" in problem
    assert err == "audit found 1 problem(s)\n"


def test_audit_of_one_team_and_month(cli: Cli):
    research = cli.key_id("research", "notebook")
    spend(cli, research, charged=1)
    cli.ok("teams", "create", "design")
    other = cli.key_id("design", "laptop")
    spend(cli, other, charged=1)
    month = datetime.fromtimestamp(cli.clock(), UTC).strftime("%Y-%m")  # when spend() spent
    assert cli("audit", "--team", "research") == (0, AUDIT_CLEAN + "\n", "")
    assert cli("audit", "--team", "research", "--month", month) == (0, AUDIT_CLEAN + "\n", "")

    with closing(sqlite3.connect(cli.db)) as db, db:
        db.execute(
            "UPDATE budget_counters SET spent = spent + 1"
            " WHERE scope = 'key' AND scope_id = ? AND window_kind = 'month'",
            (other,),
        )
    assert cli("audit", "--team", "research", "--month", month)[0] == 0
    code, out, err = cli("audit", "--team", "design", "--month", month)
    assert code == 1
    [problem] = out.splitlines()
    assert problem.startswith(f"counter key/{other}/month/{month}:")
    assert err == "audit found 1 problem(s)\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--team", "ghosts"], "error: No team named 'ghosts'."),
        (["--month", "2026-11"], "month needs a team."),
        (["--team", "research", "--month", "2026-13"], "month must be YYYY-MM"),
        (["--team", "research", "--month", "2026-1"], "month must be YYYY-MM"),
    ],
)
def test_audit_errors_exit_2(cli: Cli, argv: list[str], message: str):
    cli.key_id("research", "notebook")
    code, out, err = cli("audit", *argv)
    assert (code, out) == (2, "")
    assert message in err
