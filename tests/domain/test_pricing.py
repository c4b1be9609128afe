"""Pricing: every published price, the reference-video surcharge, config parsing, exact money."""

from __future__ import annotations

from decimal import Decimal

import pytest

from gateway.domain.catalog import Catalog, ModelSpec, default_catalog
from gateway.domain.money import MICROS_PER_USD, format_usd, micros_to_usd_str, usd_to_micros
from gateway.domain.pricing import (
    DEFAULT_PRICES_USD,
    PriceTable,
    default_price_table,
    missing_prices,
    per_second_price,
    price_of,
    price_table_from_config,
)
from gateway.domain.video_request import ContentItem, VideoRequest

V2 = "doubao-seedance-2-0-260128"
V2_FAST = "doubao-seedance-2-0-fast-260128"
V15 = "doubao-seedance-1-5-pro-251215"
V10 = "doubao-seedance-1-0-pro-250528"
V10_FAST = "doubao-seedance-1-0-pro-fast-251015"

# shared/upstream-api.md, "Models and prices": USD per second, as text so no float is involved.
SPEC_PRICES: dict[str, dict[str, str]] = {
    V2: {"480p": "0.071", "720p": "0.154"},
    V2_FAST: {"480p": "0.055", "720p": "0.113"},
    V15: {"480p": "0.0225", "720p": "0.0487", "1080p": "0.11"},
    V10: {"480p": "0.021", "720p": "0.044", "1080p": "0.102"},
    V10_FAST: {"480p": "0.0062", "720p": "0.0123", "1080p": "0.0298"},
}
# "Requests that include a reference video cost more on the Seedance 2.0 series".
SPEC_WITH_VIDEO: dict[str, dict[str, str]] = {
    V2: {"480p": "0.158", "720p": "0.341"},
    V2_FAST: {"480p": "0.158", "720p": "0.341"},
}
DURATIONS = (2, 4, 5, 8, 11, 15)
VIDEO_ITEM = ContentItem(type="video_url", url="https://example.com/v.mp4", role="reference_video")
IMAGE_ITEM = ContentItem(type="image_url", url="https://example.com/a.jpg", role="first_frame")

CASES = [
    (model, resolution, with_video)
    for model, row in SPEC_PRICES.items()
    for resolution in row
    for with_video in (False, True)
]


def spec_micros(usd: str) -> int:
    return int(Decimal(usd) * MICROS_PER_USD)


def expected_per_second(model: str, resolution: str, with_video: bool) -> int:
    if with_video and model in SPEC_WITH_VIDEO:
        return spec_micros(SPEC_WITH_VIDEO[model][resolution])
    return spec_micros(SPEC_PRICES[model][resolution])


def request(model: str, resolution: str, *, with_video: bool, duration: int = 5) -> VideoRequest:
    content = (IMAGE_ITEM, VIDEO_ITEM) if with_video else (IMAGE_ITEM,)
    return VideoRequest(
        model=model, prompt="p", content=content, resolution=resolution, duration=duration
    )


def test_the_cases_cover_every_catalog_model_and_resolution():
    allowed = {(m.id, r) for m in default_catalog().models.values() for r in m.resolutions}
    assert {(m, r) for m, r, _ in CASES} == allowed
    assert len(CASES) == 26


@pytest.mark.parametrize(("model", "resolution", "with_video"), CASES)
def test_per_second_price_matches_the_published_table(
    model: str, resolution: str, with_video: bool
):
    expected = expected_per_second(model, resolution, with_video)
    assert per_second_price(model, resolution, with_video, default_price_table()) == expected


@pytest.mark.parametrize(("model", "resolution", "with_video"), CASES)
@pytest.mark.parametrize("duration", DURATIONS)
def test_price_of_is_per_second_times_duration(
    model: str, resolution: str, with_video: bool, duration: int
):
    req = request(model, resolution, with_video=with_video, duration=duration)
    expected = int(Decimal(_spec_usd(model, resolution, with_video)) * duration * MICROS_PER_USD)
    assert price_of(req, default_price_table()) == expected
    assert (
        price_of(req, default_price_table())
        == expected_per_second(model, resolution, with_video) * duration
    )


