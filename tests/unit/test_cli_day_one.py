"""What a new operator meets on the command line: ports checked before anything starts (through
the real ``gateway`` command as a subprocess), the effective upstream in check-config,
``--config`` in every command's help and no markup in it, aligned tables with a header and
``--json`` for every listing, team names checked, and ``gateway limits``."""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.cli import _parser, main
from tests.processes import GatewayProcess, free_port, write_config

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f'[database]\nurl = "sqlite:///{tmp_path}/cli.db"\n')
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def gateway(*argv: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60):  # type: ignore[no-untyped-def]
    environ = {**os.environ}
    environ.pop("AIHUBMIX_API_KEY", None)
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "gateway", *argv],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


# -- ports and start-up (real subprocesses) -------------------------------------------------


@pytest.mark.parametrize("port", ["99999", "0", "-1", "http"])
def test_serve_refuses_a_port_outside_the_range(tmp_path: Path, port: str) -> None:
    done = gateway("serve", "--sandbox", "--port", port, cwd=tmp_path)
    assert done.returncode == 2
    assert "argument --port" in done.stderr
    assert "SANDBOX" not in done.stdout and not (tmp_path / "data").exists()


def test_a_configured_port_outside_the_range_is_refused(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("[server]\nport = 70000\n")
    done = gateway("serve", "--sandbox", cwd=tmp_path)
    assert done.returncode == 2
    assert "error: server.port must be from 1 to 65535, got 70000" in done.stderr
    from_env = gateway("check-config", cwd=tmp_path, env={"GATEWAY_SERVER__PORT": "99999"})
    assert from_env.returncode == 2 and "server.port" in from_env.stderr


def test_a_busy_port_is_reported_before_the_banner(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = gateway("serve", "--sandbox", "--port", str(port), cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"error: port {port} is in use; set GATEWAY_SERVER__PORT or pass `gateway serve --port N`"
    )
    assert done.stdout == ""  # no banner, no demo key
    assert not (tmp_path / "data").exists()


@pytest.fixture
def serving(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = free_port()
    env = {**os.environ, "GATEWAY_SERVER__PORT": str(port), "GATEWAY_LOG__LEVEL": "warning"}
    env.pop("AIHUBMIX_API_KEY", None)
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve", "--sandbox"],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=log,
    )
    try:
        yield proc, port
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def test_the_port_from_the_environment_is_the_one_served(
    serving: tuple[subprocess.Popen[bytes], int], tmp_path: Path
) -> None:
    proc, port = serving
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, (tmp_path / "serve.log").read_text()
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "the gateway did not become ready"
        time.sleep(0.05)
    banner = (tmp_path / "serve.log").read_text()
    assert f"http://127.0.0.1:{port}/v1" in banner


def make_run(*variables: str) -> str:
    """The command ``make run`` would run (a dry run, outside any enclosing make)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAKE", "MFLAGS"))}
    done = subprocess.run(
        ["make", "--no-print-directory", "-n", "run", *variables],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return next(line for line in done.stdout.splitlines() if "gateway serve" in line).rstrip()


def test_make_run_takes_a_port_and_the_readme_says_so() -> None:
    assert make_run("PORT=8090").endswith("gateway serve --sandbox --port 8090")
    assert make_run().endswith("gateway serve --sandbox")
    quick_start = (REPO / "README.md").read_text().split("## Quick start")[1].split("\n## ")[0]
    assert "make run PORT=8090" in quick_start
    assert "GATEWAY_SERVER__PORT" in quick_start


# -- check-config and help -------------------------------------------------------------------


def test_check_config_shows_the_effective_upstream(
    config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AIHUBMIX_API_KEY", raising=False)
    monkeypatch.setenv("GATEWAY_UPSTREAM__SANDBOX", "true")
    code, out, err = run(capsys, "check-config", "--config", str(config))
    assert code == 0
    assert json.loads(out)["effective"]["upstream"] == "sandbox"
    assert "upstream: sandbox (built in" in err
    monkeypatch.setenv("AIHUBMIX_API_KEY", "sk-test-not-real")
    monkeypatch.delenv("GATEWAY_UPSTREAM__SANDBOX")
    code, out, err = run(capsys, "check-config", "--config", str(config))
    assert json.loads(out)["effective"] == {
        "upstream": "AIHubMix",
        "upstream_url": "https://aihubmix.com",
    }
    assert "upstream: AIHubMix (https://aihubmix.com)" in err
    assert "sk-test-not-real" not in out + err


def commands(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                yield from commands(child)


def test_every_command_shows_config_in_its_help_without_markup() -> None:
    found = list(commands(_parser()))
    assert len(found) > 20
    for command in found:
        text = command.format_help()
        assert "--config FILE" in text, command.prog
        assert "``" not in text and ":class:" not in text, command.prog


# -- listings and teams ----------------------------------------------------------------------


def test_listings_are_aligned_tables_or_json(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    c = ["--config", str(config)]
    for name in ("research", "a-much-longer-team-name"):
        assert run(capsys, *c, "teams", "create", name)[0] == 0
    assert run(capsys, *c, "keys", "create", "--team", "research", "--name", "nb")[0] == 0
    code, out, _ = run(capsys, *c, "teams", "list")
    assert code == 0
    lines = out.rstrip("\n").split("\n")
    assert lines[0].split() == ["name", "id", "created"]
    assert len({line.index("team_") for line in lines[1:]}) == 1  # the id column is aligned
    code, out, _ = run(capsys, *c, "teams", "list", "--json")
    assert [t["name"] for t in json.loads(out)["data"]] == ["a-much-longer-team-name", "research"]
    code, out, _ = run(capsys, *c, "keys", "list")
    lines = out.rstrip("\n").split("\n")
    assert lines[0].split() == ["id", "team", "name", "prefix", "status", "created"]
    assert lines[1].split()[1:5] == ["research", "nb", lines[1].split()[3], "active"]
    assert "\t" not in out
    code, out, _ = run(capsys, *c, "keys", "list", "--json")
    [key] = json.loads(out)["data"]
    assert key["object"] == "api_key" and key["name"] == "nb"


@pytest.mark.parametrize("name", ["has space", "_x", "a/b", "y" * 65])
def test_the_cli_refuses_team_names_outside_the_pattern(
    config: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    code, _, err = run(capsys, "--config", str(config), "teams", "create", name)
    assert code == 2
    assert "error: A team name must be 1 to 64 letters" in err


def test_limits_commands(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    c = ["--config", str(config)]
    run(capsys, *c, "teams", "create", "research")
    code, out, _ = run(
        capsys, *c, "limits", "set", "--team", "research", "--max-in-flight-jobs", "3"
    )
    assert code == 0
    assert out.strip() == (
        "set team research limits: max_in_flight_jobs 3, requests_per_minute none (default)"
    )
    code, out, _ = run(capsys, *c, "limits", "show")
    lines = out.rstrip("\n").split("\n")
    assert lines[0].split() == [
        "scope", "who", "in_flight", "max_in_flight_jobs", "requests_per_minute"
    ]  # fmt: skip
    assert lines[1].split() == ["default", "every", "team", "none", "none"]
    assert lines[3].split() == ["team", "research", "0", "3", "none", "(default)"]
    code, out, _ = run(capsys, *c, "limits", "show", "--team", "research", "--json")
    [item] = json.loads(out)["data"]
    assert item["own"] == {"max_in_flight_jobs": 3, "requests_per_minute": None}
    code, _, err = run(capsys, *c, "limits", "set", "--team", "research")
    assert code == 2 and "Give at least one of" in err
    code, _, err = run(
        capsys, *c, "limits", "set", "--team", "nobody", "--requests-per-minute", "5"
    )
    assert code == 2 and "No team named 'nobody'" in err
    code, _, err = run(
        capsys, *c, "limits", "set", "--team", "research", "--requests-per-minute", "-4"
    )
    assert code == 2 and "requests_per_minute must be from 0" in err
    assert run(capsys, *c, "limits", "clear", "--team", "research")[0] == 0
    code, _, err = run(capsys, *c, "limits", "clear", "--team", "research")
    assert code == 2 and "no limits of its own" in err


def test_a_failed_start_after_binding_exits_non_zero(tmp_path: Path) -> None:
    """The socket is bound before uvicorn runs; a lifespan that fails still fails the command."""
    (tmp_path / "config.toml").write_text(
        f'[server]\nport = {free_port()}\n[database]\nurl = "postgresql://nobody@127.0.0.1:1/none"\n'
        '[upstream]\nbase_url = "http://127.0.0.1:1"\n'  # never the real AIHubMix
    )
    done = gateway("serve", cwd=tmp_path, env={"AIHUBMIX_API_KEY": "sk-not-used"})
    assert done.returncode == 3, done.stderr[-2000:]


def test_the_readme_says_how_cache_hits_are_shared() -> None:
    readme = " ".join((REPO / "README.md").read_text().split())
    assert "Cache hits are shared **within a team** by default" in readme
    assert '`cache.scope = "key"`' in readme and '`"org"`' in readme
    example = (REPO / "config.example.toml").read_text()
    assert 'scope = "team"' in example


def test_test_processes_move_to_another_port_when_theirs_is_taken(tmp_path: Path) -> None:
    """The harness (tests/processes.py) relies on the busy-port message to retry elsewhere."""
    config = write_config(
        tmp_path / "process.toml",
        {
            "database": {"url": f"sqlite:///{tmp_path}/p.db"},
            "storage": {"url": f"file://{tmp_path}/blobs"},
            "upstream": {"sandbox": True},
            "log": {"level": "warning"},
        },
    )
    process = GatewayProcess(config, tmp_path / "process.log")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", process.port))
        taken.listen()
        busy = process.port
        try:
            process.start()
            assert process.port != busy
            assert httpx.get(f"{process.url}/healthz").status_code == 200
        finally:
            process.stop()
    assert f"port {busy} is in use" in (tmp_path / "process.log").read_text()
