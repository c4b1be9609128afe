"""Budget limits as use cases: parse and resolve who a limit is for, set, show and clear it.

One layer under the ``/admin/budgets`` API, the ``gateway budgets`` commands and the dashboard,
so all three validate the same way (every error names its parameter) and leave the same audit
trail (one ``budget set``/``budget cleared`` log line naming the actor). Time comes from the
injected clock. Results are dataclasses; each caller renders them its own way.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

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
from gateway.store.base import BudgetLimit, Store

log = logging.getLogger("gateway.audit")

MAX_LIMIT_MICROS = 10**15  # one billion USD: far above any sane cap, far below SQLite's int64
TARGET_FIELDS = ("scope", "team", "key_id")
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

    @property
    def label(self) -> str:
        return "org" if self.ref.scope == "org" else f"{self.ref.scope} {self.who}"


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    """One limit with what is spent and reserved in the period current at ``now``."""

    target: Target
    line: BudgetLine
    period: str
    resets_at: int | None

    @property
    def window(self) -> Window:
        return self.line.window

    @property
    def limit(self) -> int:
        return self.line.limit or 0

    @property
    def remaining(self) -> int:
        return self.line.remaining or 0


@dataclass(frozen=True, slots=True)
class ClearedBudget:
    target: Target
    window: Window
    cleared: bool


# -- parsing (every error names its parameter) ---------------------------------------------


def parse_scope(value: object) -> Scope:
    if value is None:
        raise missing("scope")
    if not isinstance(value, str):
        raise wrong_type("scope", "a string")
    for scope in SCOPES:
        if value == scope:
            return scope
    raise InvalidRequest(f"scope must be one of {', '.join(SCOPES)}; got {value!r}.", param="scope")


def parse_window(value: object) -> Window:
    if value is None:
        raise missing("window")
    if not isinstance(value, str):
        raise wrong_type("window", "a string")
    for window in WINDOWS:
        if value == window:
            return window
    raise InvalidRequest(
        f"window must be one of {', '.join(WINDOWS)}; got {value!r}.", param="window"
    )


def parse_limit_usd(value: object, param: str = "limit_usd") -> int:
    """A limit in micro-USD from a JSON number or a decimal string (never negative)."""
    if value is None:
        raise missing(param)
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise wrong_type(param, "a number or a decimal string")
    try:
        micros = usd_to_micros(value)
    except ValueError as exc:
        raise InvalidRequest(f"{param}: {exc}", param=param) from exc
    if micros > MAX_LIMIT_MICROS:
        raise InvalidRequest(
            f"{param} must be at most {micros_to_usd_str(MAX_LIMIT_MICROS)} USD.", param=param
        )
    return micros


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
        raise missing(param, f"{scope} budgets need {param}.")
    if not isinstance(value, str):
        raise wrong_type(param, "a string")
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


# -- use cases ------------------------------------------------------------------------------


class BudgetService:
    """Set, show and clear limits; ``actor`` names who asked in the audit log line."""

    def __init__(self, store: Store, *, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock

    async def set(
        self, fields: Mapping[str, Any], *, actor: str, param: str = "limit_usd"
    ) -> BudgetStatus:
        """Set (or replace) the limit ``fields`` name (``scope``/``team``/``key_id``,
        ``window`` and ``limit_usd`` or ``param``)."""
        target = await resolve_target(self._store, fields)
        window = parse_window(fields.get("window"))
        micros = parse_limit_usd(fields.get(param), param=param)
        limit = BudgetLimit(target.ref.scope, target.ref.id, window, micros)
        now = self._clock()
        await self._store.set_limit(limit, int(now))
        log.info(
            "budget set",
            extra={
                "actor": actor,
                "scope": target.ref.scope,
                "scope_id": target.ref.id,
                "window": window,
                "limit_micros": micros,
            },
        )
        return (await self.statuses([limit], now))[0]

    async def clear(self, fields: Mapping[str, Any], *, actor: str) -> ClearedBudget:
        """Remove one limit; ``ClearedBudget.cleared`` is False when there was none (each
        caller words that its own way)."""
        target = await resolve_target(self._store, fields)
        window = parse_window(fields.get("window"))
        if not await self._store.clear_limit(target.ref.scope, target.ref.id, window):
            return ClearedBudget(target, window, cleared=False)
        log.info(
            "budget cleared",
            extra={
                "actor": actor,
                "scope": target.ref.scope,
                "scope_id": target.ref.id,
                "window": window,
            },
        )
        return ClearedBudget(target, window, cleared=True)

    async def show(self, fields: Mapping[str, Any]) -> list[BudgetStatus]:
        """The limits asked for (all, one scope's or one owner's) with this period's money."""
        return await self.statuses(await self.matching(fields), self._clock())

    async def matching(self, fields: Mapping[str, Any]) -> list[BudgetLimit]:
        """The limits a ``show`` asks for: all, one scope's, or one owner's (scope inferred
        from ``team``/``key_id`` when not given)."""
        scope, team, key_id = (fields.get(name) for name in TARGET_FIELDS)
        if team is not None and key_id is not None:
            raise InvalidRequest(
                "Give team or key_id, not both.", param="key_id", code="conflicting_parameters"
            )
        if scope is None and team is None and key_id is None:
            return await self._store.list_limits()
        if scope is None:
            scope = "team" if team is not None else "key"
        if scope != "org" and team is None and key_id is None:
            return await self._store.list_limits(parse_scope(scope))
        target = await resolve_target(self._store, {"scope": scope, "team": team, "key_id": key_id})
        return await self._store.list_limits(target.ref.scope, target.ref.id)

    async def statuses(self, limits: Sequence[BudgetLimit], now: float) -> list[BudgetStatus]:
        """Each limit with what is spent, reserved and remaining in the period current at
        ``now``; broadest scope first (org, team, key), then by owner, then window."""
        store = self._store
        refs = tuple(dict.fromkeys(ScopeRef(limit.scope, limit.scope_id) for limit in limits))
        lines = {(line.scope, line.window): line for line in await store.budget_lines(refs, now)}
        names = await _owner_names(store, refs)
        result = []
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
            ends = window_end(line.window, now)
            result.append(
                BudgetStatus(
                    Target(ref, names.get(ref)),
                    line,
                    period_of(line.window, now),
                    None if ends is None else int(ends),
                )
            )
        result.sort(
            key=lambda item: (
                _LISTING_ORDER.index(item.target.ref.scope),
                item.target.name or "",
                item.target.ref.id,
                WINDOWS.index(item.window),
            )
        )
        return result


async def _owner_names(store: Store, refs: Sequence[ScopeRef]) -> dict[ScopeRef, str]:
    names: dict[ScopeRef, str] = {}
    if any(ref.scope == "team" for ref in refs):
        names.update({ScopeRef("team", t.id): t.name for t in await store.list_teams()})
    if any(ref.scope == "key" for ref in refs):
        names.update({ScopeRef("key", k.id): k.name or k.prefix for k in await store.list_keys()})
    return names


def missing(param: str, message: str | None = None) -> InvalidRequest:
    return InvalidRequest(
        message or f"{param} is required.", param=param, code="missing_required_parameter"
    )


def wrong_type(param: str, expected: str) -> InvalidRequest:
    return InvalidRequest(f"{param} must be {expected}.", param=param, code="invalid_type")
