"""The money side of the ``/admin/`` API: budget limits, usage reports and the ledger audit.

Thin routes: the use cases are ``services.budgets`` and ``services.usage`` (shared with the
``gateway budgets|usage|audit`` commands and the dashboard); the JSON shape is ``money_json``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.errors import InvalidRequest, NotFound
from gateway.services.budgets import TARGET_FIELDS, BudgetService
from gateway.services.usage import audit_report, usage_report
from gateway.web.admin import read_json_object, require_admin
from gateway.web.context import context
from gateway.web.money_json import (
    render_audit,
    render_budget,
    render_budgets,
    render_cleared,
    render_usage,
)
from gateway.web.rendering import JSONResponse

ACTOR = "admin-api"


def budgets(request: Request) -> BudgetService:
    ctx = context(request)
    return BudgetService(ctx.store, clock=ctx.clock)


async def put_budget(request: Request) -> Response:
    require_admin(request)
    data = await read_json_object(request)
    _reject_unknown(data, (*TARGET_FIELDS, "window", "limit_usd"))
    status = await budgets(request).set(data, actor=ACTOR)
    return JSONResponse(render_budget(status))


async def list_budgets(request: Request) -> Response:
    require_admin(request)
    params = _query(request, TARGET_FIELDS)
    return JSONResponse(render_budgets(await budgets(request).show(params)))


async def delete_budget(request: Request) -> Response:
    require_admin(request)
    params = _query(request, (*TARGET_FIELDS, "window"))
    cleared = await budgets(request).clear(params, actor=ACTOR)
    if not cleared.cleared:
        target = cleared.target
        raise NotFound(f"No {cleared.window} budget for {target.ref.scope} {target.who}.")
    return JSONResponse(render_cleared(cleared))


async def usage(request: Request) -> Response:
    require_admin(request)
    params = _query(request, ("team", "since", "by"))
    report = await usage_report(
        context(request).store, params.get("team"), params.get("since"), params.get("by")
    )
    return JSONResponse(render_usage(report))


async def audit(request: Request) -> Response:
    require_admin(request)
    params = _query(request, ("team", "month"))
    report = await audit_report(context(request).store, params.get("team"), params.get("month"))
    return JSONResponse(render_audit(report))


# -- small steps --------------------------------------------------------------------------


def _query(request: Request, allowed: Sequence[str]) -> dict[str, str]:
    """The query parameters, each at most once and all of them known (a misspelt filter must
    not silently widen what is shown or deleted)."""
    items = request.query_params.multi_items()
    params: dict[str, str] = {}
    for name, value in items:
        if name in params:
            raise InvalidRequest(f"{name} is given twice.", param=name, code="duplicate_parameter")
        params[name] = value
    _reject_unknown(params, allowed)
    return params


def _reject_unknown(data: Mapping[str, Any], allowed: Sequence[str]) -> None:
    for name in data:
        if name not in allowed:
            raise InvalidRequest(
                f"Unknown parameter {name!r}; expected {', '.join(allowed) or 'none'}.",
                param=name,
                code="unknown_parameter",
            )
