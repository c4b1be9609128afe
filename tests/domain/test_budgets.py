"""Budgets: UTC periods and their ends, line arithmetic, check ordering, messages, settlement."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.domain.budgets import (
    ORG_ID,
    SCOPES,
    WINDOWS,
    BudgetLine,
    ScopeRef,
    Violation,
    Window,
    check,
    period_of,
    scopes_for,
    settle_amount,
    window_end,
)

USD = 1_000_000
KEY, TEAM, ORG = scopes_for("key_abc", "team_0123")


def ts(text: str) -> float:
    """A Unix timestamp from an ISO-8601 UTC time."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def line(
    scope: ScopeRef = TEAM,
    window: Window = "day",
    limit: int | None = 50 * USD,
    spent: int = 0,
    reserved: int = 0,
) -> BudgetLine:
    return BudgetLine(scope=scope, window=window, limit=limit, spent=spent, reserved=reserved)


# Periods


@pytest.mark.parametrize(
    ("moment", "day", "month"),
    [
        ("2026-11-30T23:59:59", "2026-11-30", "2026-11"),
        ("2026-11-30T23:59:59.999999", "2026-11-30", "2026-11"),
        ("2026-12-01T00:00:00", "2026-12-01", "2026-12"),
        ("2026-12-31T23:59:59", "2026-12-31", "2026-12"),
        ("2027-01-01T00:00:00", "2027-01-01", "2027-01"),
        ("2028-02-28T23:59:59", "2028-02-28", "2028-02"),
        ("2028-02-29T00:00:00", "2028-02-29", "2028-02"),  # leap day
        ("2028-02-29T23:59:59", "2028-02-29", "2028-02"),
        ("2028-03-01T00:00:00", "2028-03-01", "2028-03"),
        ("1970-01-01T00:00:00", "1970-01-01", "1970-01"),
    ],
)
def test_period_of(moment: str, day: str, month: str):
    now = ts(moment)
    assert period_of("day", now) == day
    assert period_of("month", now) == month
    assert period_of("total", now) == "total"


def test_periods_are_utc_not_local():
    # 2026-12-01T00:30 in UTC+2 is still November 30th in UTC.
    now = datetime.fromisoformat("2026-12-01T00:30:00+02:00").timestamp()
    assert period_of("day", now) == "2026-11-30"
    assert period_of("month", now) == "2026-11"


@pytest.mark.parametrize(
    ("moment", "day_end", "month_end"),
    [
        ("2026-11-30T23:59:59", "2026-12-01T00:00:00", "2026-12-01T00:00:00"),
        ("2026-12-01T00:00:00", "2026-12-02T00:00:00", "2027-01-01T00:00:00"),
        ("2026-12-31T23:59:59", "2027-01-01T00:00:00", "2027-01-01T00:00:00"),
        ("2026-05-12T13:45:10.5", "2026-05-13T00:00:00", "2026-06-01T00:00:00"),
        ("2027-02-28T12:00:00", "2027-03-01T00:00:00", "2027-03-01T00:00:00"),
        ("2028-02-28T12:00:00", "2028-02-29T00:00:00", "2028-03-01T00:00:00"),
        ("2028-02-29T12:00:00", "2028-03-01T00:00:00", "2028-03-01T00:00:00"),
    ],
)
def test_window_end(moment: str, day_end: str, month_end: str):
    now = ts(moment)
    assert window_end("day", now) == ts(day_end)
    assert window_end("month", now) == ts(month_end)
    assert window_end("total", now) is None


@pytest.mark.parametrize("window", ["day", "month"])
def test_window_end_starts_a_new_period(window: Window):
    now = ts("2026-11-30T23:59:59")
    end = window_end(window, now)
    assert end is not None and end > now
    assert period_of(window, end) != period_of(window, now)
    assert period_of(window, end - 0.001) == period_of(window, now)


def test_unknown_windows_are_rejected():
    with pytest.raises(ValueError, match="week"):
        period_of("week", 0.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="week"):
        window_end("week", 0.0)  # type: ignore[arg-type]


# Scopes and lines


def test_scopes_for():
    assert scopes_for("key_abc", "team_0123") == (
        ScopeRef("key", "key_abc"),
        ScopeRef("team", "team_0123"),
        ScopeRef("org", ORG_ID),
    )
    assert SCOPES == ("key", "team", "org")
    assert WINDOWS == ("total", "day", "month")


@pytest.mark.parametrize(
    ("limit", "spent", "reserved", "remaining"),
    [
        (None, 10, 10, None),
        (100, 0, 0, 100),
        (100, 30, 20, 50),
        (100, 60, 40, 0),
        (100, 90, 40, 0),  # over the limit: never below zero
        (0, 0, 0, 0),
    ],
)
def test_remaining(limit: int | None, spent: int, reserved: int, remaining: int | None):
    assert line(limit=limit, spent=spent, reserved=reserved).remaining == remaining


