"""Settings: defaults, TOML, environment overrides, secrets, and the documented example file."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import pytest

from gateway.settings import SECTIONS, Settings, SettingsError, describe, load_settings

REPO = Path(__file__).resolve().parents[2]


def empty_config(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text("")
    return path


def test_defaults(tmp_path: Path):
    settings = load_settings(empty_config(tmp_path), environ={})
    assert settings.server.port == 8080
    assert settings.database.url == "sqlite:///./data/gateway.db"
    assert settings.storage.url == "file://./data/blobs"
    assert settings.upstream.base_url == "https://aihubmix.com"
    assert settings.use_sandbox is False  # never implied by a missing key (issue #13)


def test_toml_then_environment_then_overrides(tmp_path: Path):
    path = tmp_path / "config.toml"
    path.write_text('[server]\nport = 9000\nhost = "0.0.0.0"\n[upstream]\nretries = 5\n')
    settings = load_settings(
        path,
        environ={"GATEWAY_SERVER__PORT": "9100", "GATEWAY_UPSTREAM__SANDBOX": "true"},
        overrides={"server": {"host": "127.0.0.2"}},
    )
    assert settings.server.port == 9100
    assert settings.server.host == "127.0.0.2"
    assert settings.upstream.retries == 5
    assert settings.upstream.sandbox is True


def test_aliases_from_environment_json(tmp_path: Path):
    settings = load_settings(
        empty_config(tmp_path),
        environ={"GATEWAY_REQUESTS__MODEL_ALIASES": '{"fast": "doubao-seedance-2-0-fast-260128"}'},
    )
    assert settings.requests.model_aliases["fast"] == "doubao-seedance-2-0-fast-260128"


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"GATEWAY_SERVER__PORT": "eighty"}, "server.port"),
        ({"GATEWAY_SERVER__NOPE": "1"}, "unknown setting server.nope"),
        ({"GATEWAY_NOPE__X": "1"}, "unknown settings section"),
        ({"GATEWAY_UPSTREAM__SANDBOX": "maybe"}, "upstream.sandbox"),
    ],
)
def test_invalid_values_are_named(tmp_path: Path, env: dict[str, str], fragment: str):
    with pytest.raises(SettingsError, match=fragment):
        load_settings(empty_config(tmp_path), environ=env)


def test_secrets_only_from_environment_and_masked(tmp_path: Path):
    settings = load_settings(
        empty_config(tmp_path),
        environ={"AIHUBMIX_API_KEY": "sk-very-secret", "GATEWAY_ADMIN_TOKEN": "adm-secret"},
    )
    assert settings.use_sandbox is False
    assert "sk-very-secret" not in repr(settings)
    assert "adm-secret" not in repr(settings)
    assert "sk-very-secret" not in str(describe(settings))


def test_example_config_lists_every_setting_with_its_default():
    example = tomllib.loads((REPO / "config.example.toml").read_text())
    defaults = Settings()
    assert set(example) == {*SECTIONS, "prices"}
    assert example["prices"] == {m: dict(e) for m, e in defaults.prices.items()}
    for section in SECTIONS:
        fields = {
            f.name: getattr(getattr(defaults, section), f.name)
            for f in dataclasses.fields(getattr(defaults, section))
        }
        assert set(example[section]) == set(fields), section
        for name, default in fields.items():
            value = example[section][name]
            assert value == (dict(default) if isinstance(default, dict) else default), (
                f"{section}.{name}"
            )


def test_example_config_loads(tmp_path: Path):
    settings = load_settings(REPO / "config.example.toml", environ={})
    assert settings == Settings()
