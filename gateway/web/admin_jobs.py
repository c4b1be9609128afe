"""The ``/admin/jobs`` API: an operator lists and settles videos whose submit outcome is unknown."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.domain.money import micros_to_usd_str
from gateway.errors import InvalidRequest
from gateway.services.chain_outcomes import unknown_segment_number
from gateway.services.events import JobEvents
from gateway.services.outcomes import OutcomeService
from gateway.store.base import Job
from gateway.web.admin import read_json_object, require_admin
from gateway.web.context import context
from gateway.web.rendering import JSONResponse

FIELDS = ("decision", "reason", "actor", "upstream_id")


async def list_unknown(request: Request) -> Response:
    """``GET /admin/jobs/unknown``: videos whose submit outcome is unknown, oldest first."""
    require_admin(request)
    jobs = await context(request).store.unknown_outcomes(1000)
    return JSONResponse({"object": "list", "data": [render_resolution(job) for job in jobs]})


async def resolve_job(request: Request) -> Response:
    """``POST /admin/jobs/{video_id}/resolve``: settle an unknown outcome (``decision``:
    charge | refund, or ``upstream_id`` as evidence), with a ``reason`` and an ``actor``."""
    require_admin(request)
    data = await read_json_object(request)
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise InvalidRequest(f"Unknown field {unknown[0]!r}.", param=unknown[0])
    decision = data.get("decision")
    if decision not in (None, "charge", "refund"):
        raise InvalidRequest("decision must be 'charge' or 'refund'.", param="decision")
    upstream_id = data.get("upstream_id")
    if upstream_id is not None and (not isinstance(upstream_id, str) or not upstream_id.strip()):
        raise InvalidRequest("upstream_id must be a non-empty string.", param="upstream_id")
    reason, actor = data.get("reason"), data.get("actor", "admin-api")
    if not isinstance(reason, str):
        raise InvalidRequest("'reason' (why this is decided) is required.", param="reason")
    if not isinstance(actor, str) or not actor.strip() or len(actor) > 100:
        raise InvalidRequest(
            "actor must be a non-empty string of at most 100 characters.", param="actor"
        )
    ctx = context(request)
    job = await OutcomeService(ctx.store, events=JobEvents(ctx.metrics)).resolve(
        request.path_params["video_id"],
        decision=decision,
        actor=f"admin-api:{actor.strip()}" if actor != "admin-api" else actor,
        reason=reason,
        upstream_id=upstream_id,
    )
    return JSONResponse(render_resolution(job))


def render_resolution(job: Job) -> dict[str, Any]:
    """What a resolution left: the job's internal status and where its money stands."""
    return {
        "object": "video.resolution",
        "id": job.id,
        "status": job.status,
        "money_state": job.money_state,
        "charged_usd": micros_to_usd_str(job.charged_micros or 0),
        "charged_micros": job.charged_micros or 0,
        "upstream_id": job.upstream_id,
        "team_id": job.team_id,
        "created_at": job.created_at,
        "reserved_micros": (
            job.cost_micros - job.settled_micros if job.money_state == "reserved" else 0
        ),
        "message": job.error_message,
        # A chained video: the number of the segment whose outcome is unknown (else null).
        "segment": unknown_segment_number(job),
    }
