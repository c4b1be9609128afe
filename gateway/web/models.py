"""``GET /v1/models`` and ``GET /v1/models/{id}``: every model name the gateway accepts (ids and
configured aliases) in OpenAI's Model shape, plus what a Seedance caller needs to know.

OpenAI's fields (``id``, ``object``, ``created``, ``owned_by``) come first so clients and tools
that probe ``/v1/models`` parse it; the extras say which resolutions, ratios and durations the
model takes, the longest chained video, which reference media it accepts, and its configured
price per second by resolution (USD as decimal strings, exact like ``cost_usd``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.domain.catalog import DEFAULT_DURATION, RATIOS, Catalog, ModelSpec
from gateway.domain.money import micros_to_usd_str
from gateway.domain.pricing import PriceTable
from gateway.errors import NotFound
from gateway.web.context import authenticate, context
from gateway.web.rendering import JSONResponse

OWNED_BY = "bytedance-seedance"


async def list_models(request: Request) -> Response:
    await authenticate(request)
    ctx = context(request)
    data = [
        render_model(name, spec, ctx.catalog, ctx.creator.prices, _chained(request))
        for name in ctx.catalog.names()
        if (spec := ctx.catalog.resolve(name)) is not None
    ]
    return JSONResponse({"object": "list", "data": data})


async def retrieve_model(request: Request) -> Response:
    await authenticate(request)
    ctx = context(request)
    name = request.path_params["model"]
    spec = ctx.catalog.resolve(name)
    if spec is None:
        raise NotFound(
            f"The model {name!r} does not exist; GET /v1/models lists every model.",
            param="model",
            code="model_not_found",
        )
    return JSONResponse(
        render_model(name, spec, ctx.catalog, ctx.creator.prices, _chained(request))
    )


def render_model(
    name: str, spec: ModelSpec, catalog: Catalog, prices: PriceTable, max_chained_seconds: int
) -> dict[str, Any]:
    return {
        "id": name,
        "object": "model",
        "created": _release_time(spec.id),
        "owned_by": OWNED_BY,
        "alias_of": spec.id if name != spec.id else None,
        "resolutions": list(spec.resolutions),
        "ratios": list(RATIOS),
        "min_duration_seconds": spec.min_duration,
        "max_duration_seconds": spec.max_duration,
        "default_duration_seconds": DEFAULT_DURATION,
        "max_chained_seconds": max_chained_seconds,
        "default_watermark": spec.default_watermark,
        "supports": {
            "first_frame": True,
            "last_frame": True,
            "return_last_frame": True,
            "reference_image": spec.supports_reference_image,
            "reference_video": True,
            "reference_audio": True,
            "generate_audio": True,
            "seed": True,
        },
        "price_usd_per_second": _prices(spec, prices.per_second),
        "price_usd_per_second_with_reference_video": _prices(spec, prices.with_reference_video),
    }


def _prices(spec: ModelSpec, table: Any) -> dict[str, str]:
    return {
        resolution: micros_to_usd_str(table[(spec.id, resolution)])
        for resolution in spec.resolutions
        if (spec.id, resolution) in table
    }


def _release_time(model_id: str) -> int:
    """The Unix time of the release date in a Seedance id (``...-260128``: 2026-01-28); 0 when
    the id carries none."""
    suffix = model_id.rsplit("-", 1)[-1]
    try:
        day = datetime.strptime(suffix, "%y%m%d").replace(tzinfo=UTC)
    except ValueError:
        return 0
    return int(day.timestamp())


def _chained(request: Request) -> int:
    return context(request).settings.requests.max_chained_seconds
