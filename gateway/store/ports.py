"""The persistence port, split by what each part of the gateway needs: a service annotates the
narrowest port it uses, and a test fake implements only that part. ``Store`` is the union every
database adapter implements (concurrent callers must be safe). Nothing here knows SQL.
Imported through ``gateway.store.base``.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Protocol

from gateway.domain.budgets import BudgetLine, Scope, ScopeRef, Window
from gateway.domain.media import MediaFacts
from gateway.domain.traffic import TrafficScope
from gateway.errors import OutageTypes
from gateway.store.browsing import BrowseStore
from gateway.store.records import (
    Admission,
    AdmissionPlan,
    ApiKey,
    Asset,
    BudgetLimit,
    Deletion,
    IdempotencyRecord,
    Job,
    JobChanges,
    MetricsSnapshot,
    Order,
    Team,
    TrafficLimit,
    UsageRow,
)
from gateway.store.webhook_records import WebhookStore


class SchemaStore(Protocol):
    """The store's own life: migrations, closing, and which driver errors mean "briefly unavailable"."""

    outage_errors: OutageTypes

    async def migrate(self) -> int:
        """Apply pending numbered migrations; return the schema version now in force."""

    async def schema_version(self) -> int: ...

    async def latest_version(self) -> int:
        """The highest migration this code ships (``schema_version`` equals it when current)."""

    async def close(self) -> None: ...


class KeyStore(Protocol):
    """Teams and their gateway keys (authentication, the admin CLI and dashboard)."""

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


class JobStore(Protocol):
    """Jobs, their leases and stored assets: what the API reads and the job runner drives."""

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

    async def attach_upstream_id(self, job_id: str, upstream_id: str, now: float) -> Job | None:
        """Evidence: the upstream has this job as ``upstream_id``. A ``submitting`` or
        ``submit_unknown`` job becomes ``queued`` and due for a poll at once; None otherwise."""

    async def get_asset(self, key: str) -> Asset | None: ...

    async def asset_media(self, keys: Collection[str]) -> dict[str, MediaFacts]:
        """The probed figures of those ``keys`` that have them (for the Video object)."""

    async def live_followers(self, job_id: str) -> int:
        """How many videos coalesced onto this job still wait for it (not deleted)."""

    async def known_assets(self, keys: Collection[str]) -> set[str]:
        """Which of ``keys`` are referenced by an asset row (for the orphan sweep)."""

    async def running_chains(self) -> list[str]:
        """The ``chain_json`` of every chained video still running: its stored segments are
        not orphans yet (the orphan sweep keeps them until the join)."""

    async def attach_media(self, job_id: str, media: Sequence[Asset], now: int) -> None:
        """The job's stored request refers to these blobs: one reference each, once per job."""

    async def expire_jobs(self, now: int, limit: int) -> list[Deletion]:
        """Soft-delete up to ``limit`` jobs whose retention has passed, releasing assets."""

    async def purge_ended_jobs(self, before: int, limit: int) -> list[Deletion]:
        """Delete up to ``limit`` never-charged failed/rejected jobs ended before ``before``."""


class MoneyStore(Protocol):
    """Admission, budgets, traffic limits, the ledger and the settling of unknown outcomes."""

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

    async def set_traffic_limit(self, limit: TrafficLimit, now: int) -> TrafficLimit:
        """Set the limits given (fields left None keep their stored value); the stored row."""

    async def clear_traffic_limit(self, scope: TrafficScope, scope_id: str) -> bool:
        """Forget an owner's own limits (the defaults apply again); False when none were set."""

    async def list_traffic_limits(
        self, scope: TrafficScope | None = None, scope_id: str | None = None
    ) -> list[TrafficLimit]: ...

    async def in_flight_jobs(self, scope: TrafficScope, scope_id: str) -> int:
        """Jobs of this team or key that went upstream and have not finished."""

    async def charge_part(
        self, job_id: str, *, owner: str, amount: int, changes: JobChanges, now: float
    ) -> Job | None:
        """In one transaction, only while ``owner`` holds the lease: apply ``changes`` and,
        when the job's money is reserved, charge ``amount`` of it now (a chained video's
        finished segment); the rest stays reserved until the job settles. None when the lease
        is lost (nothing changes)."""

    async def resolve_unknown(
        self,
        job_id: str,
        *,
        charge: bool,
        actor: str,
        reason: str,
        now: float,
        amount: int | None = None,
        chain_json: str | None = None,
        message: str | None = None,
    ) -> Job | None:
        """In one transaction, only while the job is ``submit_unknown``: end it ``failed``,
        charge (``charge``) or refund its reservation with the ledger rows naming ``actor``
        and ``reason``, fail its followers and drop its cache entry. None when it was not
        ``submit_unknown``. A chained video's settlement adds ``amount`` (the whole charge: its
        finished segments plus, when charged, the unknown one; default the job's cost),
        ``chain_json`` and ``message``, written in the same transaction."""

    async def unknown_outcomes(self, limit: int) -> list[Job]:
        """Up to ``limit`` jobs in ``submit_unknown``, oldest first (what operators settle)."""

    async def idempotency_record(
        self, key_id: str, key: str, now: float
    ) -> IdempotencyRecord | None:
        """The unexpired binding of ``key`` for the gateway key ``key_id``, if any."""

    async def expire_idempotency_keys(self, now: float, limit: int) -> int:
        """Forget up to ``limit`` expired Idempotency-Keys; how many were removed."""


class ReportStore(Protocol):
    """Read-only reports: usage, the books' audit and the metrics snapshot."""

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


class Store(
    SchemaStore, KeyStore, JobStore, MoneyStore, ReportStore, BrowseStore, WebhookStore, Protocol
):
    """Everything the gateway keeps: every port at once (what ``open_store`` returns)."""
