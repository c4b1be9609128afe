"""Webhook endpoint routes in OpenAI's shapes (``/v1/webhook_endpoints``,
``/v1/webhook_event_types``: what ``client.webhooks.*`` of the official SDK calls), scoped to the
calling key's team, and the operator's ``/admin/webhooks`` over every team, with deliveries.

Endpoints carry two fields OpenAI's object lacks (extra fields the SDK keeps): ``status``
(enabled | disabled) and ``disabled_reason``.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.domain.webhooks import EVENT_TYPES
from gateway.errors import InvalidRequest, NotFound
from gateway.store.webhook_records import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from gateway.web.admin import read_json_object, require_admin
from gateway.web.context import authenticate, context
from gateway.web.rendering import JSONResponse


def render_endpoint(endpoint: WebhookEndpoint, secret: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": endpoint.id,
        "object": "webhook_endpoint",
        "created_at": endpoint.created_at,
        "updated_at": endpoint.updated_at,
        "name": endpoint.name,
        "url": endpoint.url,
        "event_types": list(endpoint.event_types),
        "signing_secret_hint": endpoint.secret_hint,
        "status": endpoint.status,
        "disabled_reason": endpoint.disabled_reason,
    }
    if secret is not None:
        out["signing_secret"] = secret  # shown once: on create and on rotation
    return out


def render_endpoint_list(endpoints: list[WebhookEndpoint], has_more: bool) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [render_endpoint(e) for e in endpoints],
        "first_id": endpoints[0].id if endpoints else None,
        "last_id": endpoints[-1].id if endpoints else None,
        "has_more": has_more,
    }


def render_attempt(attempt: WebhookAttempt) -> dict[str, Any]:
    return {
        "attempt": attempt.attempt,
        "started_at": attempt.started_at,
        "duration_seconds": round(attempt.duration_seconds, 4),
        "outcome": attempt.outcome,
        "status_code": attempt.status_code,
        "error": attempt.error,
    }


def render_delivery(
    delivery: WebhookDelivery, attempts: list[WebhookAttempt] | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": delivery.id,
        "object": "webhook_delivery",
        "event_id": delivery.event_id,
        "event_type": delivery.event_type,
        "video_id": delivery.video_id,
        "endpoint_id": delivery.endpoint_id,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "created_at": delivery.created_at,
        "next_attempt_at": delivery.next_attempt_at,
        "delivered_at": delivery.delivered_at,
        "last_status_code": delivery.last_status_code,
        "last_error": delivery.last_error,
    }
    if attempts is not None:
        out["attempt_log"] = [render_attempt(a) for a in attempts]
    return out


def _limit(request: Request, default: int = 20) -> int:
    raw = request.query_params.get("limit")
    try:
        return int(raw) if raw is not None else default
    except ValueError:
        raise InvalidRequest("'limit' must be an integer.", param="limit") from None


# -- /v1: the calling key's team --------------------------------------------------------------


async def create_endpoint(request: Request) -> Response:
    principal = await authenticate(request)
    data = await read_json_object(request)
    endpoint, secret = await context(request).webhooks.create(
        principal.team_id,
        name=data.get("name"),
        url=data.get("url"),
        event_types=data.get("event_types"),
    )
    return JSONResponse(render_endpoint(endpoint, secret))


async def list_endpoints(request: Request) -> Response:
    principal = await authenticate(request)
    endpoints, more = await context(request).webhooks.list_endpoints(
        principal.team_id, after=request.query_params.get("after"), limit=_limit(request)
    )
    return JSONResponse(render_endpoint_list(endpoints, more))


async def retrieve_endpoint(request: Request) -> Response:
    principal = await authenticate(request)
    endpoint = await context(request).webhooks.get(
        request.path_params["endpoint_id"], principal.team_id
    )
    return JSONResponse(render_endpoint(endpoint))


async def update_endpoint(request: Request) -> Response:
    principal = await authenticate(request)
    data = await read_json_object(request)
    endpoint = await context(request).webhooks.update(
        request.path_params["endpoint_id"],
        principal.team_id,
        name=data.get("name"),
        url=data.get("url"),
        event_types=data.get("event_types"),
        status=data.get("status"),
        reason="team",
    )
    return JSONResponse(render_endpoint(endpoint))


async def delete_endpoint(request: Request) -> Response:
    principal = await authenticate(request)
    endpoint_id = request.path_params["endpoint_id"]
    await context(request).webhooks.delete(endpoint_id, principal.team_id)
    return JSONResponse({"id": endpoint_id, "object": "webhook_endpoint.deleted", "deleted": True})


async def rotate_secret(request: Request) -> Response:
    principal = await authenticate(request)
    data = await read_json_object(request)
    endpoint, secret = await context(request).webhooks.rotate_secret(
        request.path_params["endpoint_id"],
        principal.team_id,
        keep_old=bool(data.get("keep_old_secret_active_for_24_hours", False)),
    )
    return JSONResponse(render_endpoint(endpoint, secret))


async def test_endpoint(request: Request) -> Response:
    principal = await authenticate(request)
    data = await read_json_object(request)
    result = await context(request).webhooks.test(
        request.path_params["endpoint_id"], principal.team_id, data.get("event_type")
    )
    return JSONResponse(
        {
            "object": "webhook_endpoint.test",
            "webhook_endpoint_id": result.endpoint_id,
            "event_type": result.event_type,
            "status_code": result.status_code,
            "success": True,
        }
    )


async def list_event_types(request: Request) -> Response:
    await authenticate(request)
    return JSONResponse({"object": "list", "data": list(EVENT_TYPES)})


# -- /admin/webhooks: every team --------------------------------------------------------------


async def _team_id(request: Request, name: object) -> str:
    if not isinstance(name, str) or not name:
        raise InvalidRequest("'team' must name a team.", param="team")
    team = await context(request).store.team_by_name(name)
    if team is None:
        raise NotFound(f"No team named {name!r}.", param="team")
    return team.id


async def admin_create(request: Request) -> Response:
    require_admin(request)
    data = await read_json_object(request)
    team_id = await _team_id(request, data.get("team"))
    endpoint, secret = await context(request).webhooks.create(
        team_id,
        name=data.get("name") or "default",
        url=data.get("url"),
        event_types=data.get("event_types", list(EVENT_TYPES)),
    )
    return JSONResponse(render_endpoint(endpoint, secret), status_code=201)


async def admin_list(request: Request) -> Response:
    require_admin(request)
    team = request.query_params.get("team")
    team_id = await _team_id(request, team) if team else None
    endpoints, more = await context(request).webhooks.list_endpoints(
        team_id, after=request.query_params.get("after"), limit=_limit(request, 100)
    )
    listed = render_endpoint_list(endpoints, more)
    for item, endpoint in zip(listed["data"], endpoints, strict=True):
        item["team_id"] = endpoint.team_id
        item["consecutive_failures"] = endpoint.consecutive_failures
    return JSONResponse(listed)


async def admin_retrieve(request: Request) -> Response:
    require_admin(request)
    endpoint = await context(request).webhooks.get(request.path_params["endpoint_id"], None)
    return JSONResponse(
        {
            **render_endpoint(endpoint),
            "team_id": endpoint.team_id,
            "consecutive_failures": endpoint.consecutive_failures,
        }
    )


async def admin_update(request: Request) -> Response:
    require_admin(request)
    data = await read_json_object(request)
    endpoint = await context(request).webhooks.update(
        request.path_params["endpoint_id"],
        None,
        name=data.get("name"),
        url=data.get("url"),
        event_types=data.get("event_types"),
        status=data.get("status"),
    )
    return JSONResponse(render_endpoint(endpoint))


async def admin_delete(request: Request) -> Response:
    require_admin(request)
    endpoint_id = request.path_params["endpoint_id"]
    await context(request).webhooks.delete(endpoint_id, None)
    return JSONResponse({"id": endpoint_id, "object": "webhook_endpoint.deleted", "deleted": True})


async def admin_rotate_secret(request: Request) -> Response:
    require_admin(request)
    data = await read_json_object(request)
    endpoint, secret = await context(request).webhooks.rotate_secret(
        request.path_params["endpoint_id"],
        None,
        keep_old=bool(data.get("keep_old_secret_active_for_24_hours", False)),
    )
    return JSONResponse(render_endpoint(endpoint, secret))


async def admin_deliveries(request: Request) -> Response:
    require_admin(request)
    found = await context(request).webhooks.deliveries(
        request.path_params["endpoint_id"], limit=_limit(request, 100)
    )
    return JSONResponse(
        {"object": "list", "data": [render_delivery(d, attempts) for d, attempts in found]}
    )


async def admin_resend(request: Request) -> Response:
    require_admin(request)
    delivery = await context(request).webhooks.resend(
        request.path_params["endpoint_id"], request.path_params["delivery_id"]
    )
    return JSONResponse(render_delivery(delivery))
