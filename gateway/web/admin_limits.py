"""The ``/admin/limits`` routes: a team's or key's concurrency and rate limits (the use cases
are ``gateway.services.limits``, shared with the ``gateway limits`` command)."""

from __future__ import annotations

from collections.abc import Iterable

from starlette.requests import Request
from starlette.responses import Response

from gateway.domain.traffic import LIMIT_NAMES
from gateway.errors import InvalidRequest
from gateway.services.limits import clear_limits, limits_report, set_limits
from gateway.web.admin import read_json_object, require_admin
from gateway.web.context import context
from gateway.web.rendering import JSONResponse

_OWNER_PARAMS = ("team", "key_id")


async def put_limits(request: Request) -> Response:
    require_admin(request)
    data = await read_json_object(request)
    _reject_unknown(data, (*_OWNER_PARAMS, *LIMIT_NAMES))
    ctx = context(request)
    return JSONResponse(await set_limits(ctx.store, ctx.creator.traffic, data))


async def list_limits(request: Request) -> Response:
    require_admin(request)
    ctx = context(request)
    params = _query(request, _OWNER_PARAMS)
    return JSONResponse(await limits_report(ctx.store, ctx.creator.traffic, params))


async def delete_limits(request: Request) -> Response:
    require_admin(request)
    params = _query(request, _OWNER_PARAMS)
    return JSONResponse(await clear_limits(context(request).store, params))


def _query(request: Request, allowed: Iterable[str]) -> dict[str, str]:
    """The query parameters, each once and all known (a misspelt filter must not widen what is
    shown or deleted)."""
    params: dict[str, str] = {}
    for name, value in request.query_params.multi_items():
        if name in params:
            raise InvalidRequest(f"{name} is given twice.", param=name, code="duplicate_parameter")
        params[name] = value
    _reject_unknown(params, allowed)
    return params


def _reject_unknown(data: Iterable[str], allowed: Iterable[str]) -> None:
    known = tuple(allowed)
    for name in data:
        if name not in known:
            raise InvalidRequest(
                f"Unknown parameter {name!r}; expected {', '.join(known)}.",
                param=name,
                code="unknown_parameter",
            )