def _spec_usd(model: str, resolution: str, with_video: bool) -> str:
    if with_video and model in SPEC_WITH_VIDEO:
        return SPEC_WITH_VIDEO[model][resolution]
    return SPEC_PRICES[model][resolution]


def test_worked_examples_in_dollars():
    table = default_price_table()
    # The upstream's minimal example: 2.0 fast, 720p by default, 8 s -> $0.904.
    assert price_of(request(V2_FAST, "720p", with_video=False, duration=8), table) == 904_000
    # The full example: an 11-second 2.0 ad with a reference video at 720p -> $3.751.
    assert price_of(request(V2, "720p", with_video=True, duration=11), table) == 3_751_000
    assert format_usd(price_of(request(V2, "720p", with_video=True, duration=11), table)) == (
        "$3.751"
    )


@pytest.mark.parametrize("model", [V15, V10, V10_FAST])
@pytest.mark.parametrize("resolution", ["480p", "720p", "1080p"])
def test_1x_models_with_a_reference_video_use_their_plain_price(model: str, resolution: str):
    table = default_price_table()
    plain = per_second_price(model, resolution, False, table)
    assert per_second_price(model, resolution, True, table) == plain
    with_video = request(model, resolution, with_video=True, duration=7)
    assert with_video.has_reference_video
    assert price_of(with_video, table) == plain * 7


def test_only_video_items_trigger_the_surcharge():
    audio = ContentItem(type="audio_url", url="https://example.com/m.mp3", role="reference_audio")
    req = VideoRequest(model=V2, prompt="p", content=(IMAGE_ITEM, audio), resolution="480p")
    assert price_of(req, default_price_table()) == 71_000 * 5


def test_price_of_duration_override():
    req = request(V2, "480p", with_video=False, duration=15)
    table = default_price_table()
    assert price_of(req, table, duration=4) == 71_000 * 4
    assert price_of(req, table, duration=0) == 0
    with pytest.raises(ValueError, match="negative"):
        price_of(req, table, duration=-1)


def test_default_prices_are_configuration_shaped_and_cover_the_catalog():
    assert missing_prices(default_price_table(), default_catalog()) == []
    assert set(DEFAULT_PRICES_USD) == set(SPEC_PRICES)
    for model, row in DEFAULT_PRICES_USD.items():
        expected = {**SPEC_PRICES[model]}
        expected.update({f"{r}_with_video": p for r, p in SPEC_WITH_VIDEO.get(model, {}).items()})
        assert {key: str(value) for key, value in row.items()} == expected


def test_missing_prices_lists_every_absent_entry():
    table = price_table_from_config({V2: {"480p": 0.071}, V15: {"720p": 0.0487}})
    catalog = Catalog(
        models={
            V2: ModelSpec(V2, ("480p", "720p")),
            V15: ModelSpec(V15, ("480p", "720p", "1080p")),
        }
    )
    assert missing_prices(table, catalog) == [(V2, "720p"), (V15, "480p"), (V15, "1080p")]


def test_a_with_video_price_alone_does_not_cover_a_resolution():
    table = price_table_from_config({V2: {"480p": 0.071, "720p_with_video": 0.341}})
    assert missing_prices(table, Catalog(models={V2: ModelSpec(V2, ("480p", "720p"))})) == [
        (V2, "720p")
    ]


def test_an_absent_price_is_a_value_error_naming_model_and_resolution():
    table = PriceTable(per_second={(V2, "480p"): 71_000})
    with pytest.raises(ValueError, match=rf"{V2}.*720p"):
        per_second_price(V2, "720p", False, table)
    with pytest.raises(ValueError, match=rf"{V2}.*720p"):
        per_second_price(V2, "720p", True, table)
    with pytest.raises(ValueError, match=r"unknown-model.*480p"):
        price_of(request("unknown-model", "480p", with_video=False), table)


def test_config_accepts_ints_strings_decimals_and_floats():
    table = price_table_from_config(
        {
            "m": {
                "480p": 1,
                "720p": "0.0487",
                "1080p": Decimal("0.11"),
                "720p_with_video": 0.341,
            }
        }
    )
    assert table.per_second == {
        ("m", "480p"): 1_000_000,
        ("m", "720p"): 48_700,
        ("m", "1080p"): 110_000,
    }
    assert table.with_reference_video == {("m", "720p"): 341_000}