@pytest.mark.parametrize(
    ("limit", "spent", "reserved", "cost", "fits"),
    [
        (None, 10**12, 10**12, 10**12, True),
        (100, 30, 20, 50, True),  # exactly to the limit
        (100, 30, 20, 51, False),
        (100, 0, 0, 100, True),
        (100, 0, 0, 101, False),
        (100, 0, 60, 50, False),  # reservations count
        (100, 60, 0, 50, False),
        (100, 100, 0, 0, True),
        (100, 101, 0, 0, False),
        (0, 0, 0, 0, True),
        (0, 0, 0, 1, False),
    ],
)
def test_fits(limit: int | None, spent: int, reserved: int, cost: int, fits: bool):
    assert line(limit=limit, spent=spent, reserved=reserved).fits(cost) is fits


# check


def test_check_returns_nothing_when_everything_fits():
    lines = [line(KEY, "total", None), line(TEAM, "day", 50 * USD), line(ORG, "month", 10 * USD)]
    assert check(2 * USD, lines) == []
    assert check(0, []) == []


def test_check_team_daily_and_monthly_limits_at_once():
    daily = line(TEAM, "day", 50 * USD, spent=48 * USD, reserved=770_000)
    monthly = line(TEAM, "month", 500 * USD, spent=499 * USD)
    # $1.23 left today and $1.00 left this month.
    assert check(USD, [monthly, daily]) == []
    assert check(1_000_001, [monthly, daily]) == [Violation(monthly, 1_000_001)]
    assert check(1_230_001, [monthly, daily]) == [
        Violation(daily, 1_230_001),
        Violation(monthly, 1_230_001),
    ]


def test_check_orders_by_scope_then_window():
    lines = [
        line(ORG, "month", 1),
        line(TEAM, "month", 1),
        line(KEY, "day", 1),
        line(ORG, "total", 1),
        line(TEAM, "day", None),  # no limit: never a violation
        line(KEY, "month", 1),
        line(TEAM, "total", 1),
        line(KEY, "total", 1),
        line(ORG, "day", 1),
        line(TEAM, "day", 10),  # fits
    ]
    found = [(v.line.scope.scope, v.line.window) for v in check(5, lines)]
    assert found == [
        ("key", "total"),
        ("key", "day"),
        ("key", "month"),
        ("team", "total"),
        ("team", "month"),
        ("org", "total"),
        ("org", "day"),
        ("org", "month"),
    ]
    assert all(v.cost == 5 for v in check(5, lines))


def test_check_rejects_a_negative_cost():
    with pytest.raises(ValueError):
        check(-1, [line()])


# Violation messages


def test_message_example_with_a_scope_name():
    daily = line(TEAM, "day", 50 * USD, spent=48 * USD, reserved=770_000)
    assert Violation(daily, 2_310_000).message("research") == (
        "Budget exceeded for team 'research': $1.23 of its $50.00 daily limit remains "
        "today (UTC), and this request costs $2.31."
    )


def test_message_without_a_scope_name_uses_the_id():
    monthly = line(TEAM, "month", 500 * USD, spent=499 * USD)
    assert Violation(monthly, 12_300_000).message() == (
        "Budget exceeded for team team_0123: $1.00 of its $500.00 monthly limit remains "
        "this month (UTC), and this request costs $12.30."
    )


def test_message_for_a_key_total_limit_over_budget():
    total = line(KEY, "total", 5 * USD, spent=6 * USD)
    message = Violation(total, 12_300).message()
    assert message == (
        "Budget exceeded for API key key_abc: $0.00 of its $5.00 limit remains in total, "
        "and this request costs $0.0123."
    )
    assert "'ci-bot'" in Violation(total, 1).message("ci-bot")


def test_message_for_the_organization_shows_no_figures():
    monthly = line(ORG, "month", 1000 * USD, spent=999_500_000)
    for message in (Violation(monthly, USD).message(), Violation(monthly, USD).message("Acme")):
        assert message == "The organization budget is exceeded (month limit): ask the operator."
        assert "$" not in message


# settle_amount


@pytest.mark.parametrize(
    ("reserved", "delivered", "charged"),
    [
        (770_000, 770_000, 770_000),  # as reserved
        (770_000, 616_000, 616_000),  # a cheaper delivery is charged what it cost
        (770_000, 1_540_000, 770_000),  # never more than reserved
        (0, 500, 0),
        (500, 0, 0),
    ],
)
def test_settle_amount(reserved: int, delivered: int, charged: int):
    assert settle_amount(reserved, delivered) == charged


def test_settle_amount_rejects_negative_amounts():
    with pytest.raises(ValueError):
        settle_amount(-1, 0)
    with pytest.raises(ValueError):
        settle_amount(0, -1)


def test_settlement_never_exceeds_a_limit_the_check_admitted():
    admitted = line(TEAM, "day", 50 * USD, spent=49 * USD)
    cost = USD
    assert check(cost, [admitted]) == []
    charged = settle_amount(cost, delivered_price=3 * USD)
    assert admitted.spent + charged <= (admitted.limit or 0)
