"""The money side of the ``/admin/`` API: budget limits, usage reports and the ledger audit.

The reports are plain dicts built from the ``Store`` protocol, shared with the ``gateway
budgets|usage|audit`` commands so their ``--json`` output is exactly what the API answers.
Amounts are shown twice: ``*_usd`` strings (``micros_to_usd_str``) and ``*_micros`` integers.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.domain.budgets import (
    ORG_ID,
    SCOPES,
    WINDOWS,
    BudgetLine,
    Scope,
    ScopeRef,
    Window,
    period_of,
    window_end,
)
from gateway.domain.money import micros_to_usd_str, usd_to_micros
from gateway.errors import InvalidRequest, NotFound
from gateway.store.base import BudgetLimit, Store, UsageRow
from gateway.web.admin import read_json_object, require_admin
from gateway.web.context import context
from gateway.web.rendering import JSONResponse

USAGE_GROUPS = ("model", "key", "day")
MAX_LIMIT_MICROS = 10**15  # one billion USD: far above any sane cap, far below SQLite's int64
_TARGET_FIELDS = ("scope", "team", "key_id")
_WHO_FIELDS: Mapping[str, str] = {"team": "team", "key": "key_id"}
_LISTING_ORDER: tuple[Scope, ...] = ("org", "team", "key")


@dataclass(frozen=True, slots=True)
class Target:
    """A budget's owner, resolved: the scope and id limits are stored under, and a display name
    (the team's name, the key's name or prefix; None for the organization)."""

    ref: ScopeRef
    name: str | None

    @property
    def who(self) -> str:
        """How people name it on the command line: team name, key id, or "org"."""
        return self.name if self.ref.scope == "team" and self.name else self.ref.id


# -- parsing (shared by the API and the CLI; every error names its parameter) ----------------


def parse_scope(value: object) -> Scope:
    if value is None:
        raise _missing("scope")
    if not isinstance(value, str):
        raise _wrong_type("scope", "a string")
    for scope in SCOPES:
        if value == scope:
            return scope
    raise InvalidRequest(f"scope must be one of {', '.join(SCOPES)}; got {value!r}.", param="scope")


def parse_window(value: object) -> Window:
    if value is None:
        raise _missing("window")
    if not isinstance(value, str):
        raise _wrong_type("window", "a string")
    for window in WINDOWS:
        if value == window:
            return window
    raise InvalidRequest(
        f"window must be one of {', '.join(WINDOWS)}; got {value!r}.", param="window"
    )


def parse_limit_usd(value: object, param: str = "limit_usd") -> int:
    """A limit in micro-USD from a JSON number or a decimal string (never negative)."""
    if value is None:
        raise _missing(param)
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _wrong_type(param, "a number or a decimal string")
    try:
        micros = usd_to_micros(value)
    except ValueError as exc:
        raise InvalidRequest(f"{param}: {exc}", param=param) from exc
    if micros > MAX_LIMIT_MICROS:
        raise InvalidRequest(
            f"{param} must be at most {micros_to_usd_str(MAX_LIMIT_MICROS)} USD.", param=param
        )
    return micros


def parse_since(value: str | None) -> float:
    """A UTC date ``YYYY-MM-DD`` as the Unix time of its midnight; None: the beginning."""
    if value is None:
        return 0.0
    try:
        day = datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise InvalidRequest(
            f"since must be a UTC date YYYY-MM-DD; got {value!r}.", param="since"
        ) from None
    return day.timestamp()


def parse_usage_group(value: str | None) -> str:
    if value is None:
        return "model"
    if value not in USAGE_GROUPS:
        raise InvalidRequest(
            f"by must be one of {', '.join(USAGE_GROUPS)}; got {value!r}.", param="by"
        )
    return value


async def resolve_target(store: Store, fields: Mapping[str, Any]) -> Target:
    """The owner named by ``scope`` and, for team and key scopes, ``team`` or ``key_id``
    (absent when None). Unknown teams and keys are ``NotFound`` naming the parameter."""
    scope = parse_scope(fields.get("scope"))
    for other_scope, other in _WHO_FIELDS.items():
        if other_scope != scope and fields.get(other) is not None:
            raise InvalidRequest(
                f"{other} does not apply to {scope} budgets.",
                param=other,
                code="conflicting_parameters",
            )
    if scope == "org":
        return Target(ScopeRef("org", ORG_ID), None)
    param = _WHO_FIELDS[scope]
    value = fields.get(param)
    if value is None:
        raise _missing(param, f"{scope} budgets need {param}.")
    if not isinstance(value, str):
        raise _wrong_type(param, "a string")
    if not value.strip():
        raise InvalidRequest(f"{param} must not be empty.", param=param)
    if scope == "team":
        team = await store.team_by_name(value)
        if team is None:
            raise NotFound(f"No team named {value!r}.", param="team")
        return Target(ScopeRef("team", team.id), team.name)
    key = next((k for k in await store.list_keys() if k.id == value), None)
    if key is None:
        raise NotFound(f"No key with id {value!r}.", param="key_id")
    return Target(ScopeRef("key", key.id), key.name or key.prefix)


async def limits_matching(store: Store, fields: Mapping[str, Any]) -> list[BudgetLimit]:
    """The limits a ``show`` asks for: all, one scope's, or one owner's (scope inferred from
    ``team``/``key_id`` when not given)."""
    scope, team, key_id = (fields.get(name) for name in _TARGET_FIELDS)
    if team is not None and key_id is not None:
        raise InvalidRequest(
            "Give team or key_id, not both.", param="key_id", code="conflicting_parameters"
        )
    if scope is None and team is None and key_id is None:
        return await store.list_limits()
    if scope is None:
        scope = "team" if team is not None else "key"
    if scope != "org" and team is None and key_id is None:
        return await store.list_limits(parse_scope(scope))
    target = await resolve_target(store, {"scope": scope, "team": team, "key_id": key_id})
    return await store.list_limits(target.ref.scope, target.ref.id)


# -- reports ------------------------------------------------------------------------------


async def budget_report(store: Store, limits: Sequence[BudgetLimit], now: float) -> dict[str, Any]:
    """Each limit with what is spent, reserved and remaining in the period current at ``now``;
    broadest scope first (org, team, key), then by owner, then window (total, day, month)."""
    refs = tuple(dict.fromkeys(ScopeRef(limit.scope, limit.scope_id) for limit in limits))
    lines = {(line.scope, line.window): line for line in await store.budget_lines(refs, now)}
    names = await _owner_names(store, refs)
    data = []
    for limit in limits:
        ref = ScopeRef(limit.scope, limit.scope_id)
        current = lines.get((ref, limit.window))
        line = BudgetLine(
            ref,
            limit.window,
            limit.limit,
            current.spent if current else 0,
            current.reserved if current else 0,
        )
        data.append(render_budget(Target(ref, names.get(ref)), line, now))
    data.sort(
        key=lambda item: (
            _LISTING_ORDER.index(item["scope"]),
            item["name"] or "",
            item["scope_id"],
            WINDOWS.index(item["window"]),
        )
    )
    return {"object": "list", "data": data}


def render_budget(target: Target, line: BudgetLine, now: float) -> dict[str, Any]:
    ends = window_end(line.window, now)
    return {
        "object": "budget",
        "scope": target.ref.scope,
        "scope_id": target.ref.id,
        "name": target.name,
        "window": line.window,
        "period": period_of(line.window, now),
        "resets_at": None if ends is None else int(ends),
        **_money("limit", line.limit or 0),
        **_money("spent", line.spent),
        **_money("reserved", line.reserved),
        **_money("remaining", line.remaining or 0),
    }


async def usage_report(
    store: Store, team_name: str | None, since: str | None, by: str | None
) -> dict[str, Any]:
    """A team's money and videos since a UTC date, grouped by model, key or day, with totals."""
    if team_name is None:
        raise _missing("team")
    team = await store.team_by_name(team_name)
    if team is None:
        raise NotFound(f"No team named {team_name!r}.", param="team")
    group = parse_usage_group(by)
    rows = await store.usage(team.id, since=parse_since(since), by=group)
    totals = UsageRow(
        group="total",
        spent=sum(r.spent for r in rows),
        reserved=sum(r.reserved for r in rows),
        refunded=sum(r.refunded for r in rows),
        videos=sum(r.videos for r in rows),
        seconds=sum(r.seconds for r in rows),
        saved=sum(r.saved for r in rows),
        videos_saved=sum(r.videos_saved for r in rows),
    )
    rendered_totals = render_usage_row(totals)
    del rendered_totals["group"]
    return {
        "object": "list",
        "team": team.name,
        "team_id": team.id,
        "since": since,
        "by": group,
        "data": [render_usage_row(row) for row in rows],
        "totals": rendered_totals,
    }


