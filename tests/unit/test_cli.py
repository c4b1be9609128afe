"""The `gateway` command: teams, keys (plaintext printed alone, once), migrate, check-config,
and --config before or after the command."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.domain.api_keys import hash_key
from gateway.store.opening import open_store


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f'[database]\nurl = "sqlite:///{tmp_path}/cli.db"\n')
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def stored_key(config: Path, plaintext: str):  # type: ignore[no-untyped-def]
    url = config.read_text().split('"')[1]

    async def look():  # type: ignore[no-untyped-def]
        store = await open_store(url)
        try:
            return await store.key_by_hash(hash_key(plaintext))
        finally:
            await store.close()

    return asyncio.run(look())


def test_teams_and_keys(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "--config", str(config), "teams", "create", "research")[0] == 0
    code, out, err = run(
        capsys, "keys", "create", "--team", "research", "--name", "nb", "--config", str(config)
    )
    assert code == 0
    plaintext = out.strip()
    assert out == plaintext + "\n"  # the key alone on stdout
    assert plaintext.startswith("gw-")
    assert "shown once" in err
    key = stored_key(config, plaintext)
    assert key is not None and key.active
    code, out, _ = run(capsys, "--config", str(config), "keys", "list")
    assert plaintext not in out
    assert key.id in out and "research" in out and "active" in out
    assert run(capsys, "--config", str(config), "keys", "revoke", key.id)[0] == 0
    assert not stored_key(config, plaintext).active
    code, _, err = run(capsys, "--config", str(config), "keys", "revoke", key.id)
    assert code == 2 and "No active key" in err
    code, _, err = run(capsys, "--config", str(config), "teams", "create", "research")
    assert code == 2 and "already exists" in err
    code, _, err = run(capsys, "--config", str(config), "keys", "create", "--team", "nobody")
    assert code == 2 and "No team named" in err
    code, out, _ = run(capsys, "teams", "list", "--config", str(config))
    assert "research" in out


def test_migrate_and_check_config(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "migrate", "--config", str(config))
    assert code == 0 and "schema at version" in out
    code, out, err = run(capsys, "check-config", "--config", str(config))
    assert code == 2 and "AIHUBMIX_API_KEY is not set" in err and "--sandbox" in err
    config.write_text(config.read_text() + "[upstream]\nsandbox = true\n")
    code, out, _ = run(capsys, "check-config", "--config", str(config))
    assert code == 0
    described = json.loads(out)
    assert described["database"]["url"].endswith("cli.db")
    assert described["secrets"]["AIHUBMIX_API_KEY"] in ("set", "not set")
    assert described["upstream_in_use"] == {"upstream": "sandbox"}


def test_serve_without_key_or_sandbox_exits_before_writing_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No silent sandbox: no demo team, no database file, a message naming both ways forward."""
    monkeypatch.delenv("AIHUBMIX_API_KEY", raising=False)
    path = tmp_path / "config.toml"
    path.write_text(f'[database]\nurl = "sqlite:///{tmp_path}/serve.db"\n')
    for command in ("serve", "worker"):
        code, out, err = run(capsys, command, "--config", str(path))
        assert code == 2
        assert "AIHUBMIX_API_KEY is not set" in err
        assert "--sandbox" in err and "upstream.sandbox = true" in err
        assert "Demo key" not in out
    assert not (tmp_path / "serve.db").exists()
    assert not (tmp_path / "demo-key").exists()


def test_check_config_rejects_unknown_option_values(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    path = tmp_path / "bad.toml"
    path.write_text('[cache]\nscope = "planet"\n')
    code, _, err = run(capsys, "--config", str(path), "check-config")
    assert code == 2 and "cache.scope" in err


def test_serve_has_no_workers_option(capsys: pytest.CaptureFixture[str]) -> None:
    """One uvicorn worker per process is enforced: metrics are per process (docs/operations.md)."""
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", "--workers", "2"])
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --workers" in capsys.readouterr().err


def test_check_config_masks_passwords_in_urls(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "secret.toml"
    path.write_text(
        '[database]\nurl = "postgresql://gw:hunter2@db.internal:5432/gw"\n'
        '[storage]\ns3_endpoint_url = "https://minio:s3cr@t@minio.internal:9000"\n'
        "[upstream]\nsandbox = true\n"
    )
    code, out, _ = run(capsys, "--config", str(path), "check-config")
    assert code == 0
    assert "hunter2" not in out and "s3cr" not in out
    described = json.loads(out)
    assert described["database"]["url"] == "postgresql://gw:****@db.internal:5432/gw"
    assert described["storage"]["s3_endpoint_url"] == "https://minio:****@minio.internal:9000"
