"""Budget arithmetic: which spending periods a moment falls in, whether a cost fits the limits of
a key, its team and the organization, and what a finished job is finally charged.

Amounts are integer micro-USD; periods are UTC calendar days and months; the clock is passed in
as a Unix timestamp. Pure: imports only the standard library and ``gateway.domain``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from gateway.domain.money import format_usd

Scope = Literal["key", "team", "org"]
Window = Literal["total", "day", "month"]
SCOPES: tuple[Scope, ...] = ("key", "team", "org")
WINDOWS: tuple[Window, ...] = ("total", "day", "month")
ORG_ID = "org"

SCOPE_NOUNS: Mapping[str, str] = {"key": "API key", "team": "team", "org": "organization"}
WINDOW_ADJECTIVES: Mapping[str, str] = {"total": "total", "day": "daily", "month": "monthly"}
WINDOW_PHRASES: Mapping[str, str] = {
    "total": "in total",
    "day": "today (UTC)",
    "month": "this month (UTC)",
}


def period_of(window: Window, now: float) -> str:
    """The UTC period ``now`` falls in: "total", "YYYY-MM-DD" (day) or "YYYY-MM" (month)."""
    if window == "total":
        return "total"
    moment = datetime.fromtimestamp(now, tz=UTC)
    if window == "day":
        return moment.strftime("%Y-%m-%d")
    if window == "month":
        return moment.strftime("%Y-%m")
    raise ValueError(f"Unknown budget window {window!r}; expected one of {', '.join(WINDOWS)}.")


def window_end(window: Window, now: float) -> float | None:
    """When the period holding ``now`` ends (the next 00:00 UTC, or the 1st of next month at
    00:00 UTC) as a Unix timestamp; None for "total", which never ends."""
    if window == "total":
        return None
    moment = datetime.fromtimestamp(now, tz=UTC)
    midnight = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if window == "day":
        return (midnight + timedelta(days=1)).timestamp()
    if window == "month":
        first = midnight.replace(day=1)
        if first.month == 12:
            return first.replace(year=first.year + 1, month=1).timestamp()
        return first.replace(month=first.month + 1).timestamp()
    raise ValueError(f"Unknown budget window {window!r}; expected one of {', '.join(WINDOWS)}.")


@dataclass(frozen=True)
class ScopeRef:
    """Who a budget belongs to: one API key, one team, or the whole organization."""

    scope: Scope
    id: str


def scopes_for(key_id: str, team_id: str) -> tuple[ScopeRef, ScopeRef, ScopeRef]:
    """The three scopes a request by ``key_id`` of ``team_id`` spends from, in check order."""
    return ScopeRef("key", key_id), ScopeRef("team", team_id), ScopeRef("org", ORG_ID)


@dataclass(frozen=True)
class BudgetLine:
    """One scope's limit for one window's current period, with what is spent and reserved."""

    scope: ScopeRef
    window: Window
    limit: int | None
    spent: int
    reserved: int

    @property
    def remaining(self) -> int | None:
        """What may still be committed (never below 0); None without a limit."""
        if self.limit is None:
            return None
        return max(0, self.limit - self.spent - self.reserved)

    def fits(self, cost: int) -> bool:
        """Whether committing ``cost`` more keeps spent + reserved within the limit."""
        return self.limit is None or self.spent + self.reserved + cost <= self.limit


@dataclass(frozen=True)
class Violation:
    """A budget line that a request's cost does not fit."""

    line: BudgetLine
    cost: int

    def message(self, scope_name: str | None = None) -> str:
        """A sentence for the client naming scope, window, limit, what remains and the cost.

        e.g. "Budget exceeded for team 'research': $1.23 of its $50.00 daily limit remains
        today (UTC), and this request costs $2.31."
        """
        line = self.line
        if line.scope.scope == "org":  # teams see their own figures, never the organisation's
            return f"The organization budget is exceeded ({line.window} limit): ask the operator."
        limit = format_usd(line.limit or 0)
        remaining = format_usd(line.remaining or 0)
        adjective = "" if line.window == "total" else f" {WINDOW_ADJECTIVES[line.window]}"
        return (
            f"Budget exceeded for {_describe_scope(line.scope, scope_name)}: {remaining} of its "
            f"{limit}{adjective} limit remains {WINDOW_PHRASES[line.window]}, "
            f"and this request costs {format_usd(self.cost)}."
        )


def check(cost: int, lines: Sequence[BudgetLine]) -> list[Violation]:
    """Every limited line ``cost`` does not fit, ordered key, team, org, then total, day, month."""
    if cost < 0:
        raise ValueError(f"A cost must not be negative; got {cost}.")
    ordered = sorted(lines, key=lambda ln: (SCOPES.index(ln.scope.scope), WINDOWS.index(ln.window)))
    return [Violation(line, cost) for line in ordered if not line.fits(cost)]


def settle_amount(reserved: int, delivered_price: int) -> int:
    """What a finished job is charged: the delivered price, capped at what was reserved.

    The reservation is what the budget check admitted against every limit. Charging more (the
    price table changed mid-job, the upstream delivered a longer video) could push ``spent``
    past a limit the check promised to hold, and the client could not have known or refused
    it. The gateway absorbs that difference instead; a cheaper delivery releases the rest.
    """
    if reserved < 0 or delivered_price < 0:
        raise ValueError(f"Amounts must not be negative; got {reserved} and {delivered_price}.")
    return min(reserved, delivered_price)


def _describe_scope(scope: ScopeRef, name: str | None) -> str:
    noun = SCOPE_NOUNS[scope.scope]
    if name is not None:
        return f"{noun} '{name}'"
    if scope.scope == "org":
        return "the organization"
    return f"{noun} {scope.id}"
