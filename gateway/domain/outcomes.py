"""How a job ends, decided from the rows an adapter changed under its locks: completion (the
leader and the videos that joined it, their asset references, the charge, the cache entry made
a servable hit), failure (refund, followers failed, the entry dropped) and the settling of an
unknown submit outcome (charge or refund, naming who decided and why).

The adapter updates the leader's row (conditional on its lease or status) and its followers'
rows with the values given here, then applies the ``Ending`` returned: ledger movements, asset
references, webhook events, the cache entry. Pure: imports only the standard library and
``gateway.domain``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from gateway.domain.jobs import JobFacts, JobStatus
from gateway.domain.ledger import Settlement, settlement
from gateway.domain.webhooks import VIDEO_COMPLETED, VIDEO_FAILED

# error.code of a job whose submit outcome was unknown (while unknown, and once settled).
UNKNOWN_OUTCOME_CODE = "submit_outcome_unknown"

# What happens to the cache entry the job leads: made a servable hit, handed to a follower
# that keeps the stored copy (the leader was deleted), or dropped (the next request starts
# afresh). None: the job leads no entry.
EntryChange = Literal["serve", "hand_over", "drop"]


@dataclass(frozen=True, slots=True)
class FollowerEnd:
    """The columns every unfinished follower of an ending leader takes."""

    status: JobStatus
    completed_at: int
    updated_at: int
    error_code: str | None = None
    error_message: str | None = None
    expires_at: int | None = None
    delivered_seconds: int | None = None


@dataclass(frozen=True, slots=True)
class LeaderEnd:
    """The columns a failing (or resolved) leader takes; its lease and schedule are cleared."""

    status: JobStatus
    error_code: str
    error_message: str
    completed_at: int
    updated_at: int


@dataclass(frozen=True, slots=True)
class Ending:
    """Everything an ended job writes besides its own and its followers' rows."""

    settle: Settlement | None
    event: str  # the webhook event each of ``notify`` gets
    # The videos announced: the leader first (not a rejected one: the upstream refused it and
    # the client was answered with an error, so there is no video to tell of), then its
    # followers by id. The adapters emit exactly these (those not deleted).
    notify: tuple[str, ...]
    entry: EntryChange | None = None
    heir: str | None = None  # with ``hand_over``: the follower that now leads the entry
    references: int = 0  # each stored asset gains this many references
    forget_idempotency: bool = False


def follower_completion(leader: JobFacts, now: float) -> FollowerEnd:
    """A joined video completes with its leader's figures (its assets: those the leader stored)."""
    return FollowerEnd(
        "completed",
        int(now),
        int(now),
        expires_at=leader.expires_at,
        delivered_seconds=leader.delivered_seconds,
    )


def completion(
    leader: JobFacts,
    followers: Sequence[tuple[str, bool]],
    *,
    stored: bool,
    charge: int | None,
    now: float,
) -> Ending:
    """``leader`` as its completion left it (no assets when it was deleted meanwhile),
    ``followers`` completed with it as (id, deleted), ``stored`` whether a video was stored;
    ``charge`` (default: its reserved price) replaces its reservation."""
    live = sorted(follower_id for follower_id, deleted in followers if not deleted)
    entry: EntryChange | None = None
    heir = None
    if leader.cache_key is not None and leader.video_asset is not None:
        entry = "serve"  # servable while both the video is kept and the entry's own TTL lasts
    elif leader.cache_key is not None and stored and live:
        entry, heir = "hand_over", live[0]  # a follower keeps the stored copy: it serves next
    elif leader.cache_key is not None:
        entry = "drop"
    return Ending(
        settlement(leader, charge=leader.cost_micros if charge is None else charge, now=now),
        VIDEO_COMPLETED,
        (leader.id, *live),
        entry,
        heir,
        references=len(live) + (1 if leader.deleted_at is None else 0),
    )


def failure_end(code: str, message: str, now: float, *, rejected: bool = False) -> LeaderEnd:
    """A failed leader (``rejected``: the upstream refused the submit)."""
    return LeaderEnd("rejected" if rejected else "failed", code, message, int(now), int(now))


def follower_failure(end: LeaderEnd) -> FollowerEnd:
    """A joined video fails with its leader's error (never ``rejected``: it was not submitted)."""
    return FollowerEnd(
        "failed", end.completed_at, end.updated_at, end.error_code, end.error_message
    )


def failure(
    leader: JobFacts, followers: Sequence[str], *, charge: int | None, rejected: bool, now: float
) -> Ending:
    """Refund the failed leader (or charge ``charge``: a chained video's finished segments),
    fail its followers, drop its entry. A rejected submit created nothing upstream and
    charged nothing: its Idempotency-Key is forgotten so that a retry may try again, and it
    is not announced (its followers, which the client did see, are)."""
    announced = () if rejected else (leader.id,)
    return Ending(
        settlement(leader, charge=charge or None, now=now),
        VIDEO_FAILED,
        (*announced, *sorted(followers)),
        "drop" if leader.cache_key is not None else None,
        forget_idempotency=rejected,
    )


def unknown_resolution_end(
    *, charge: bool, actor: str, reason: str, now: float, message: str | None = None
) -> LeaderEnd:
    """A job whose submit outcome was unknown, settled by ``actor`` for ``reason``."""
    settled = "charged" if charge else "refunded"
    text = (
        message or f"The outcome of the upstream submit was unknown; {settled} by {actor}: {reason}"
    )
    return failure_end(UNKNOWN_OUTCOME_CODE, text, now)


def unknown_resolution(
    leader: JobFacts,
    followers: Sequence[str],
    *,
    charge: bool,
    amount: int | None,
    actor: str,
    reason: str,
    now: float,
) -> Ending:
    """Charge ``amount`` (default: the reserved price) or refund, the ledger rows naming
    ``actor`` and ``reason``; fail the followers and drop the entry."""
    total = leader.cost_micros if amount is None else amount
    return Ending(
        settlement(leader, charge=total if charge else None, now=now, actor=actor, reason=reason),
        VIDEO_FAILED,
        (leader.id, *sorted(followers)),
        "drop" if leader.cache_key is not None else None,
    )
