"""Money movements: reservation, settlement (charge, refund, after segment charges) and the
part charge of a chained segment, as tables of job money states -> rows written."""

from __future__ import annotations

from dataclasses import replace

import pytest

from gateway.domain.budgets import ScopeRef, scopes_for
from gateway.domain.ledger import counter_keys, part_charge, reservation, settlement
from gateway.domain.video_request import VideoRequest
from gateway.store.base import Job

RESERVED_AT = 1_767_225_599.0  # 2025-12-31 23:59:59 UTC: the day and month turn right after
NOW = RESERVED_AT + 2.0
JOB = Job(
    id="vid_1",
    team_id="team_1",
    key_id="key_1",
    model="seedance-1",
    request=VideoRequest(model="seedance-1", prompt="p"),
    status="completed",
    created_at=int(RESERVED_AT),
    updated_at=int(NOW),
    cost_micros=500,
    money_state="reserved",
    reserved_at=RESERVED_AT,
)


def test_a_reservation_moves_every_window_of_every_scope_in_lock_order() -> None:
    scopes = scopes_for("key_1", "team_1")
    movement = reservation("vid_1", scopes, 500, RESERVED_AT)
    assert (movement.kind, movement.reserved, movement.spent) == ("reserve", 500, 0)
    keys = movement.counter_keys()
    assert keys == sorted(keys) and len(keys) == 9
    assert ("team", "team_1", "day", "2025-12-31") in keys
    assert ("org", "org", "month", "2025-12") in keys
    rows = movement.ledger_rows()
    assert [row[2:4] for row in rows] == [("key", "key_1"), ("team", "team_1"), ("org", "org")]
    assert all(row[4:6] == ("2025-12-31", "2025-12") for row in rows)


def test_counter_keys_drop_repeats() -> None:
    twice = (ScopeRef("key", "k"), ScopeRef("key", "k"))
    assert len(counter_keys(twice, NOW)) == 3


# (money_state, settled before, charge) -> (kind, reserved delta, spent delta, state, charged)
SETTLEMENTS = [
    ("reserved", 0, 500, ("charge", -500, 500, "charged", 500)),
    ("reserved", 0, 300, ("charge", -500, 300, "charged", 300)),  # a cheaper delivery
    ("reserved", 0, 0, ("charge", -500, 0, "charged", 0)),  # a zero charge is a charge
    ("reserved", 0, None, ("refund", -500, 0, "refunded", 0)),
    ("reserved", 200, None, ("refund", -300, 0, "charged", 200)),  # segments stay paid
    ("reserved", 200, 450, ("charge", -300, 250, "charged", 450)),
    ("reserved", 200, 100, ("charge", -300, 0, "charged", 200)),  # never below what was paid
]


@pytest.mark.parametrize(("state", "already", "charge", "expected"), SETTLEMENTS)
def test_settlement_table(
    state: str, already: int, charge: int | None, expected: tuple[object, ...]
) -> None:
    job = replace(JOB, money_state=state, settled_micros=already)  # type: ignore[arg-type]
    decided = settlement(job, charge=charge, now=NOW)
    assert decided is not None
    movement = decided.movement
    got = (movement.kind, movement.reserved, movement.spent)
    assert (*got, decided.money_state, decided.charged_micros) == expected
    # Settled in the periods the money was reserved in, recorded now.
    assert movement.at == RESERVED_AT and movement.recorded_at == NOW
    assert movement.ledger_rows()[0][4] == "2025-12-31"


@pytest.mark.parametrize("state", ["none", "charged", "refunded"])
def test_nothing_reserved_settles_nothing(state: str) -> None:
    job = replace(JOB, money_state=state)  # type: ignore[arg-type]
    assert settlement(job, charge=500, now=NOW) is None
    assert part_charge(job, 100, NOW) is None
    assert settlement(replace(JOB, reserved_at=None), charge=1, now=NOW) is None


def test_a_settlement_names_who_decided() -> None:
    decided = settlement(JOB, charge=None, now=NOW, actor="ops", reason="ticket 7")
    assert decided is not None
    assert {row[9:] for row in decided.movement.ledger_rows()} == {("ops", "ticket 7")}


@pytest.mark.parametrize(("amount", "moves"), [(120, True), (0, False)])
def test_a_part_charge_moves_reserved_to_spent(amount: int, moves: bool) -> None:
    movement = part_charge(JOB, amount, NOW)
    assert (movement is not None) is moves
    if movement is not None:
        assert (movement.kind, movement.reserved, movement.spent) == ("charge_part", -120, 120)
        assert movement.at == RESERVED_AT and movement.recorded_at == NOW


def test_a_movement_without_a_time_is_dated_when_the_money_was_reserved() -> None:
    decided = settlement(JOB, charge=500, now=0.0)
    assert decided is not None
    assert {row[8] for row in decided.movement.ledger_rows()} == {RESERVED_AT}
