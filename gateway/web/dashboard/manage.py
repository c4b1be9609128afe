"""Teams, keys and budgets in the dashboard: the same use cases as the ``/admin/`` API and the
CLI (``KeyService``, ``BudgetService``), so validation and the audit log line are identical.
A new key's plaintext is shown once, on the page that answers its creation, and never again."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from gateway.errors import GatewayError
from gateway.services.budgets import BudgetService
from gateway.web.context import context
from gateway.web.dashboard.auth import PREFIX, admin_only, read_form, session_of, signed_in
from gateway.web.dashboard.render import render
from gateway.web.money_json import render_budget

ACTOR = "dashboard"


def budgets(request: Request) -> BudgetService:
    ctx = context(request)
    return BudgetService(ctx.store, clock=ctx.clock)


@signed_in
async def teams(request: Request) -> Response:
    return await _teams_page(request)


@admin_only
async def create_team(request: Request) -> Response:
    form = await read_form(request)
    try:
        team = await context(request).keys.create_team(form.get("name", ""), actor=ACTOR)
    except GatewayError as exc:
        return await _teams_page(request, error=exc.message, status=exc.status)
    return await _teams_page(request, notice=f"Created team {team.name}.", status=201)


@admin_only
async def create_key(request: Request) -> Response:
    form = await read_form(request)
    try:
        key, plaintext = await context(request).keys.create_key(
            form.get("team", ""), form.get("name", ""), actor=ACTOR
        )
    except GatewayError as exc:
        return await _teams_page(request, error=exc.message, status=exc.status)
    return await _teams_page(
        request, notice=f"Created key {key.prefix}…", new_key=plaintext, status=201
    )


@admin_only
async def revoke_key(request: Request) -> Response:
    try:
        await context(request).keys.revoke_key(request.path_params["key_id"], actor=ACTOR)
    except GatewayError as exc:
        return await _teams_page(request, error=exc.message, status=exc.status)
    return RedirectResponse(f"{PREFIX}/teams?revoked=1", 303)


@admin_only
async def set_budget(request: Request) -> Response:
    form = await read_form(request)
    try:
        status = await budgets(request).set(_budget_fields(form), actor=ACTOR)
    except GatewayError as exc:
        return await _teams_page(request, error=exc.message, status=exc.status)
    shown = render_budget(status)
    return await _teams_page(
        request,
        notice=f"Set the {status.window} budget of {status.target.label} to ${shown['limit_usd']}.",
    )


@admin_only
async def clear_budget(request: Request) -> Response:
    form = await read_form(request)
    try:
        cleared = await budgets(request).clear(_budget_fields(form), actor=ACTOR)
    except GatewayError as exc:
        return await _teams_page(request, error=exc.message, status=exc.status)
    if not cleared.cleared:
        return await _teams_page(
            request, error=f"No {cleared.window} budget for {cleared.target.label}.", status=404
        )
    return await _teams_page(
        request, notice=f"Cleared the {cleared.window} budget of {cleared.target.label}."
    )


def _budget_fields(form: dict[str, str]) -> dict[str, Any]:
    """The form's owner field ("org", "team:NAME" or "key:ID") as the API's fields."""
    owner = form.get("owner", "")
    fields: dict[str, Any] = {"window": form.get("window") or None}
    if "limit_usd" in form:
        fields["limit_usd"] = form["limit_usd"].strip() or None
    kind, _, who = owner.partition(":")
    fields["scope"] = kind or None
    if kind == "team":
        fields["team"] = who
    elif kind == "key":
        fields["key_id"] = who
    return fields


async def _teams_page(
    request: Request,
    *,
    error: str | None = None,
    notice: str | None = None,
    new_key: str | None = None,
    status: int = 200,
) -> Response:
    ctx = context(request)
    session = session_of(request)
    teams = await ctx.store.list_teams()
    keys = await ctx.store.list_keys()
    if not session.is_admin:
        teams = [t for t in teams if t.id == session.team_id]
        keys = [k for k in keys if k.team_id == session.team_id]
    statuses = await budgets(request).statuses(await ctx.store.list_limits(), ctx.clock())
    if not session.is_admin:
        allowed = {session.team_id, *(k.id for k in keys)}
        statuses = [s for s in statuses if s.target.ref.id in allowed]
    if request.query_params.get("revoked") and notice is None:
        notice = "Key revoked: its next request is refused."
    return render(
        request,
        "teams.html",
        {
            "teams": teams,
            "keys": keys,
            "team_names": {t.id: t.name for t in teams},
            "budgets": statuses,
            "error": error,
            "notice": notice,
            "new_key": new_key,
            "windows": ("total", "day", "month"),
        },
        status=status,
    )
