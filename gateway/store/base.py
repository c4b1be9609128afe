"""The persistence port: records and the ``Store`` protocol every database adapter implements.

Services talk only to this protocol; ``open_store(url)`` picks the adapter by URL scheme.
Nothing here knows SQL.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, TypedDict

from gateway.domain.budgets import BudgetLine, Scope, ScopeRef, Window
from gateway.domain.media import MediaFacts
from gateway.domain.traffic import TrafficDefaults, TrafficScope
from gateway.domain.video_request import VideoRequest
from gateway.errors import OutageTypes
from gateway.store.browsing import BrowseStore
from gateway.store.webhook_records import WebhookStore

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
TERMINAL_STATUSES: frozenset[str] = frozenset({"completed", "failed", "rejected"})
Order = Literal["asc", "desc"]
MoneyState = Literal["none", "reserved", "charged", "refunded"]
CacheResult = Literal["miss", "hit", "coalesced", "bypass"]


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


# error.code of a job whose submit outcome was unknown (while unknown, and once settled).
UNKNOWN_OUTCOME_CODE = "submit_outcome_unknown"


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
# so the two cannot drift (tests/store/test_job_changes.py checks it against ``Job``).
UPDATABLE_JOB_FIELDS: frozenset[str] = frozenset(JobChanges.__optional_keys__)


class Store(BrowseStore, WebhookStore, Protocol):
    """Everything the gateway keeps. Implementations must be safe for concurrent callers."""

    # The driver's exceptions that mean "the database is briefly unavailable" (answered 503).
    outage_errors: OutageTypes

    async def migrate(self) -> int:
        """Apply pending numbered migrations; return the schema version now in force."""

    async def schema_version(self) -> int: ...

    async def latest_version(self) -> int:
        """The highest migration this code ships (``schema_version`` equals it when current)."""

    async def close(self) -> None: ...

    # Teams and keys
    async def create_team(self, name: str, now: int) -> Team:
        """Create a team; raises ``gateway.errors.Conflict`` when the name is taken."""

    async def team_by_name(self, name: str) -> Team | None: ...

    async def team_by_id(self, team_id: str) -> Team | None: ...

    async def list_teams(self) -> list[Team]: ...

    async def create_key(
        self, *, team_id: str, name: str, key_hash: str, prefix: str, now: int
    ) -> ApiKey: ...

    async def key_by_hash(self, key_hash: str) -> ApiKey | None:
        """The key with this hash, revoked or not (the caller checks ``active``)."""

    async def list_keys(self, team_id: str | None = None) -> list[ApiKey]: ...

    async def revoke_key(self, key_id: str, now: int) -> bool:
        """Revoke; False when no such active key exists."""

    # Jobs
    async def insert_job(self, job: Job) -> None: ...

    async def get_job(
        self, job_id: str, team_id: str | None = None, *, include_deleted: bool = False
    ) -> Job | None:
        """The job, restricted to ``team_id`` when given; deleted jobs only when asked."""

    async def update_job(self, job_id: str, changes: JobChanges) -> Job | None:
        """Apply ``changes`` (keys from ``UPDATABLE_JOB_FIELDS``); return the new row."""

    async def list_jobs(
        self, team_id: str, *, after: str | None, limit: int, order: Order
    ) -> tuple[list[Job], bool]:
        """A page of the team's visible jobs ordered by id, and whether more follow; fields a
        list never renders are not read (``store/listing.py``)."""

    async def delete_job(self, job_id: str, team_id: str, now: int) -> Deletion | None:
        """Hide a job from its team (soft delete) and release its assets in one step;
        None when it was not visible."""

    # The job runner
    async def claim_due_jobs(
        self, *, owner: str, now: float, lease_seconds: float, limit: int
    ) -> list[Job]:
        """Atomically lease up to ``limit`` jobs whose ``next_check_at`` has come and whose
        lease is free or expired; two runners never get the same job."""

    async def extend_lease(self, job_id: str, *, owner: str, until: float) -> bool:
        """Keep a lease during long work; False when ``owner`` no longer holds it."""

    async def update_leased_job(
        self, job_id: str, *, owner: str, changes: JobChanges
    ) -> Job | None:
        """``update_job`` only while ``owner`` holds the lease; None when it was lost."""

    async def update_job_if_status(
        self, job_id: str, *, statuses: Collection[str], changes: JobChanges
    ) -> Job | None:
        """``update_job`` only while the job is in one of ``statuses`` and not leased."""

    async def complete_job(
        self,
        job_id: str,
        *,
        owner: str,
        changes: JobChanges,
        video: Asset | None,
        last_frame: Asset | None,
        charge: int | None = None,
    ) -> Job | None:
        """In one transaction, only while ``owner`` holds the lease: record the stored assets
        (one more reference each), the job's final state, charge ``charge`` micro-USD (default:
        its reserved price) in place of its reservation, complete every video coalesced onto
        it, and make its cache entry a servable hit. None when the lease was lost."""

    async def fail_job(
        self,
        job_id: str,
        *,
        owner: str | None,
        code: str,
        message: str,
        now: float,
        rejected: bool = False,
        charge: int | None = None,
    ) -> Job | None:
        """In one transaction: mark the job failed (``rejected`` when the upstream refused the
        submit), refund its reservation, fail every video coalesced onto it and drop its cache
        entry. With ``owner``, only while that runner holds the lease; without, only while the
        job is still ``submitting``. None when neither held. ``charge`` (a chained video whose
        finished segments are paid for) charges that much of the reservation, refunding the rest."""

    # Admission, budgets and the ledger
    async def admit_job(self, plan: AdmissionPlan) -> Admission:
        """Decide and record a create atomically: a cache hit, a join onto a running identical
        job, or a new job whose price is reserved against every scope's limits (raising
        ``BudgetExceeded`` when one does not fit) and, when asked, registered as in flight."""

    async def budget_lines(self, scopes: tuple[ScopeRef, ...], now: float) -> list[BudgetLine]:
        """Limits, spend and reservations of these scopes in the windows current at ``now``."""

    async def set_limit(self, limit: BudgetLimit, now: int) -> None: ...

    async def clear_limit(self, scope: Scope, scope_id: str, window: Window) -> bool: ...

    async def list_limits(
        self, scope: Scope | None = None, scope_id: str | None = None
    ) -> list[BudgetLimit]: ...

    # Concurrency and rate limits (enforced by ``admit_job`` when the plan carries defaults)
    async def set_traffic_limit(self, limit: TrafficLimit, now: int) -> TrafficLimit:
        """Set the limits given (fields left None keep their stored value); the stored row."""

    async def clear_traffic_limit(self, scope: TrafficScope, scope_id: str) -> bool:
        """Forget an owner's own limits (the defaults apply again); False when none were set."""

    async def list_traffic_limits(
        self, scope: TrafficScope | None = None, scope_id: str | None = None
    ) -> list[TrafficLimit]: ...

    async def in_flight_jobs(self, scope: TrafficScope, scope_id: str) -> int:
        """Jobs of this team or key that went upstream and have not finished."""

    async def audit(self) -> list[str]:
        """Every difference between the counters and the ledger, and every finished job whose
        money is still reserved; an empty list means the books balance."""

    async def audit_team(self, team_id: str, month: str | None = None) -> list[str]:
        """``audit`` of one team and its keys only: their counters (every window, or with
        ``month`` = ``YYYY-MM`` that month's day and month windows) against their own ledger
        rows, and the team's finished jobs still holding money. Reads only that team's rows
        (the ledger's scope index), so its cost does not grow with the rest of the ledger."""

    async def metrics_snapshot(self, now: float) -> MetricsSnapshot:
        """Jobs by state, money reserved, storage used and team/org budget headroom now."""

    async def usage(self, team_id: str, *, since: float, by: str) -> list[UsageRow]:
        """The team's money and videos since ``since`` grouped ``by`` model, key or day."""

    async def get_asset(self, key: str) -> Asset | None: ...

    async def charge_part(
        self, job_id: str, *, owner: str, amount: int, changes: JobChanges, now: float
    ) -> Job | None:
        """In one transaction, only while ``owner`` holds the lease: apply ``changes`` and,
        when the job's money is reserved, charge ``amount`` of it now (a chained video's
        finished segment); the rest stays reserved until the job settles. None when the lease
        is lost (nothing changes)."""

    async def asset_media(self, keys: Collection[str]) -> dict[str, MediaFacts]:
        """The probed figures of those ``keys`` that have them (for the Video object)."""

    async def live_followers(self, job_id: str) -> int:
        """How many videos coalesced onto this job still wait for it (not deleted)."""

    async def known_assets(self, keys: Collection[str]) -> set[str]:
        """Which of ``keys`` are referenced by an asset row (for the orphan sweep)."""

    async def running_chains(self) -> list[str]:
        """The ``chain_json`` of every chained video still running: its stored segments are
        not orphans yet (the orphan sweep keeps them until the join)."""

    async def expire_jobs(self, now: int, limit: int) -> list[Deletion]:
        """Soft-delete up to ``limit`` jobs whose retention has passed, releasing assets."""

    # Unknown outcomes and idempotency keys
    async def resolve_unknown(
        self, job_id: str, *, charge: bool, actor: str, reason: str, now: float
    ) -> Job | None:
        """In one transaction, only while the job is ``submit_unknown``: end it ``failed``,
        charge (``charge``) or refund its reservation with the ledger rows naming ``actor``
        and ``reason``, fail its followers and drop its cache entry. None when it was not
        ``submit_unknown``."""

    async def unknown_outcomes(self, limit: int) -> list[Job]:
        """Up to ``limit`` jobs in ``submit_unknown``, oldest first (what operators settle)."""

    async def attach_upstream_id(self, job_id: str, upstream_id: str, now: float) -> Job | None:
        """Evidence: the upstream has this job as ``upstream_id``. A ``submitting`` or
        ``submit_unknown`` job becomes ``queued`` and due for a poll at once; None otherwise."""

    async def idempotency_record(
        self, key_id: str, key: str, now: float
    ) -> IdempotencyRecord | None:
        """The unexpired binding of ``key`` for the gateway key ``key_id``, if any."""

    async def expire_idempotency_keys(self, now: float, limit: int) -> int:
        """Forget up to ``limit`` expired Idempotency-Keys; how many were removed."""

    async def attach_media(self, job_id: str, media: Sequence[Asset], now: int) -> None:
        """The job's stored request refers to these blobs: one reference each, once per job."""

    async def purge_ended_jobs(self, before: int, limit: int) -> list[Deletion]:
        """Delete up to ``limit`` never-charged failed/rejected jobs ended before ``before``."""
