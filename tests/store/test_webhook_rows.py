"""The webhook row helpers both adapters write with: an attempt's row and what the delivery
becomes after it."""

from __future__ import annotations

import pytest

from gateway.store.webhook_records import AttemptOutcome, WebhookAttempt
from gateway.store.webhook_rows import ATTEMPT_COLUMNS, attempt_row, delivery_after


def attempt(outcome: AttemptOutcome) -> WebhookAttempt:
    return WebhookAttempt("wh_1", 2, started_at=100.0, duration_seconds=0.5, outcome=outcome)


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        ("delivered", ("delivered", None, 100.5)),
        ("retry", ("pending", 160.0, None)),
        ("failed", ("failed", None, None)),
    ],
)
def test_what_a_delivery_becomes_after_an_attempt(
    outcome: AttemptOutcome, expected: tuple[str, float | None, float | None]
) -> None:
    assert delivery_after(attempt(outcome), next_attempt_at=160.0) == expected


def test_an_attempt_row_follows_its_columns() -> None:
    row = attempt_row(WebhookAttempt("wh_1", 3, 100.0, 0.25, "retry", 503, "HTTP 503"))
    assert dict(zip(ATTEMPT_COLUMNS.split(", "), row, strict=True)) == {
        "delivery_id": "wh_1",
        "attempt": 3,
        "started_at": 100.0,
        "duration_seconds": 0.25,
        "outcome": "retry",
        "status_code": 503,
        "error": "HTTP 503",
    }
