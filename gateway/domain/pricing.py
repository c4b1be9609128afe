"""What a video costs: the per-second price table (configuration) and the price of a request.

Prices are integer micro-USD per second of output, keyed by (model id, resolution); some models
charge more per second when the request carries a reference video. The upstream's published
prices (shared/upstream-api.md) are the defaults; settings may replace them. Pure: imports only
the standard library and ``gateway.domain``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from gateway.domain.catalog import RESOLUTIONS, Catalog
from gateway.domain.money import usd_to_micros
from gateway.domain.video_request import VideoRequest

WITH_VIDEO_SUFFIX = "_with_video"

# USD per second of output video, as published. "<resolution>_with_video" is the price when the
# request includes a reference video; the page gives it for "the Seedance 2.0 series".
DEFAULT_PRICES_USD: Mapping[str, Mapping[str, float]] = MappingProxyType(
    {
        "doubao-seedance-2-0-260128": MappingProxyType(
            {"480p": 0.071, "720p": 0.154, "480p_with_video": 0.158, "720p_with_video": 0.341}
        ),
        "doubao-seedance-2-0-fast-260128": MappingProxyType(
            {"480p": 0.055, "720p": 0.113, "480p_with_video": 0.158, "720p_with_video": 0.341}
        ),
        "doubao-seedance-1-5-pro-251215": MappingProxyType(
            {"480p": 0.0225, "720p": 0.0487, "1080p": 0.11}
        ),
        "doubao-seedance-1-0-pro-250528": MappingProxyType(
            {"480p": 0.021, "720p": 0.044, "1080p": 0.102}
        ),
        "doubao-seedance-1-0-pro-fast-251015": MappingProxyType(
            {"480p": 0.0062, "720p": 0.0123, "1080p": 0.0298}
        ),
    }
)


@dataclass(frozen=True)
class PriceTable:
    """Micro-USD per second by (model id, resolution): plain, and with a reference video."""

    per_second: Mapping[tuple[str, str], int]
    with_reference_video: Mapping[tuple[str, str], int] = field(default_factory=dict)


def price_table_from_config(prices: Mapping[str, Mapping[str, float | int | str]]) -> PriceTable:
    """Build a table from ``{model id: {"720p": 0.154, "720p_with_video": 0.341, ...}}``.

    Each key is a resolution (480p, 720p, 1080p) or that resolution plus ``_with_video``. An
    unknown key, or a negative or non-numeric price, raises ``ValueError`` naming model and key.
    """
    per_second: dict[tuple[str, str], int] = {}
    with_video: dict[tuple[str, str], int] = {}
    for model, entries in prices.items():
        if not isinstance(entries, Mapping):
            raise ValueError(f"prices.{model} must be a table of resolution -> USD per second.")
        for key, value in entries.items():
            resolution, is_with_video = _parse_price_key(model, key)
            try:
                micros = usd_to_micros(value)
            except ValueError as exc:
                raise ValueError(f"prices.{model}.{key}: {exc}") from None
            target = with_video if is_with_video else per_second
            target[(model, resolution)] = micros
    return PriceTable(
        per_second=MappingProxyType(per_second), with_reference_video=MappingProxyType(with_video)
    )


def default_price_table() -> PriceTable:
    """The upstream's published prices."""
    return price_table_from_config(DEFAULT_PRICES_USD)


def missing_prices(table: PriceTable, catalog: Catalog) -> list[tuple[str, str]]:
    """Every (model, resolution) the catalog accepts that has no plain per-second price."""
    return [
        (spec.id, resolution)
        for spec in catalog.models.values()
        for resolution in spec.resolutions
        if (spec.id, resolution) not in table.per_second
    ]


def per_second_price(
    request_model: str, resolution: str, has_reference_video: bool, table: PriceTable
) -> int:
    """Micro-USD per second: the reference-video price when the request has a reference video
    and the model has one, else the plain price. ``ValueError`` when no price is known."""
    key = (request_model, resolution)
    if has_reference_video and key in table.with_reference_video:
        return table.with_reference_video[key]
    if key in table.per_second:
        return table.per_second[key]
    raise ValueError(f"No price is configured for model {request_model} at {resolution}.")


def price_of(request: VideoRequest, table: PriceTable, *, duration: int | None = None) -> int:
    """Micro-USD for ``request``: per-second price x ``duration`` (default: the request's)."""
    seconds = request.duration if duration is None else duration
    if seconds < 0:
        raise ValueError(f"A duration must not be negative; got {seconds}.")
    rate = per_second_price(request.model, request.resolution, request.has_reference_video, table)
    return rate * seconds


def _parse_price_key(model: str, key: object) -> tuple[str, bool]:
    """(resolution, is the reference-video price) for a configuration key."""
    text = key if isinstance(key, str) else ""
    is_with_video = text.endswith(WITH_VIDEO_SUFFIX)
    resolution = text.removesuffix(WITH_VIDEO_SUFFIX)
    if resolution not in RESOLUTIONS:
        allowed = ", ".join((*RESOLUTIONS, *(r + WITH_VIDEO_SUFFIX for r in RESOLUTIONS)))
        raise ValueError(f"prices.{model}: unknown key {key!r}; expected one of {allowed}.")
    return resolution, is_with_video
