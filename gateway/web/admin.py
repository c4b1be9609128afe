"""The ``/admin/`` API: teams and keys, behind the admin token from ``GATEWAY_ADMIN_TOKEN``."""

from __future__ import annotations

import hmac
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gateway.errors import AdminAuthenticationFailed, InvalidRequest
from gateway.store.base import ApiKey, Team
from gateway.web.body import read_limited
from gateway.web.context import context
from gateway.web.rendering import JSONResponse

ADMIN_BODY_LIMIT = 64 * 1024


def require_admin(request: Request) -> None:
    expected = context(request).settings.admin_token
    if not expected:
        raise AdminAuthenticationFailed(
            "The admin API is disabled: set GATEWAY_ADMIN_TOKEN to enable it."
        )
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        token.strip().encode(), str(expected).encode()
    ):
        raise AdminAuthenticationFailed("Missing or incorrect admin token.")


async def read_json_object(request: Request) -> dict[str, Any]:
    raw = await read_limited(request, ADMIN_BODY_LIMIT)
    try:
        data = orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest("The request body is not valid JSON.", code="invalid_json") from exc
    if not isinstance(data, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_type")
    return data


def _string_field(data: dict[str, Any], name: str, *, required: bool = True) -> str:
    value = data.get(name, None if required else "")
    if not isinstance(value, str) or (required and not value.strip()):
        raise InvalidRequest(f"'{name}' must be a non-empty string.", param=name)
    return value


def render_team(team: Team) -> dict[str, Any]:
    return {"id": team.id, "object": "team", "name": team.name, "created_at": team.created_at}


def render_key(key: ApiKey) -> dict[str, Any]:
    return {
        "id": key.id,
        "object": "api_key",
        "team_id": key.team_id,
        "name": key.name,
        "prefix": key.prefix,
        "created_at": key.created_at,
        "revoked_at": key.revoked_at,
    }


async def create_team(request: Request) -> Response:
    require_admin(request)
    data = await read_json_object(request)
    team = await context(request).keys.create_team(_string_field(data, "name"), actor="admin-api")
    return JSONResponse(render_team(team), status_code=201)


async def list_teams(request: Request) -> Response:
    require_admin(request)
    teams = await context(request).store.list_teams()
    return JSONResponse({"object": "list", "data": [render_team(t) for t in teams]})


async def create_key(request: Request) -> Response:
    require_admin(request)
    data = await read_json_object(request)
    key, plaintext = await context(request).keys.create_key(
        _string_field(data, "team"), _string_field(data, "name", required=False), actor="admin-api"
    )
    return JSONResponse({**render_key(key), "key": plaintext}, status_code=201)


async def list_keys(request: Request) -> Response:
    require_admin(request)
    team_name = request.query_params.get("team")
    team_id = None
    if team_name:
        team = await context(request).store.team_by_name(team_name)
        if team is None:
            return JSONResponse({"object": "list", "data": []})
        team_id = team.id
    keys = await context(request).store.list_keys(team_id)
    return JSONResponse({"object": "list", "data": [render_key(k) for k in keys]})


async def revoke_key(request: Request) -> Response:
    require_admin(request)
    key_id = request.path_params["key_id"]
    await context(request).keys.revoke_key(key_id, actor="admin-api")
    return JSONResponse({"id": key_id, "object": "api_key", "revoked": True})
