"""Money movements: what reserving, charging, refunding or charging part of a job's price writes.

A movement adds the same ``reserved``/``spent`` deltas to every window counter (total, day,
month) of each scope (key, team, org) in the periods of one moment, and writes one ledger row
per scope that says so. Reservations settle in the periods they were made in, whenever they
settle. The adapters only lock the counters (``counter_keys`` is their lock order), upsert the
deltas and insert the rows. Pure: imports only the standard library and ``gateway.domain``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from gateway.domain.budgets import WINDOWS, ScopeRef, period_of, scopes_for

MovementKind = Literal["reserve", "charge", "refund", "charge_part"]
MoneyState = Literal["none", "reserved", "charged", "refunded"]
CounterKey = tuple[str, str, str, str]  # scope, scope_id, window_kind, period
# job_id, kind, scope, scope_id, day, month, reserved_delta, spent_delta, created_at, actor, reason
LedgerRow = tuple[str, str, str, str, str, str, int, int, float, str | None, str | None]


class MoneyFacts(Protocol):
    """What settling a job reads of it (``store.base.Job`` has all of these)."""

    @property
    def id(self) -> str: ...
    @property
    def key_id(self) -> str: ...
    @property
    def team_id(self) -> str: ...
    @property
    def money_state(self) -> MoneyState: ...
    @property
    def reserved_at(self) -> float | None: ...
    @property
    def cost_micros(self) -> int: ...
    @property
    def settled_micros(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Movement:
    """``reserved``/``spent`` added to every window counter of ``scopes`` in the periods of
    ``at``, and the ledger rows that say so, dated ``recorded_at`` (naming ``actor`` and
    ``reason`` when a person or a deadline decided it)."""

    job_id: str
    kind: MovementKind
    scopes: tuple[ScopeRef, ...]
    at: float
    reserved: int
    spent: int
    recorded_at: float
    actor: str | None = None
    reason: str | None = None

    def counter_keys(self) -> list[CounterKey]:
        """The counters this moves, in lock order (sorted, without repeats)."""
        return counter_keys(self.scopes, self.at)

    @property
    def day(self) -> str:
        """The day the movement counts in (its ledger rows' ``day``)."""
        return period_of("day", self.at)

    @property
    def month(self) -> str:
        """The month the movement counts in (its ledger rows' ``month``)."""
        return period_of("month", self.at)

    @property
    def dated(self) -> float:
        """When the ledger rows say it happened: ``recorded_at``, or (a caller that gave no
        time, 0) when the money was reserved."""
        return self.recorded_at or self.at

    def ledger_rows(self) -> list[LedgerRow]:
        """One row per scope, in the scopes' order."""
        day, month = self.day, self.month
        return [
            (
                self.job_id,
                self.kind,
                ref.scope,
                ref.id,
                day,
                month,
                self.reserved,
                self.spent,
                self.dated,
                self.actor,
                self.reason,
            )
            for ref in self.scopes
        ]


@dataclass(frozen=True, slots=True)
class Settlement:
    """A job's reservation settled: the movement, and the job's money columns after it."""

    movement: Movement
    money_state: MoneyState
    charged_micros: int


def counter_keys(scopes: Sequence[ScopeRef], at: float) -> list[CounterKey]:
    """The counters ``scopes`` move at ``at``, in lock order (sorted, without repeats)."""
    return sorted(
        {(ref.scope, ref.id, window, period_of(window, at)) for ref in scopes for window in WINDOWS}
    )


def reservation(job_id: str, scopes: tuple[ScopeRef, ...], cost: int, now: float) -> Movement:
    """Reserve ``cost`` in every scope now (the caller checked that it fits)."""
    return Movement(job_id, "reserve", scopes, now, reserved=cost, spent=0, recorded_at=now)


def settlement(
    job: MoneyFacts,
    *,
    charge: int | None,
    now: float,
    actor: str | None = None,
    reason: str | None = None,
) -> Settlement | None:
    """Turn a job's reservation into a charge of ``charge`` (None: refund it) in the periods
    it was reserved in; None when nothing is reserved. What a chained video's finished
    segments already charged (``settled_micros``) stays charged either way."""
    if job.money_state != "reserved" or job.reserved_at is None:
        return None
    already = job.settled_micros
    charged = max(already, 0 if charge is None else charge)
    movement = Movement(
        job.id,
        "refund" if charge is None else "charge",
        scopes_for(job.key_id, job.team_id),
        job.reserved_at,
        reserved=-(job.cost_micros - already),
        spent=charged - already,
        recorded_at=now,
        actor=actor,
        reason=reason,
    )
    state: MoneyState = "refunded" if charge is None and not already else "charged"
    return Settlement(movement, state, charged)


def part_charge(job: MoneyFacts, amount: int, now: float) -> Movement | None:
    """Charge ``amount`` of a reserved job now (a chained video's finished segment); the rest
    stays reserved. None when nothing is reserved or the amount is zero."""
    if job.money_state != "reserved" or job.reserved_at is None or not amount:
        return None
    scopes = scopes_for(job.key_id, job.team_id)
    return Movement(
        job.id,
        "charge_part",
        scopes,
        job.reserved_at,
        reserved=-amount,
        spent=amount,
        recorded_at=now,
    )
