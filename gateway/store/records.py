"""The records the persistence port speaks: jobs, keys, money and the typed job changes.

Plain frozen dataclasses and types, shared by the services and every adapter; nothing here
knows SQL. Imported through ``gateway.store.base``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypedDict

from gateway.domain.admission import CacheResult as CacheResult
from gateway.domain.budgets import Scope, ScopeRef, Window
from gateway.domain.jobs import TERMINAL_STATUSES as TERMINAL_STATUSES
from gateway.domain.jobs import JobStatus as JobStatus
from gateway.domain.ledger import MoneyState as MoneyState
from gateway.domain.media import MediaFacts
from gateway.domain.outcomes import UNKNOWN_OUTCOME_CODE as UNKNOWN_OUTCOME_CODE
from gateway.domain.traffic import TrafficDefaults, TrafficScope
from gateway.domain.video_request import VideoRequest

Order = Literal["asc", "desc"]


@dataclass(frozen=True, slots=True)
class Team:
    id: str
    name: str
    created_at: int


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A gateway key as stored: never the plaintext, only its hash and a display prefix."""

    id: str
    team_id: str
    name: str
    prefix: str
    created_at: int
    revoked_at: int | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True, slots=True)
class Job:
    """One client-visible video and the upstream job behind it."""

    id: str
    team_id: str
    key_id: str
    model: str
    request: VideoRequest  # stored as its ``to_json`` (the adapters' row codecs)
    status: JobStatus
    created_at: int
    updated_at: int
    progress: int = 0
    upstream_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    completed_at: int | None = None
    refreshed_at: float | None = None
    upstream_video_url: str | None = None
    upstream_last_frame_url: str | None = None
    deleted_at: int | None = None
    lease_owner: str | None = None
    locked_until: float | None = None
    next_check_at: float | None = None
    attempts: int = 0
    upstream_finished_at: float | None = None
    video_asset: str | None = None
    last_frame_asset: str | None = None
    expires_at: int | None = None
    price_micros: int = 0
    cost_micros: int = 0
    charged_micros: int | None = None
    money_state: MoneyState = "none"
    reserved_at: float | None = None
    delivered_seconds: int | None = None
    cache_key: str | None = None
    cache_result: CacheResult | None = None
    leader_id: str | None = None
    chain_json: str | None = None  # a chained video's segments (gateway/domain/chains.py)
    settled_micros: int = 0  # already charged of the reservation (a chain's finished segments)


@dataclass(frozen=True, slots=True)
class Asset:
    """A stored object (named by its sha256) that finished jobs point at."""

    key: str
    size: int
    content_type: str
    media: MediaFacts | None = None  # the probe's figures, for videos


@dataclass(frozen=True, slots=True)
class BudgetLimit:
    """A cap on what one scope may spend in one window, in micro-USD."""

    scope: Scope
    scope_id: str
    window: Window
    limit: int


@dataclass(frozen=True, slots=True)
class TrafficLimit:
    """A team's or key's own concurrency and rate limits (None: the configured default; 0: none)."""

    scope: TrafficScope
    scope_id: str
    max_in_flight_jobs: int | None = None
    requests_per_minute: int | None = None


@dataclass(frozen=True, slots=True)
class AdmissionPlan:
    """Everything ``admit_job`` needs to decide, in one transaction, what a create becomes.

    ``job`` is the row to insert when the request goes upstream (status ``submitting``,
    ``cost_micros`` set). ``lookup``: serve a finished identical video or join a running one;
    ``register``: become the in-flight entry others join. ``charge_hits``: a hit costs its
    price too (reserved and charged at once).
    """

    job: Job
    scopes: tuple[ScopeRef, ...]
    now: float
    cache_key: str | None = None
    lookup: bool = False
    register: bool = False
    charge_hits: bool = False
    cache_ttl_seconds: float | None = None
    # A hit is a new video: it is kept this long from now (None: forever), like any other.
    retention_seconds: float | None = None
    # Bind this Idempotency-Key to the new video in the same transaction (unique per key).
    idempotency: IdempotencyRecord | None = None
    # Concurrency and rate limits to enforce for the job's team and key (None: none at all).
    traffic: TrafficDefaults | None = None


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    """A client's ``Idempotency-Key`` bound to the video its first request created.

    Scoped to the calling gateway key; ``fingerprint`` is the hash of the canonical request, so
    a reuse with a different body is told apart from a retry."""

    key_id: str
    key: str
    fingerprint: str
    job_id: str
    created_at: float
    expires_at: float


class IdempotencyKeyTaken(Exception):
    """``admit_job`` found the plan's Idempotency-Key already bound (unexpired): nothing was
    created; ``record`` says to what it is bound."""

    def __init__(self, record: IdempotencyRecord) -> None:
        super().__init__(record.job_id)
        self.record = record


class KeyRevoked(Exception):
    """``admit_job`` found the calling key revoked (another replica's cache was stale)."""


@dataclass(frozen=True, slots=True)
class Admission:
    """What a create became: ``miss``/``bypass`` (submit ``job`` upstream), ``hit`` (already
    completed) or ``coalesced`` (joined ``job.leader_id``)."""

    job: Job
    outcome: CacheResult
    # The answer to an earlier request with the same Idempotency-Key: nothing was created.
    replayed: bool = False

    @property
    def submit_upstream(self) -> bool:
        return self.outcome in ("miss", "bypass") and not self.replayed


@dataclass(frozen=True, slots=True)
class UsageRow:
    """One line of a usage report (micro-USD and counts for one group)."""

    group: str
    spent: int
    reserved: int
    refunded: int
    videos: int
    seconds: int
    saved: int = 0
    videos_saved: int = 0


@dataclass(frozen=True, slots=True)
class MetricsSnapshot:
    """Shared state for the metrics gauges, read from the database at scrape time."""

    jobs_by_state: dict[str, int]  # queued, running, awaiting_download
    reserved_micros: int
    stored_bytes: int
    stored_objects: int
    # (scope "team"|"org", team name or "", window) -> (limit, remaining) in micro-USD
    budgets: dict[tuple[str, str, str], tuple[int, int]]


@dataclass(frozen=True, slots=True)
class Deletion:
    """What deleting (or expiring) a job released: asset keys no job refers to any more."""

    job_id: str
    released: tuple[str, ...] = ()


class JobChanges(TypedDict, total=False):
    """The columns a job update may change (everything but identity, ownership and money),
    with their ``Job`` types: mypy checks every key a caller writes."""

    chain_json: str | None
    status: JobStatus
    progress: int
    upstream_id: str | None
    error_code: str | None
    error_message: str | None
    completed_at: int | None
    refreshed_at: float | None
    upstream_video_url: str | None
    upstream_last_frame_url: str | None
    updated_at: int
    lease_owner: str | None
    locked_until: float | None
    next_check_at: float | None
    attempts: int
    upstream_finished_at: float | None
    expires_at: int | None
    delivered_seconds: int | None


# What the adapters' SQL builders may splice into ``UPDATE jobs SET``: derived from the type,
# so the two cannot drift (tests/store/test_job_rows.py checks it against ``Job``).
UPDATABLE_JOB_FIELDS: frozenset[str] = frozenset(JobChanges.__optional_keys__)
