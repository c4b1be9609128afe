"""Settling an unknown outcome from the dashboard's Jobs page: charge or refund, with a reason.

The same use case as ``gateway jobs resolve`` and ``POST /admin/jobs/{id}/resolve``
(``services.outcomes.OutcomeService``): the ledger rows name the dashboard as the actor."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from gateway.errors import GatewayError
from gateway.services.events import JobEvents
from gateway.services.outcomes import Decision, OutcomeService
from gateway.web.context import context
from gateway.web.dashboard.auth import PREFIX, admin_only, read_form
from gateway.web.dashboard.pages import jobs_page

ACTOR = "dashboard"


@admin_only
async def resolve(request: Request) -> Response:
    form = await read_form(request)
    video_id = request.path_params["video_id"]
    if form.get("decision") not in ("charge", "refund"):
        return await jobs_page(request, error="Choose charge or refund.", status=400)
    decision: Decision = "charge" if form["decision"] == "charge" else "refund"
    ctx = context(request)
    try:
        await OutcomeService(ctx.store, clock=ctx.clock, events=JobEvents(ctx.metrics)).resolve(
            video_id, decision=decision, actor=ACTOR, reason=form.get("reason", "")
        )
    except GatewayError as exc:
        return await jobs_page(request, error=exc.message, status=exc.status)
    word = "charged" if decision == "charge" else "refunded"
    return RedirectResponse(f"{PREFIX}/jobs?{word}={video_id}", 303)
