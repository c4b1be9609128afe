"""The route table and the exception handlers that turn every error into one OpenAI envelope."""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from gateway.errors import (
    GatewayError,
    InvalidRequest,
    NotFound,
    is_unavailable,
)
from gateway.web import (
    admin,
    admin_jobs,
    admin_limits,
    admin_money,
    content,
    models,
    ops,
    videos,
    webhooks,
)
from gateway.web.context import outages_of
from gateway.web.dashboard import dashboard_mount
from gateway.web.middleware import unavailable_response
from gateway.web.rendering import error_response

log = logging.getLogger("gateway.web")

ROUTES: list[BaseRoute] = [
    Route("/v1/models", models.list_models, methods=["GET"]),
    Route("/v1/models/{model:path}", models.retrieve_model, methods=["GET"]),
    Route("/v1/videos", videos.create_video, methods=["POST"]),
    Route("/v1/videos", videos.list_videos, methods=["GET"]),
    Route("/v1/videos/edits", videos.not_supported, methods=["POST"]),
    Route("/v1/videos/extensions", videos.not_supported, methods=["POST"]),
    Route("/v1/videos/characters", videos.not_supported, methods=["POST"]),
    Route("/v1/videos/characters/{character_id}", videos.not_supported, methods=["GET"]),
    Route("/v1/videos/{video_id}", videos.retrieve_video, methods=["GET"]),
    Route("/v1/videos/{video_id}", videos.delete_video, methods=["DELETE"]),
    Route("/v1/videos/{video_id}/content", content.download_content, methods=["GET", "HEAD"]),
    Route("/v1/videos/{video_id}/remix", videos.not_supported, methods=["POST"]),
    Route("/v1/webhook_endpoints", webhooks.create_endpoint, methods=["POST"]),
    Route("/v1/webhook_endpoints", webhooks.list_endpoints, methods=["GET"]),
    Route("/v1/webhook_endpoints/{endpoint_id}", webhooks.retrieve_endpoint, methods=["GET"]),
    Route("/v1/webhook_endpoints/{endpoint_id}", webhooks.update_endpoint, methods=["POST"]),
    Route("/v1/webhook_endpoints/{endpoint_id}", webhooks.delete_endpoint, methods=["DELETE"]),
    Route(
        "/v1/webhook_endpoints/{endpoint_id}/rotate_secret",
        webhooks.rotate_secret,
        methods=["POST"],
    ),
    Route("/v1/webhook_endpoints/{endpoint_id}/test", webhooks.test_endpoint, methods=["POST"]),
    Route("/v1/webhook_event_types", webhooks.list_event_types, methods=["GET"]),
    Route("/admin/teams", admin.create_team, methods=["POST"]),
    Route("/admin/teams", admin.list_teams, methods=["GET"]),
    Route("/admin/keys", admin.create_key, methods=["POST"]),
    Route("/admin/keys", admin.list_keys, methods=["GET"]),
    Route("/admin/keys/{key_id}/revoke", admin.revoke_key, methods=["POST"]),
    Route("/admin/budgets", admin_money.put_budget, methods=["PUT"]),
    Route("/admin/budgets", admin_money.list_budgets, methods=["GET"]),
    Route("/admin/budgets", admin_money.delete_budget, methods=["DELETE"]),
    Route("/admin/usage", admin_money.usage, methods=["GET"]),
    Route("/admin/limits", admin_limits.put_limits, methods=["PUT"]),
    Route("/admin/limits", admin_limits.list_limits, methods=["GET"]),
    Route("/admin/limits", admin_limits.delete_limits, methods=["DELETE"]),
    Route("/admin/audit", admin_money.audit, methods=["GET"]),
    Route("/admin/jobs/unknown", admin_jobs.list_unknown, methods=["GET"]),
    Route("/admin/jobs/{video_id}/resolve", admin_jobs.resolve_job, methods=["POST"]),
    Route("/admin/webhooks", webhooks.admin_create, methods=["POST"]),
    Route("/admin/webhooks", webhooks.admin_list, methods=["GET"]),
    Route("/admin/webhooks/{endpoint_id}", webhooks.admin_retrieve, methods=["GET"]),
    Route("/admin/webhooks/{endpoint_id}", webhooks.admin_update, methods=["POST"]),
    Route("/admin/webhooks/{endpoint_id}", webhooks.admin_delete, methods=["DELETE"]),
    Route(
        "/admin/webhooks/{endpoint_id}/rotate_secret",
        webhooks.admin_rotate_secret,
        methods=["POST"],
    ),
    Route("/admin/webhooks/{endpoint_id}/deliveries", webhooks.admin_deliveries, methods=["GET"]),
    Route(
        "/admin/webhooks/{endpoint_id}/deliveries/{delivery_id}/resend",
        webhooks.admin_resend,
        methods=["POST"],
    ),
    Route("/healthz", ops.healthz, methods=["GET"]),
    Route("/readyz", ops.readyz, methods=["GET"]),
    Route("/metrics", ops.metrics, methods=["GET"]),
    dashboard_mount(),  # last: never in the way of /v1 (docs/dashboard.md)
]


async def handle_gateway_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    return error_response(exc)


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's own 404/405 (unknown route, wrong method) in the OpenAI envelope."""
    assert isinstance(exc, HTTPException)
    error: GatewayError
    if exc.status_code == 404:
        error = NotFound(_unknown_path_message(request.url.path), code="unknown_url")
    elif exc.status_code == 405:
        error = InvalidRequest(
            f"Method {request.method} is not allowed on {request.url.path}.",
            code="method_not_allowed",
        )
        response = error_response(error)
        response.status_code = 405
        return response
    else:
        error = InvalidRequest(str(exc.detail), code="http_error")
        response = error_response(error)
        response.status_code = exc.status_code
        return response
    return error_response(error)


def _unknown_path_message(path: str) -> str:
    """Name the likely mistake: an OpenAI ``base_url`` without ``/v1`` sends ``/videos``."""
    if path.split("/")[1:2] in (["videos"], ["models"]):
        return (
            f"Unknown path {path}: did you mean /v1{path}? the base URL should end in /v1"
            ' (e.g. base_url="http://127.0.0.1:8080/v1").'
        )
    return f"Unknown path {path}."


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    if is_unavailable(exc, outages_of(request.app)):
        return unavailable_response()
    log.error("unhandled error", exc_info=exc)
    return error_response(GatewayError("The gateway hit an internal error."))


EXCEPTION_HANDLERS = {
    GatewayError: handle_gateway_error,
    HTTPException: handle_http_exception,
    Exception: handle_unexpected,
}