def render_usage_row(row: UsageRow) -> dict[str, Any]:
    return {
        "group": row.group,
        **_money("spent", row.spent),
        **_money("reserved", row.reserved),
        **_money("refunded", row.refunded),
        "videos": row.videos,
        "seconds": row.seconds,
        **_money("saved", row.saved),
        "videos_saved": row.videos_saved,
    }


async def audit_report(store: Store) -> dict[str, Any]:
    problems = await store.audit()
    return {"clean": not problems, "problems": problems}


# -- routes -------------------------------------------------------------------------------


async def put_budget(request: Request) -> Response:
    require_admin(request)
    data = await read_json_object(request)
    _reject_unknown(data, (*_TARGET_FIELDS, "window", "limit_usd"))
    store = context(request).store
    target = await resolve_target(store, data)
    window = parse_window(data.get("window"))
    micros = parse_limit_usd(data.get("limit_usd"))
    limit = BudgetLimit(target.ref.scope, target.ref.id, window, micros)
    now = time.time()
    await store.set_limit(limit, int(now))
    report = await budget_report(store, [limit], now)
    return JSONResponse(report["data"][0])


async def list_budgets(request: Request) -> Response:
    require_admin(request)
    params = _query(request, _TARGET_FIELDS)
    store = context(request).store
    limits = await limits_matching(store, params)
    return JSONResponse(await budget_report(store, limits, time.time()))


