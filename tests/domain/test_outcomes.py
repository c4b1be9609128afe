"""How a job ends: completion (followers, references, charge, cache entry), failure (refund,
rejected submits, followers) and the settling of an unknown submit outcome."""

from __future__ import annotations

from dataclasses import replace

import pytest

from gateway.domain.outcomes import (
    UNKNOWN_OUTCOME_CODE,
    completion,
    failure,
    failure_end,
    follower_completion,
    follower_failure,
    unknown_resolution,
    unknown_resolution_end,
)
from gateway.domain.video_request import VideoRequest
from gateway.domain.webhooks import VIDEO_COMPLETED, VIDEO_FAILED
from gateway.store.base import Job

NOW = 2_000_000.0
LEADER = Job(
    id="vid_a",
    team_id="team_1",
    key_id="key_1",
    model="seedance-1",
    request=VideoRequest(model="seedance-1", prompt="p"),
    status="completed",
    created_at=int(NOW - 100),
    updated_at=int(NOW),
    cost_micros=900,
    money_state="reserved",
    reserved_at=NOW - 100,
    cache_key="ck",
    video_asset="v" * 64,
    expires_at=int(NOW) + 86_400,
    delivered_seconds=5,
)
DELETED = replace(LEADER, deleted_at=int(NOW - 1), video_asset=None)
FOLLOWERS = [("vid_c", False), ("vid_b", False), ("vid_d", True)]


# (leader, followers, stored) -> (entry change, heir, references per asset, notified)
COMPLETIONS = [
    (LEADER, [], True, ("serve", None, 1, ("vid_a",))),
    (LEADER, FOLLOWERS, True, ("serve", None, 3, ("vid_a", "vid_b", "vid_c"))),
    (DELETED, FOLLOWERS, True, ("hand_over", "vid_b", 2, ("vid_a", "vid_b", "vid_c"))),
    (DELETED, [("vid_d", True)], True, ("drop", None, 0, ("vid_a",))),
    (DELETED, FOLLOWERS, False, ("drop", None, 2, ("vid_a", "vid_b", "vid_c"))),
    (
        replace(LEADER, cache_key=None),
        FOLLOWERS,
        True,
        (None, None, 3, ("vid_a", "vid_b", "vid_c")),
    ),
]


@pytest.mark.parametrize(("leader", "followers", "stored", "expected"), COMPLETIONS)
def test_completion_table(
    leader: Job, followers: list[tuple[str, bool]], stored: bool, expected: tuple[object, ...]
) -> None:
    ending = completion(leader, followers, stored=stored, charge=None, now=NOW)
    assert (ending.entry, ending.heir, ending.references, ending.notify) == expected
    assert ending.event == VIDEO_COMPLETED and not ending.forget_idempotency


@pytest.mark.parametrize(("charge", "charged"), [(None, 900), (600, 600), (0, 0)])
def test_completion_charges_the_price_or_what_is_given(charge: int | None, charged: int) -> None:
    ending = completion(LEADER, [], stored=True, charge=charge, now=NOW)
    assert ending.settle is not None
    assert (ending.settle.money_state, ending.settle.charged_micros) == ("charged", charged)
    assert ending.settle.movement.kind == "charge"


def test_a_completion_without_a_reservation_moves_no_money() -> None:
    assert (
        completion(
            replace(LEADER, money_state="none"), [], stored=True, charge=None, now=NOW
        ).settle
        is None
    )


def test_followers_complete_with_the_leaders_figures() -> None:
    end = follower_completion(LEADER, NOW)
    assert (end.status, end.completed_at, end.updated_at) == ("completed", int(NOW), int(NOW))
    assert (end.expires_at, end.delivered_seconds, end.error_code) == (LEADER.expires_at, 5, None)


# (rejected, charge) -> (leader status, money state, charged, kind, idempotency forgotten,
# videos announced)
ALL = ("vid_a", "vid_b", "vid_c")
FAILURES = [
    (False, None, ("failed", "refunded", 0, "refund", False, ALL)),
    (False, 0, ("failed", "refunded", 0, "refund", False, ALL)),  # zero: a refund, not a charge
    (False, 400, ("failed", "charged", 400, "charge", False, ALL)),  # a chain's finished segments
    # A rejected submit is not announced; the videos that joined it are.
    (True, None, ("rejected", "refunded", 0, "refund", True, ("vid_b", "vid_c"))),
]


@pytest.mark.parametrize(("rejected", "charge", "expected"), FAILURES)
def test_failure_table(rejected: bool, charge: int | None, expected: tuple[object, ...]) -> None:
    end = failure_end("upstream_error", "boom", NOW, rejected=rejected)
    ending = failure(LEADER, ["vid_c", "vid_b"], charge=charge, rejected=rejected, now=NOW)
    assert ending.settle is not None
    got = (end.status, ending.settle.money_state, ending.settle.charged_micros)
    movement = (ending.settle.movement.kind, ending.forget_idempotency, ending.notify)
    assert (*got, *movement) == expected
    assert (ending.event, ending.entry) == (VIDEO_FAILED, "drop")
    assert ending.references == 0
    follower = follower_failure(end)
    assert (follower.status, follower.error_code, follower.error_message) == (
        "failed",
        "upstream_error",
        "boom",
    )


def test_a_failure_without_an_entry_drops_none() -> None:
    assert (
        failure(replace(LEADER, cache_key=None), [], charge=None, rejected=False, now=NOW).entry
        is None
    )


@pytest.mark.parametrize(
    ("charge", "amount", "state", "charged", "words"),
    [
        (True, None, "charged", 900, "charged by ops: lost answer"),
        (True, 300, "charged", 300, "charged by ops: lost answer"),
        (False, None, "refunded", 0, "refunded by ops: lost answer"),
    ],
)
def test_unknown_resolution_table(
    charge: bool, amount: int | None, state: str, charged: int, words: str
) -> None:
    end = unknown_resolution_end(charge=charge, actor="ops", reason="lost answer", now=NOW)
    assert (end.status, end.error_code) == ("failed", UNKNOWN_OUTCOME_CODE)
    assert end.error_message.endswith(words)
    ending = unknown_resolution(
        LEADER, ["vid_b"], charge=charge, amount=amount, actor="ops", reason="lost answer", now=NOW
    )
    assert ending.settle is not None
    assert (ending.settle.money_state, ending.settle.charged_micros) == (state, charged)
    assert {row[9:] for row in ending.settle.movement.ledger_rows()} == {("ops", "lost answer")}
    assert (ending.event, ending.notify, ending.entry) == (VIDEO_FAILED, ("vid_a", "vid_b"), "drop")


def test_an_unknown_resolution_keeps_a_given_message() -> None:
    end = unknown_resolution_end(
        charge=True, actor="deadline", reason="r", now=NOW, message="own words"
    )
    assert end.error_message == "own words"
