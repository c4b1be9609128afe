"""The job runner's back-off: minimum x 2.5^n, capped, never sooner than Retry-After."""

from __future__ import annotations

import pytest

from gateway.domain.schedule import BACKOFF_FACTOR, next_delay
from gateway.settings import JobSettings

DEFAULTS = JobSettings()


def delay(attempts: int, retry_after: float | None = None) -> float:
    return next_delay(
        attempts,
        minimum=DEFAULTS.poll_min_seconds,
        maximum=DEFAULTS.poll_max_seconds,
        retry_after=retry_after,
    )


def test_documented_schedule_with_the_default_settings() -> None:
    assert [delay(n) for n in range(6)] == [2.0, 5.0, 12.5, 30.0, 30.0, 30.0]


def test_growth_factor() -> None:
    assert BACKOFF_FACTOR == 2.5
    values = [next_delay(n, minimum=1.0, maximum=1e9) for n in range(5)]
    assert values == [1.0, 2.5, 6.25, 15.625, 39.0625]


def test_negative_attempts_count_as_none() -> None:
    assert delay(-3) == delay(0) == 2.0


@pytest.mark.parametrize("attempts", [4, 50, 774, 775, 10_000, 10**9])
def test_capped_at_the_maximum_however_many_attempts(attempts: int) -> None:
    # 2.5**775 does not fit a float: the schedule must still answer (a job polled through a
    # long upstream outage keeps counting attempts).
    assert delay(attempts) == 30.0


def test_cap_below_minimum_wins() -> None:
    assert next_delay(0, minimum=10.0, maximum=3.0) == 3.0


@pytest.mark.parametrize(
    ("attempts", "retry_after", "expected"),
    [
        (0, 40.0, 40.0),  # Retry-After longer than the back-off: honoured
        (0, 1.0, 2.0),  # shorter: the back-off stands
        (0, 0.0, 2.0),
        (2, 12.5, 12.5),
        (5, 45.0, 45.0),  # above the cap too: the upstream asked for it
        (5, 10.0, 30.0),
        (10_000, 120.0, 120.0),
    ],
)
def test_retry_after_is_a_floor(attempts: int, retry_after: float, expected: float) -> None:
    assert delay(attempts, retry_after) == expected
