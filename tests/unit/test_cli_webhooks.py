"""``gateway webhooks``: the secret printed alone and once, never in listings or the database;
disable/enable/rotate/remove; the key chores (new-key, reseal: rotating the encryption key)."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.services.webhook_secrets import SecretBox
from gateway.store.opening import open_store


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path}/cli.db"\n[upstream]\nallow_private_links = true\nsandbox = true\n'
    )
    return path


def run(capsys: pytest.CaptureFixture[str], config: Path, *argv: str) -> tuple[int, str, str]:
    code = main(["--config", str(config), *argv])
    out, err = capsys.readouterr()
    return code, out, err


def sealed(tmp_path: Path) -> list[str]:
    with closing(sqlite3.connect(tmp_path / "cli.db")) as connection:
        return [row[0] for row in connection.execute("SELECT secret_sealed FROM webhook_endpoints")]


def test_webhook_commands(
    config: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first_key = SecretBox.new_key()
    monkeypatch.setenv("GATEWAY_WEBHOOK_SECRET_KEY", first_key)
    assert run(capsys, config, "teams", "create", "research")[0] == 0
    code, out, err = run(
        capsys, config, "webhooks", "add", "--team", "research", "--url", "http://127.0.0.1:9/h"
    )
    assert code == 0, err
    secret = out.strip()
    assert out == secret + "\n" and secret.startswith("whsec_")
    assert "shown once" in err
    endpoint_id = err.split()[3]
    assert endpoint_id.startswith("we_")

    code, out, _ = run(capsys, config, "webhooks", "list", "--team", "research")
    assert code == 0 and endpoint_id in out and "enabled" in out
    assert secret not in out and secret[6:] not in out
    assert secret[6:] not in "".join(sealed(tmp_path))

    assert run(capsys, config, "webhooks", "disable", endpoint_id)[0] == 0
    assert "disabled" in run(capsys, config, "webhooks", "list")[1]
    assert run(capsys, config, "webhooks", "enable", endpoint_id)[0] == 0
    code, out, err = run(capsys, config, "webhooks", "rotate-secret", endpoint_id, "--keep-old")
    assert code == 0 and out.strip().startswith("whsec_") and out.strip() != secret
    assert "24 h" in err
    code, out, _ = run(capsys, config, "webhooks", "deliveries", endpoint_id, "--json")
    assert code == 0 and '"data": []' in out

    # Rotating the encryption key: new key first, reseal, then the old key can go.
    before = sealed(tmp_path)
    second_key = SecretBox.new_key()
    monkeypatch.setenv("GATEWAY_WEBHOOK_SECRET_KEY", f"{second_key},{first_key}")
    code, out, _ = run(capsys, config, "webhooks", "reseal")
    assert code == 0 and "1 webhook endpoints" in out
    after = sealed(tmp_path)
    assert after != before
    only_new = SecretBox([second_key])
    assert only_new.open(after[0]).startswith("whsec_")

    monkeypatch.setenv("GATEWAY_WEBHOOK_SECRET_KEY", first_key)  # the removed key alone
    code, _, err = run(capsys, config, "webhooks", "reseal")
    assert code == 2 and "does not open" in err

    monkeypatch.setenv("GATEWAY_WEBHOOK_SECRET_KEY", second_key)
    assert run(capsys, config, "webhooks", "remove", endpoint_id)[0] == 0
    code, _, err = run(capsys, config, "webhooks", "remove", endpoint_id)
    assert code == 2 and "No webhook endpoint" in err


def test_new_key_and_a_missing_or_bad_key(
    config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GATEWAY_WEBHOOK_SECRET_KEY", raising=False)
    code, out, _ = run(capsys, config, "webhooks", "new-key")
    key = out.strip()
    assert code == 0 and SecretBox([key]).open(SecretBox([key]).seal("x")) == "x"
    assert run(capsys, config, "teams", "create", "t")[0] == 0
    code, out, err = run(
        capsys, config, "webhooks", "add", "--team", "t", "--url", "http://127.0.0.1/"
    )
    assert code == 2 and out == "" and "GATEWAY_WEBHOOK_SECRET_KEY" in err
    monkeypatch.setenv("GATEWAY_WEBHOOK_SECRET_KEY", "not-a-key-but-secret-looking")
    for command in (
        ["check-config"],
        ["webhooks", "add", "--team", "t", "--url", "http://127.0.0.1/"],
    ):
        code, out, err = run(capsys, config, *command)
        assert code == 2 and "Fernet" in err and "not-a-key" not in err + out


def test_webhook_urls_pass_the_outbound_policy_from_the_cli_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_WEBHOOK_SECRET_KEY", SecretBox.new_key())
    strict = tmp_path / "strict.toml"
    strict.write_text(f'[database]\nurl = "sqlite:///{tmp_path}/strict.db"\n')
    assert run(capsys, strict, "teams", "create", "t")[0] == 0
    code, _, err = run(
        capsys, strict, "webhooks", "add", "--team", "t", "--url", "http://10.0.0.1/"
    )
    assert code == 2 and "not allowed" in err
    asyncio.run(_no_endpoints(f"sqlite:///{tmp_path}/strict.db"))


async def _no_endpoints(url: str) -> None:
    store = await open_store(url)
    try:
        assert (await store.list_endpoints(None))[0] == []
    finally:
        await store.close()