@pytest.mark.parametrize(
    "key", ["720", "720P", "1440p", "720p_with_audio", "with_video", "_with_video", "", "720p "]
)
def test_config_rejects_unknown_keys_naming_model_and_key(key: str):
    with pytest.raises(ValueError, match="my-model") as info:
        price_table_from_config({"my-model": {"480p": 0.1, key: 0.2}})
    assert repr(key) in str(info.value)


@pytest.mark.parametrize(
    "value", [-0.01, "-1", float("nan"), float("inf"), "NaN", "abc", True, None, [0.1]]
)
def test_config_rejects_bad_prices_naming_model_and_key(value: object):
    with pytest.raises(ValueError, match=r"my-model\.720p_with_video"):
        price_table_from_config({"my-model": {"720p_with_video": value}})  # type: ignore[dict-item]


def test_config_rejects_a_model_that_is_not_a_table():
    with pytest.raises(ValueError, match="my-model"):
        price_table_from_config({"my-model": 0.1})  # type: ignore[dict-item]


def test_parsed_tables_are_read_only():
    table = default_price_table()
    with pytest.raises(TypeError):
        table.per_second[(V2, "480p")] = 0  # type: ignore[index]


# Exact money: no float ever touches an amount.


def test_exactness_without_float_drift():
    assert 0.1 * 3 != 0.3 and int(8.2 * MICROS_PER_USD) == 8_199_999  # the float traps avoided
    assert usd_to_micros(8.2) == 8_200_000
    assert usd_to_micros(1.005) == 1_005_000
    assert usd_to_micros(0.0123) * 8 == 98_400
    table = default_price_table()
    assert price_of(request(V10_FAST, "720p", with_video=False, duration=8), table) == 98_400
    assert usd_to_micros(0.1) * 3 == usd_to_micros(0.3) == 300_000
    assert usd_to_micros(0.0487) == 48_700
    assert sum([usd_to_micros(0.0123)] * 8) == 98_400


@pytest.mark.parametrize(
    ("value", "micros"),
    [
        (0, 0),
        (1, 1_000_000),
        (0.000001, 1),
        ("0.0000005", 1),  # half rounds up
        ("0.00000049", 0),
        ("0.0000015", 2),
        ("0.0000025", 3),  # half-up, not banker's rounding
        (Decimal("12.345678"), 12_345_678),
        (" 2.5 ", 2_500_000),
        ("1e-3", 1_000),
        (1e-6, 1),
        (123456789.123456, 123_456_789_123_456),
        (10**15, 10**21),
    ],
)
def test_usd_to_micros(value: float | int | str | Decimal, micros: int):
    assert usd_to_micros(value) == micros
    assert isinstance(usd_to_micros(value), int)


@pytest.mark.parametrize(
    "value",
    [
        -1,
        -0.000001,
        "-0.5",
        float("nan"),
        float("-inf"),
        float("inf"),
        "inf",
        "NaN",
        "sNaN",
        True,
        False,
        "",
        "1,5",
        "$1",
        "1e999999999",
    ],
)
def test_usd_to_micros_rejects(value: object):
    with pytest.raises(ValueError):
        usd_to_micros(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("micros", "plain", "formatted"),
    [
        (0, "0.00", "$0.00"),
        (1, "0.000001", "$0.000001"),
        (10_000, "0.01", "$0.01"),
        (12_300, "0.0123", "$0.0123"),
        (770_000, "0.77", "$0.77"),
        (1_000_000, "1.00", "$1.00"),
        (1_230_000, "1.23", "$1.23"),
        (50_000_000, "50.00", "$50.00"),
        (3_751_000, "3.751", "$3.751"),
        (1_234_567_891, "1234.567891", "$1234.567891"),
        (-2_500_000, "-2.50", "-$2.50"),
        (-1, "-0.000001", "-$0.000001"),
    ],
)
def test_formatting(micros: int, plain: str, formatted: str):
    assert micros_to_usd_str(micros) == plain
    assert format_usd(micros) == formatted
    assert usd_to_micros(plain.lstrip("-")) == abs(micros)  # the plain form round-trips
