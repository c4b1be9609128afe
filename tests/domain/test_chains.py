"""Chained videos, pure: balanced plans, what each segment sends upstream, the chain's price,
the storyboard's rules, and the persisted chain state."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.domain.catalog import default_catalog
from gateway.domain.chains import (
    Chain,
    balanced_durations,
    chain_price,
    is_chained,
    new_chain,
    segment_request,
)
from gateway.domain.pricing import default_price_table, price_of
from gateway.domain.requests import parse_video_request
from gateway.domain.video_request import ContentItem, VideoRequest
from gateway.errors import InvalidRequest

FAST = "doubao-seedance-2-0-fast-260128"
CATALOG = default_catalog()
PRICES = default_price_table()


def parse(**body: object) -> VideoRequest:
    return parse_video_request(
        {"model": FAST, "prompt": "p", **body}, CATALOG, max_chained_seconds=60
    )


@pytest.mark.parametrize(
    ("total", "plan"),
    [(31, [11, 10, 10]), (45, [15, 15, 15]), (16, [8, 8]), (60, [15, 15, 15, 15]), (15, [15])],
)
def test_balanced_durations(total: int, plan: list[int]) -> None:
    assert balanced_durations(total, 15) == plan


@given(st.integers(min_value=16, max_value=600), st.integers(min_value=4, max_value=15))
def test_balanced_plans_are_fewest_and_even(total: int, max_each: int) -> None:
    plan = balanced_durations(total, max_each)
    assert sum(plan) == total and max(plan) <= max_each
    assert max(plan) - min(plan) <= 1
    assert len(plan) == -(-total // max_each)


def test_45_seconds_on_the_fast_model_costs_45_times_0_113() -> None:
    request = parse(seconds="45", resolution="720p")
    assert is_chained(request, 15)
    assert chain_price(request, PRICES, 15) == 5_085_000 == price_of(request, PRICES)


def test_each_segment_pays_its_own_surcharge() -> None:
    video = ContentItem(type="video_url", url="https://x.test/ref.mp4", role="reference_video")
    request = parse(duration=31, resolution="720p", content=[video.to_json()])
    chain = new_chain(request, PRICES, 15)
    assert [s.price_micros for s in chain.segments] == [11 * 341_000, 10 * 341_000, 10 * 341_000]


def test_what_each_segment_sends_upstream() -> None:
    first = ContentItem(type="image_url", url="https://x.test/first.png", role="first_frame")
    last = ContentItem(type="image_url", url="https://x.test/last.png", role="last_frame")
    ref = ContentItem(type="image_url", url="https://x.test/style.png", role="reference_image")
    request = parse(duration=40, seed=9, content=[first.to_json(), last.to_json(), ref.to_json()])
    one = segment_request(request, 0, 3, "p", 14, None)
    two = segment_request(request, 1, 3, "p", 13, "https://up.test/f1.png")
    three = segment_request(request, 2, 3, "p", 13, "https://up.test/f2.png")
    assert one.content == (first, ref) and one.return_last_frame
    assert [i.url for i in two.content] == ["https://up.test/f1.png", ref.url]
    assert [i.role for i in three.content] == ["first_frame", "last_frame", "reference_image"]
    assert three.content[0].url == "https://up.test/f2.png"
    assert not three.return_last_frame  # as the client asked
    assert {one.seed, two.seed, three.seed} == {9}
    assert all(not r.segments and r.duration <= 15 for r in (one, two, three))


def test_a_storyboard_is_the_plan() -> None:
    request = parse(
        segments=[{"prompt": "Seconds 0-8: a", "duration": 8}, {"prompt": "b", "duration": 5}]
    )
    assert request.duration == 13 and is_chained(request, 15)
    chain = new_chain(request, PRICES, 15)
    assert [(s.prompt, s.duration) for s in chain.segments] == [("Seconds 0-8: a", 8), ("b", 5)]
    assert VideoRequest.from_json(request.to_json()) == request
    assert "segments" not in parse(duration=5).to_json()  # other requests keep their cache keys


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"duration": 61}, "duration"),
        ({"segments": "not json"}, "segments"),
        ({"segments": [{"prompt": "a", "duration": 8}]}, "segments"),
        (
            {"segments": [{"prompt": "", "duration": 8}, {"prompt": "b", "duration": 8}]},
            "segments[0].prompt",
        ),
        (
            {"segments": [{"prompt": "a", "duration": 1}, {"prompt": "b", "duration": 8}]},
            "segments[0].duration",
        ),
        (
            {"segments": [{"prompt": "a", "duration": 8, "x": 1}, {"prompt": "b", "duration": 8}]},
            "segments[0].x",
        ),
        ({"segments": [{"prompt": "a", "duration": 15}] * 5}, "segments"),
        (
            {
                "duration": 9,
                "segments": [{"prompt": "a", "duration": 4}, {"prompt": "b", "duration": 4}],
            },
            "segments",
        ),
    ],
)
def test_bad_chained_requests(body: dict[str, object], param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse(**body)
    assert caught.value.param == param


def test_without_chaining_the_per_job_maximum_holds() -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_video_request({"model": FAST, "prompt": "p", "duration": 16}, CATALOG)
    assert "chained" not in caught.value.message


def test_chain_state_round_trips_and_tracks_progress() -> None:
    chain = new_chain(parse(duration=30), PRICES, 15)
    assert chain.current() is chain.segments[0] and chain.progress() == 0
    chain = chain.with_segment(0, status="stored").with_segment(
        1, status="in_progress", progress=50
    )
    assert Chain.from_json(chain.to_json()) == chain
    assert chain.progress() == 75
    assert chain.charge_for_stored() == 15 * 113_000
    assert [s["status"] for s in chain.public()] == ["completed", "in_progress"]
