"""The rough edges a new user hits first, through the OpenAI SDK: a malformed key, a base URL
without /v1, a dry-run quote, and a team name outside the documented pattern."""

from __future__ import annotations

import openai
import pytest
from openai import OpenAI

from tests.conftest import FAST_MODEL, GatewayHandle, SandboxHandle


def test_a_malformed_key_is_named_as_such(gateway: GatewayHandle) -> None:
    with pytest.raises(openai.AuthenticationError) as refused:
        gateway.client(key="gw-wrong").videos.list()
    assert "malformed gateway key" in refused.value.message
    with pytest.raises(openai.AuthenticationError) as unknown:
        gateway.client(key="gw-" + "A" * 43).videos.list()
    assert "malformed" not in unknown.value.message  # well formed, just not a key we know


@pytest.mark.parametrize("path", ["/videos", "/videos/video_1", "/models"])
def test_a_base_url_without_v1_is_pointed_at_v1(gateway: GatewayHandle, path: str) -> None:
    resp = gateway.http.get(path)
    assert resp.status_code == 404
    message = resp.json()["error"]["message"]
    assert f"did you mean /v1{path}? the base URL should end in /v1" in message
    assert "did you mean" not in gateway.http.get("/elsewhere").json()["error"]["message"]


def test_the_sdk_without_v1_gets_the_hint(gateway: GatewayHandle) -> None:
    client = OpenAI(base_url=gateway.url, api_key=gateway.new_key(), max_retries=0)
    with pytest.raises(openai.NotFoundError) as missing:
        client.videos.create(model=FAST_MODEL, prompt="Where is v1?")
    assert "did you mean /v1/videos? the base URL should end in /v1" in missing.value.message
    client.close()


def test_a_dry_run_through_the_sdk_has_an_id_and_says_it_is_a_quote(
    gateway: GatewayHandle, sandbox: SandboxHandle
) -> None:
    client = gateway.client()
    quote = client.videos.create(
        model=FAST_MODEL,
        prompt="How much?",
        seconds="8",
        extra_body={"resolution": "480p"},
        extra_headers={"X-Gateway-Dry-Run": "true"},
    )
    assert quote.id.startswith("quote_")
    assert quote.object == "video.quote"  # type: ignore[comparison-overlap]
    assert quote.created_at > 0 and quote.size == "854x480" and quote.seconds == "8"
    extra = quote.model_extra or {}
    assert (extra["cost_usd"], extra["fits"]) == ("0.44", True)
    with pytest.raises(openai.NotFoundError) as missing:
        client.videos.retrieve(quote.id)
    assert "A quote is not a video" in missing.value.message
    assert sandbox.stats()["create"] == 0
    assert client.videos.list().data == []


@pytest.mark.parametrize("name", ["has space", "-leading", "x" * 65, "Ärger", ""])
def test_team_names_follow_the_pattern(gateway: GatewayHandle, name: str) -> None:
    resp = gateway.admin("POST", "/admin/teams", json={"name": name})
    assert resp.status_code == 400
    assert resp.json()["error"]["param"] == "name"
    assert gateway.admin("GET", "/admin/teams").json()["data"] == []
