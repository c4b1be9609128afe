"""The Idempotency-Key binding rule: an expired binding is forgotten, a live one refuses."""

from __future__ import annotations

import pytest

from gateway.domain.idempotency import Binding, binding, is_live

NOW = 1_700_000_000.0

# (expiry of the stored binding, or None) -> what binding the key does
BINDINGS: list[tuple[float | None, Binding]] = [
    (None, "bind"),
    (NOW + 1, "refuse"),
    (NOW + 0.001, "refuse"),
    (NOW, "replace"),  # expired at this very moment: forgotten
    (NOW - 1, "replace"),
]


@pytest.mark.parametrize(("stored", "expected"), BINDINGS)
def test_binding_table(stored: float | None, expected: Binding) -> None:
    assert binding(stored, NOW) == expected


@pytest.mark.parametrize(("expires_at", "live"), [(NOW + 1, True), (NOW, False), (NOW - 1, False)])
def test_a_binding_answers_only_before_its_expiry(expires_at: float, live: bool) -> None:
    assert is_live(expires_at, NOW) is live
    assert (binding(expires_at, NOW) == "refuse") is live
