"""``GET /v1/models`` through the official OpenAI SDK: every model and alias, OpenAI's fields
plus the Seedance extras, prices from the configured table, authenticated like /v1/videos."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from gateway.domain.catalog import DEFAULT_MODELS
from tests.conftest import FAST_MODEL


@pytest.fixture
def configured(gateway_factory: Any) -> Any:
    return gateway_factory(
        requests={"model_aliases": {"seedance-fast": FAST_MODEL}, "max_chained_seconds": 45}
    )


def test_list_has_every_model_and_alias(configured: Any) -> None:
    client = configured.client()
    models = list(client.models.list())
    assert [m.id for m in models] == [*(spec.id for spec in DEFAULT_MODELS), "seedance-fast"]
    assert {m.object for m in models} == {"model"}
    assert all(m.owned_by == "bytedance-seedance" and m.created > 0 for m in models)
    fast = next(m for m in models if m.id == FAST_MODEL)
    extra = fast.model_extra or {}
    assert extra["alias_of"] is None
    assert extra["resolutions"] == ["480p", "720p"]
    assert (extra["min_duration_seconds"], extra["max_duration_seconds"]) == (2, 15)
    assert extra["max_chained_seconds"] == 45
    assert extra["supports"]["reference_video"] and extra["supports"]["reference_audio"]
    assert extra["supports"]["last_frame"] and extra["supports"]["reference_image"]
    assert extra["price_usd_per_second"] == {"480p": "0.055", "720p": "0.113"}
    assert extra["price_usd_per_second_with_reference_video"] == {"480p": "0.158", "720p": "0.341"}
    pro = next(m for m in models if m.id == "doubao-seedance-1-0-pro-250528")
    assert (pro.model_extra or {})["supports"]["reference_image"] is False
    assert (pro.model_extra or {})["price_usd_per_second"]["1080p"] == "0.102"


def test_retrieve_a_model_and_an_alias(configured: Any) -> None:
    client = configured.client()
    model = client.models.retrieve(FAST_MODEL)
    assert model.id == FAST_MODEL
    assert model.created == 1769558400  # 2026-01-28, from the id
    alias = client.models.retrieve("seedance-fast")
    assert alias.id == "seedance-fast"
    assert (alias.model_extra or {})["alias_of"] == FAST_MODEL
    with pytest.raises(openai.NotFoundError) as missing:
        client.models.retrieve("sora-2")
    assert missing.value.code == "model_not_found"


def test_prices_come_from_the_configured_table(gateway_factory: Any, tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(f'[prices."{FAST_MODEL}"]\n"720p" = 0.2\n')
    gateway = gateway_factory()
    model = gateway.client().models.retrieve(FAST_MODEL)
    assert (model.model_extra or {})["price_usd_per_second"]["720p"] == "0.20"


def test_models_need_a_gateway_key(gateway: Any) -> None:
    for path in ("/v1/models", f"/v1/models/{FAST_MODEL}"):
        resp = httpx.get(f"{gateway.url}{path}")
        assert resp.status_code == 401
        assert resp.json()["error"]["code"] == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        gateway.client(key="gw-" + "x" * 43).models.list()
