"""Job statuses: every status's meaning, table by table, and the SQL spelling of "ended"."""

from __future__ import annotations

from typing import get_args

import pytest

from gateway.domain.jobs import (
    GAUGE_STATES,
    PUBLIC_STATUS,
    STATUSES,
    TERMINAL_SQL,
    TRANSITIONS,
    JobStatus,
    can_follow,
    gauge_counts,
    is_terminal,
    public_status,
    sql_list,
)

# status: (terminal, public status, gauge state or None)
TABLE: dict[str, tuple[bool, str, str | None]] = {
    "submitting": (False, "queued", "queued"),
    "submit_unknown": (False, "queued", "outcome_unknown"),
    "queued": (False, "queued", "queued"),
    "in_progress": (False, "in_progress", "running"),
    "downloading": (False, "in_progress", "awaiting_download"),
    "completed": (True, "completed", None),
    "failed": (True, "failed", None),
    "rejected": (True, "failed", None),
}


def test_the_table_covers_every_status() -> None:
    assert set(TABLE) == set(STATUSES) == set(get_args(JobStatus)) == set(TRANSITIONS)


@pytest.mark.parametrize(("status", "row"), TABLE.items())
def test_each_status_is_terminal_public_and_counted_as_the_table_says(
    status: str, row: tuple[bool, str, str | None]
) -> None:
    terminal, public, gauge = row
    assert is_terminal(status) is terminal
    assert public_status(status) == PUBLIC_STATUS[status] == public
    counts = gauge_counts([(status, 3)])
    assert set(counts) == set(GAUGE_STATES)
    assert sum(counts.values()) == (0 if gauge is None else 3)
    if gauge is not None:
        assert counts[gauge] == 3


@pytest.mark.parametrize("status", STATUSES)
def test_terminal_states_are_final_and_others_can_end(status: str) -> None:
    if is_terminal(status):
        assert not TRANSITIONS[status]
        assert not any(can_follow(status, other) for other in STATUSES)
    else:
        assert can_follow(status, "failed")


@pytest.mark.parametrize(
    ("old", "new", "allowed"),
    [
        ("submitting", "queued", True),
        ("submitting", "rejected", True),
        ("submitting", "submit_unknown", True),
        ("submit_unknown", "queued", True),  # evidence: the upstream has it
        ("submit_unknown", "failed", True),  # resolved (charged or refunded)
        ("submit_unknown", "completed", False),  # never without a poll first
        ("queued", "rejected", False),  # only a submit is rejected
        ("queued", "completed", True),  # a follower completes with its leader
        ("in_progress", "downloading", True),
        ("downloading", "queued", False),
        ("completed", "failed", False),
        ("failed", "queued", False),
        ("nonsense", "queued", False),
    ],
)
def test_transitions(old: str, new: str, allowed: bool) -> None:
    assert can_follow(old, new) is allowed


def test_gauge_counts_add_statuses_of_one_state_and_ignore_unknown_ones() -> None:
    counts = gauge_counts([("submitting", 2), ("queued", 3), ("completed", 9), ("odd", 1)])
    assert counts == {"queued": 5, "running": 0, "awaiting_download": 0, "outcome_unknown": 0}


def test_sql_lists_spell_the_partial_index_predicate() -> None:
    assert TERMINAL_SQL == "('completed', 'failed', 'rejected')"
    assert sql_list(["queued"]) == "('queued')"
