"""Concurrency and rate limits as operators manage them: set, show and clear a team's or a key's
own limits over the configured defaults (``[limits]``).

Shared by the admin API (``/admin/limits``) and the ``gateway limits`` command, so ``--json``
prints exactly what the API answers. Parameters are checked here and every error names its
parameter. Knows nothing of HTTP.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.domain.traffic import (
    LIMIT_NAMES,
    MAX_LIMIT_VALUE,
    TRAFFIC_SCOPES,
    TrafficDefaults,
    TrafficLimits,
    TrafficScope,
)
from gateway.errors import InvalidRequest, NotFound
from gateway.store.base import Store, TrafficLimit

OWNER_FIELDS: Mapping[TrafficScope, str] = {"team": "team", "key": "key_id"}


@dataclass(frozen=True, slots=True)
class Owner:
    """A team or key whose limits are managed: its id and how people name it."""

    scope: TrafficScope
    id: str
    name: str


async def resolve_owner(store: Store, fields: Mapping[str, Any]) -> Owner:
    """The owner named by ``team`` (a team name) or ``key_id``; exactly one must be given."""
    given = [scope for scope, param in OWNER_FIELDS.items() if fields.get(param) is not None]
    if len(given) != 1:
        raise InvalidRequest(
            "Give exactly one of team or key_id.",
            param="team",
            code="missing_required_parameter" if not given else "conflicting_parameters",
        )
    scope = given[0]
    value = fields[OWNER_FIELDS[scope]]
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest(
            f"{OWNER_FIELDS[scope]} must be a non-empty string.", param=OWNER_FIELDS[scope]
        )
    if scope == "team":
        team = await store.team_by_name(value)
        if team is None:
            raise NotFound(f"No team named {value!r}.", param="team")
        return Owner("team", team.id, team.name)
    key = next((k for k in await store.list_keys() if k.id == value), None)
    if key is None:
        raise NotFound(f"No key with id {value!r}.", param="key_id")
    return Owner("key", key.id, key.id)


def parse_limit_value(value: object, param: str) -> int | None:
    """A limit from JSON or the command line: a whole number from 0 (no limit) up; None: unset."""
    if value is None:
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(f"{param} must be a whole number (0 = no limit).", param=param)
    if not 0 <= value <= MAX_LIMIT_VALUE:
        raise InvalidRequest(
            f"{param} must be from 0 (no limit) to {MAX_LIMIT_VALUE}.", param=param
        )
    return value


async def set_limits(
    store: Store, defaults: TrafficDefaults, fields: Mapping[str, Any]
) -> dict[str, Any]:
    """Set the limits given in ``fields`` for the owner it names; the owner's report."""
    owner = await resolve_owner(store, fields)
    values = {name: parse_limit_value(fields.get(name), name) for name in LIMIT_NAMES}
    if all(value is None for value in values.values()):
        raise InvalidRequest(
            f"Give at least one of {', '.join(LIMIT_NAMES)}.",
            param=LIMIT_NAMES[0],
            code="missing_required_parameter",
        )
    stored = await store.set_traffic_limit(
        TrafficLimit(owner.scope, owner.id, **values), int(time.time())
    )
    return await render_owner(store, defaults, owner, stored)


async def clear_limits(store: Store, fields: Mapping[str, Any]) -> dict[str, Any]:
    owner = await resolve_owner(store, fields)
    if not await store.clear_traffic_limit(owner.scope, owner.id):
        raise NotFound(f"{owner.scope} {owner.name} has no limits of its own.")
    return {"object": "limits.deleted", "scope": owner.scope, "scope_id": owner.id, "deleted": True}


async def limits_report(
    store: Store, defaults: TrafficDefaults, fields: Mapping[str, Any]
) -> dict[str, Any]:
    """The defaults and, for one owner (``team``/``key_id``) or every owner with limits of its
    own, the limits in force and the jobs in flight now."""
    if any(fields.get(param) is not None for param in OWNER_FIELDS.values()):
        owner = await resolve_owner(store, fields)
        found = await store.list_traffic_limits(owner.scope, owner.id)
        data = [await render_owner(store, defaults, owner, found[0] if found else None)]
    else:
        teams = {team.id: team.name for team in await store.list_teams()}
        data = []
        for stored in await store.list_traffic_limits():
            name = teams.get(stored.scope_id, stored.scope_id) if stored.scope == "team" else ""
            owner = Owner(stored.scope, stored.scope_id, name or stored.scope_id)
            data.append(await render_owner(store, defaults, owner, stored))
    return {
        "object": "list",
        "defaults": {scope: _values(_default(defaults, scope)) for scope in TRAFFIC_SCOPES},
        "data": data,
    }


async def render_owner(
    store: Store, defaults: TrafficDefaults, owner: Owner, stored: TrafficLimit | None
) -> dict[str, Any]:
    own = TrafficLimits(
        stored.max_in_flight_jobs if stored else None,
        stored.requests_per_minute if stored else None,
    )
    return {
        "object": "limits",
        "scope": owner.scope,
        "scope_id": owner.id,
        "name": owner.name,
        **_values(own.over(_default(defaults, owner.scope))),
        "own": _values(own),
        "in_flight_jobs": await store.in_flight_jobs(owner.scope, owner.id),
    }


def _default(defaults: TrafficDefaults, scope: TrafficScope) -> TrafficLimits:
    return defaults.team if scope == "team" else defaults.key


def _values(limits: TrafficLimits) -> dict[str, int | None]:
    return {
        "max_in_flight_jobs": limits.max_in_flight_jobs,
        "requests_per_minute": limits.requests_per_minute,
    }
