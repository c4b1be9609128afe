"""A job's statuses and what each one means: terminal or not, joinable or not, what OpenAI clients
see, which metrics gauge counts it, and which status may follow which.

The one home of these rules: services, web and both database adapters read them from here (SQL
gets its literal lists from ``sql_list``). Pure: imports only the standard library and ``gateway.domain``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import Field
from typing import Any, ClassVar, Literal, Protocol, TypeVar, get_args

from gateway.domain.ledger import MoneyFacts

# Internal job states. ``submitting`` is a job written before the upstream call (crash-safe);
# ``rejected`` is one the upstream refused at submit time; ``downloading`` is finished upstream
# but not yet in our storage; ``submit_unknown`` is one the upstream may or may not have
# created (a lost answer, a crash between send and record): its reservation stays counted
# until evidence, an operator or the deadline settles it. Clients never see these four as such.
JobStatus = Literal[
    "submitting",
    "submit_unknown",
    "queued",
    "in_progress",
    "downloading",
    "completed",
    "failed",
    "rejected",
]
PublicStatus = Literal["queued", "in_progress", "completed", "failed"]
GaugeState = Literal["queued", "running", "awaiting_download", "outcome_unknown"]

STATUSES: tuple[JobStatus, ...] = get_args(JobStatus)
# Ordered as the partial indexes of migration 0006 spell them (the planner matches the text).
TERMINAL: tuple[JobStatus, ...] = ("completed", "failed", "rejected")
TERMINAL_STATUSES: frozenset[str] = frozenset(TERMINAL)
# Still on its way to a video (the runner works on these; overview counts them as unfinished).
UNFINISHED: tuple[JobStatus, ...] = ("submitting", "queued", "in_progress", "downloading")
# A job whose submit outcome is unknown may never deliver: identical requests start afresh.
UNJOINABLE: tuple[JobStatus, ...] = (*TERMINAL, "submit_unknown")
# The upstream has the job: a poll can tell what became of it.
POLLABLE: tuple[JobStatus, ...] = ("queued", "in_progress")

# Internal job states -> the four statuses OpenAI clients understand (the SDK's poll() returns
# early on anything else). ``submit_unknown``: nothing is known to have started, nothing failed
# yet, so clients keep polling until it is settled (see docs/operations.md).
PUBLIC_STATUS: Mapping[str, PublicStatus] = {
    "submitting": "queued",
    "submit_unknown": "queued",
    "queued": "queued",
    "in_progress": "in_progress",
    "downloading": "in_progress",
    "completed": "completed",
    "failed": "failed",
    "rejected": "failed",
}

GAUGE_STATES: tuple[GaugeState, ...] = ("queued", "running", "awaiting_download", "outcome_unknown")
# Internal job states -> the ``gateway_jobs`` gauge's state label; terminal jobs are not counted.
GAUGE_STATE: Mapping[str, GaugeState] = {
    "submitting": "queued",
    "queued": "queued",
    "in_progress": "running",
    "downloading": "awaiting_download",
    "submit_unknown": "outcome_unknown",
}

# Which status may follow which. A follower (a joined video) moves with its leader, so it may
# end from ``queued`` or ``in_progress`` directly; terminal states are final.
TRANSITIONS: Mapping[str, frozenset[JobStatus]] = {
    "submitting": frozenset(
        {"submit_unknown", "queued", "in_progress", "completed", "failed", "rejected"}
    ),
    "submit_unknown": frozenset({"queued", "in_progress", "failed"}),
    "queued": frozenset({"queued", "in_progress", "downloading", "completed", "failed"}),
    "in_progress": frozenset(
        {"queued", "in_progress", "downloading", "submit_unknown", "completed", "failed"}
    ),
    "downloading": frozenset({"downloading", "completed", "failed"}),
    "completed": frozenset(),
    "failed": frozenset(),
    "rejected": frozenset(),
}


def is_terminal(status: str) -> bool:
    """The job has ended (completed, failed or rejected): nothing about it changes any more."""
    return status in TERMINAL_STATUSES


def can_follow(old: str, new: str) -> bool:
    """Whether a job in ``old`` may move to ``new``."""
    return new in TRANSITIONS.get(old, frozenset())


def public_status(status: str) -> PublicStatus:
    """The OpenAI status clients see for an internal one."""
    return PUBLIC_STATUS[status]


def gauge_counts(rows: Iterable[tuple[str, int]]) -> dict[str, int]:
    """(status, count) rows of the unfinished jobs -> the ``gateway_jobs`` gauge's counts."""
    counts: dict[str, int] = dict.fromkeys(GAUGE_STATES, 0)
    for status, count in rows:
        state = GAUGE_STATE.get(status)
        if state is not None:
            counts[state] += count
    return counts


def sql_list(statuses: Iterable[str]) -> str:
    """``statuses`` as an SQL literal list, ``('a', 'b')``: for constant SQL only (the names
    are this module's, never input)."""
    return "(" + ", ".join(f"'{status}'" for status in statuses) + ")"


# The SQL spelling of "the job has ended", as the partial indexes of migration 0006 write it.
TERMINAL_SQL = sql_list(TERMINAL)


class JobFacts(MoneyFacts, Protocol):
    """What the decisions read of a job (``store.base.Job`` has all of these)."""

    @property
    def status(self) -> JobStatus: ...
    @property
    def progress(self) -> int: ...
    @property
    def upstream_id(self) -> str | None: ...
    @property
    def deleted_at(self) -> int | None: ...
    @property
    def video_asset(self) -> str | None: ...
    @property
    def last_frame_asset(self) -> str | None: ...
    @property
    def delivered_seconds(self) -> int | None: ...
    @property
    def expires_at(self) -> int | None: ...
    @property
    def cache_key(self) -> str | None: ...


class JobRecord(JobFacts, Protocol):
    """A job record the decisions may copy with changes (``dataclasses.replace``)."""

    __dataclass_fields__: ClassVar[dict[str, Field[Any]]]


# A job record type: the decisions return the caller's own record type.
J = TypeVar("J", bound=JobRecord)
