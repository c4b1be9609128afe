"""The pure webhook rules: the event body, signatures (checked by ``standardwebhooks``, not by
our own code), the retry schedule with its jitter bounds, and when delivery gives up."""

from __future__ import annotations

import time

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks import Webhook

from gateway.domain.webhooks import (
    check_event_types,
    check_url_shape,
    disables,
    encode_secret,
    event_body,
    gives_up,
    retry_delay,
    secret_hint,
    signature_header,
)
from gateway.errors import InvalidRequest

SECRET = encode_secret(bytes(range(32)))
OTHER = encode_secret(bytes(range(1, 33)))


def test_event_body_is_openais_event_shape() -> None:
    body = event_body("evt_1", "video.completed", 1_760_000_000, "video_9")
    assert orjson.loads(body) == {
        "id": "evt_1",
        "object": "event",
        "type": "video.completed",
        "created_at": 1_760_000_000,
        "data": {"id": "video_9"},
    }


def test_signatures_verify_with_the_reference_implementation() -> None:
    body = event_body("evt_1", "video.failed", 1, "video_1")
    now = int(time.time())
    headers = signature_header([SECRET], "wh_1", now, body)
    assert Webhook(SECRET).verify(body, headers)["id"] == "evt_1"
    # Two secrets (a rotation that keeps the old one): either verifies.
    both = signature_header([OTHER, SECRET], "wh_1", now, body)
    assert len(both["webhook-signature"].split(" ")) == 2
    assert Webhook(SECRET).verify(body, both) and Webhook(OTHER).verify(body, both)
    assert both["webhook-signature"].split(" ")[1] == headers["webhook-signature"]


def test_a_secret_is_needed_and_hints_hide_it() -> None:
    with pytest.raises(ValueError):
        signature_header([], "wh_1", 1, b"{}")
    hint = secret_hint(SECRET)
    assert hint.startswith("whsec_****") and hint.endswith(SECRET[-4:])
    assert SECRET[6:-4] not in hint


def test_documented_retry_schedule() -> None:
    ceilings = [retry_delay(n, base=30, maximum=3600, draw=1.0) for n in range(1, 10)]
    assert ceilings == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]
    floors = [retry_delay(n, base=30, maximum=3600, draw=0.0) for n in range(1, 4)]
    assert floors == [15, 30, 60]


@given(st.integers(min_value=0, max_value=10_000), st.floats(min_value=0, max_value=1))
def test_retry_delay_stays_within_half_and_whole_of_its_ceiling(attempts: int, draw: float) -> None:
    delay = retry_delay(attempts, base=0.5, maximum=600, draw=draw)
    ceiling = min(600, 0.5 * 2 ** max(0, min(attempts - 1, 62)))
    assert ceiling / 2 <= delay <= ceiling


def test_gives_up_after_the_window() -> None:
    assert not gives_up(1000.0, 1000.0 + 72 * 3600, 72 * 3600)
    assert gives_up(1000.0, 1000.0 + 72 * 3600 + 1, 72 * 3600)


def test_input_checks_name_the_field() -> None:
    assert check_event_types(["video.failed", "video.completed", "video.failed"]) == (
        "video.completed",
        "video.failed",
    )
    for bad in ([], "video.completed", ["response.completed"], None):
        with pytest.raises(InvalidRequest) as caught:
            check_event_types(bad)
        assert caught.value.param == "event_types"
    for url in ("https://x.example/h", "http://127.0.0.1:8/h"):
        assert check_url_shape(url) == url
    for url in ("ftp://x.example/", "/relative", "https://u:p@x.example/", "", 5, "x" * 3000):
        with pytest.raises(InvalidRequest):
            check_url_shape(url)


@pytest.mark.parametrize(
    ("status", "failures", "disable_after", "disabled"),
    [
        ("enabled", 4, 5, False),
        ("enabled", 5, 5, True),
        ("enabled", 6, 5, True),
        ("disabled", 9, 5, False),  # already disabled: not disabled (and announced) again
    ],
)
def test_an_endpoint_is_disabled_when_its_failures_reach_the_limit(
    status: str, failures: int, disable_after: int, disabled: bool
) -> None:
    assert disables(status, failures, disable_after) is disabled