async def delete_budget(request: Request) -> Response:
    require_admin(request)
    params = _query(request, (*_TARGET_FIELDS, "window"))
    store = context(request).store
    target = await resolve_target(store, params)
    window = parse_window(params.get("window"))
    if not await store.clear_limit(target.ref.scope, target.ref.id, window):
        raise NotFound(f"No {window} budget for {target.ref.scope} {target.who}.")
    return JSONResponse(
        {
            "object": "budget.deleted",
            "scope": target.ref.scope,
            "scope_id": target.ref.id,
            "window": window,
            "deleted": True,
        }
    )


async def usage(request: Request) -> Response:
    require_admin(request)
    params = _query(request, ("team", "since", "by"))
    report = await usage_report(
        context(request).store, params.get("team"), params.get("since"), params.get("by")
    )
    return JSONResponse(report)


async def audit(request: Request) -> Response:
    require_admin(request)
    _query(request, ())
    return JSONResponse(await audit_report(context(request).store))


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


async def _owner_names(store: Store, refs: Sequence[ScopeRef]) -> dict[ScopeRef, str]:
    names: dict[ScopeRef, str] = {}
    if any(ref.scope == "team" for ref in refs):
        names.update({ScopeRef("team", t.id): t.name for t in await store.list_teams()})
    if any(ref.scope == "key" for ref in refs):
        names.update({ScopeRef("key", k.id): k.name or k.prefix for k in await store.list_keys()})
    return names


def _money(name: str, micros: int) -> dict[str, Any]:
    return {f"{name}_usd": micros_to_usd_str(micros), f"{name}_micros": micros}


def _missing(param: str, message: str | None = None) -> InvalidRequest:
    return InvalidRequest(
        message or f"{param} is required.", param=param, code="missing_required_parameter"
    )


def _wrong_type(param: str, expected: str) -> InvalidRequest:
    return InvalidRequest(f"{param} must be {expected}.", param=param, code="invalid_type")
