"""The pure side of concurrency and rate limits: which limit is in force, GCRA's verdicts and
Retry-After, and the in-flight rule."""

from __future__ import annotations

import pytest

from gateway.domain.traffic import (
    TrafficDefaults,
    TrafficLimits,
    TrafficScope,
    in_flight_allowed,
    in_flight_checks,
    owners,
    rate_checks,
    rate_decision,
)


def test_own_limits_win_field_by_field_and_zero_means_none() -> None:
    defaults = TrafficDefaults(team=TrafficLimits(5, 60), key=TrafficLimits(2, 0))
    own = {"team": TrafficLimits(None, 0)}
    assert defaults.effective("team", own) == TrafficLimits(5, 0)
    assert defaults.effective("key", own) == TrafficLimits(2, 0)
    assert TrafficDefaults().effective("key", {}) == TrafficLimits(0, 0)


def test_gcra_allows_a_burst_of_n_then_one_per_interval() -> None:
    tat: float | None = None
    now = 1000.0
    for _ in range(4):  # 4 per minute: 4 at once
        decision = rate_decision(tat, now, 4)
        assert decision.allowed
        tat = decision.tat
    refused = rate_decision(tat, now, 4)
    assert not refused.allowed and refused.retry_after == pytest.approx(15.0)
    assert not rate_decision(tat, now + 14.9, 4).allowed
    later = rate_decision(tat, now + 15.0, 4)
    assert later.allowed
    assert not rate_decision(later.tat, now + 15.0, 4).allowed


def test_gcra_forgets_idle_time_beyond_one_burst() -> None:
    decision = rate_decision(500.0, 10_000.0, 2)  # idle for hours: a full burst, no more
    assert decision.allowed and decision.tat == 10_030.0
    second = rate_decision(decision.tat, 10_000.0, 2)
    assert second.allowed
    assert not rate_decision(second.tat, 10_000.0, 2).allowed


@pytest.mark.parametrize(
    ("count", "limit", "allowed"),
    [(0, 1, True), (1, 1, False), (9, 10, True), (10, 10, False), (500, 0, True), (3, None, True)],
)
def test_in_flight_rule(count: int, limit: int | None, allowed: bool) -> None:
    assert in_flight_allowed(count, limit) is allowed


@pytest.mark.parametrize(
    ("limits", "rates", "in_flight"),
    [
        ({}, [], []),
        (
            {"team": TrafficLimits(3, 60), "key": TrafficLimits(1, 0)},
            [("team", 60)],
            [("team", 3), ("key", 1)],
        ),
        ({"key": TrafficLimits(0, 10)}, [("key", 10)], []),
        ({"team": TrafficLimits(None, None)}, [], []),
    ],
)
def test_the_checks_a_create_must_pass_in_order(
    limits: dict[TrafficScope, TrafficLimits],
    rates: list[tuple[str, int]],
    in_flight: list[tuple[str, int]],
) -> None:
    assert rate_checks(limits) == rates
    assert in_flight_checks(limits) == in_flight
    assert owners("team_1", "key_1") == {"team": "team_1", "key": "key_1"}
