"""``SqliteStore``: the ``Store`` port on one SQLite database, a flat class of one-line methods.

Each method hands one function of this package (named as the method, in the module of its
concern) to a connection's thread: ``_write`` runs it on the writer inside ``BEGIN IMMEDIATE``
... ``COMMIT`` (group-committed with the writes queued beside it), ``_read`` on the read-only
connection. One hop per operation however many statements it runs (see ``database``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Collection, Sequence
from typing import Any, Self, TypeVar

from gateway.domain.budgets import BudgetLine, Scope, ScopeRef, Window
from gateway.domain.media import MediaFacts
from gateway.domain.traffic import TrafficScope
from gateway.errors import OutageTypes
from gateway.store.base import (
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
from gateway.store.browsing import JobFilter, LedgerLine
from gateway.store.migrations import latest_version
from gateway.store.sqlite import (
    admission,
    assets,
    browse,
    endings,
    idempotency,
    jobs,
    keys,
    leases,
    money,
    reports,
    traffic,
    webhooks,
)
from gateway.store.sqlite.database import BUSY_TIMEOUT_SECONDS, DIALECT, Database, schema_version
from gateway.store.webhook_records import (
    AttemptResult,
    EndpointStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookStats,
)

T = TypeVar("T")


class SqliteStore:
    """``Store`` on one SQLite database; safe for concurrent callers and processes."""

    outage_errors: OutageTypes = (sqlite3.OperationalError,)  # "database is locked"

    def __init__(self, database: Database) -> None:
        self._database = database
        self._read = database.read
        self._write = database.write

    @classmethod
    async def open(cls, url: str, *, busy_timeout_seconds: float = BUSY_TIMEOUT_SECONDS) -> Self:
        """Connect to ``url``'s database (made if missing); writes wait out a lock, then 503."""
        return cls(await Database.open(url, busy_timeout_seconds=busy_timeout_seconds))

    async def close(self) -> None:
        await self._database.close()

    async def _update(self, fn: Callable[..., T], changes: JobChanges, *args: Any) -> T:
        """An update on the writer; one with no changes only reads (on the reader)."""
        return await (self._write if changes else self._read)(fn, *args)

    # -- SchemaStore ----------------------------------------------------------------------

    async def migrate(self) -> int:
        return await self._database.migrate()

    async def schema_version(self) -> int:
        return await self._read(schema_version)

    async def latest_version(self) -> int:
        return latest_version(DIALECT)

    # -- KeyStore -------------------------------------------------------------------------

    async def create_team(self, name: str, now: int) -> Team:
        return await self._write(keys.create_team, name, now)

    async def team_by_name(self, name: str) -> Team | None:
        return await self._read(keys.team_by_name, name)

    async def team_by_id(self, team_id: str) -> Team | None:
        return await self._read(keys.team_by_id, team_id)

    async def list_teams(self) -> list[Team]:
        return await self._read(keys.list_teams)

    async def create_key(
        self, *, team_id: str, name: str, key_hash: str, prefix: str, now: int
    ) -> ApiKey:
        return await self._write(keys.create_key, team_id, name, key_hash, prefix, now)

    async def key_by_hash(self, key_hash: str) -> ApiKey | None:
        return await self._read(keys.key_by_hash, key_hash)

    async def list_keys(self, team_id: str | None = None) -> list[ApiKey]:
        return await self._read(keys.list_keys, team_id)

    async def revoke_key(self, key_id: str, now: int) -> bool:
        return await self._write(keys.revoke_key, key_id, now)

    # -- JobStore: jobs, leases, endings, assets --------------------------------------------

    async def insert_job(self, job: Job) -> None:
        await self._write(jobs.insert_job, job)

    async def get_job(
        self, job_id: str, team_id: str | None = None, *, include_deleted: bool = False
    ) -> Job | None:
        return await self._read(jobs.get_job, job_id, team_id, include_deleted)

    async def update_job(self, job_id: str, changes: JobChanges) -> Job | None:
        """Apply ``changes``; soft-deleted jobs are updated too (the runner still settles them)."""
        return await self._update(jobs.update_job, changes, job_id, changes.copy())

    async def list_jobs(
        self, team_id: str, *, after: str | None, limit: int, order: Order
    ) -> tuple[list[Job], bool]:
        return await self._read(jobs.list_jobs, team_id, after, limit, order)

    async def delete_job(self, job_id: str, team_id: str, now: int) -> Deletion | None:
        return await self._write(jobs.delete_job, job_id, team_id, now)

    async def claim_due_jobs(
        self, *, owner: str, now: float, lease_seconds: float, limit: int
    ) -> list[Job]:
        return await self._write(leases.claim_due_jobs, owner, now, lease_seconds, limit)

    async def extend_lease(self, job_id: str, *, owner: str, until: float) -> bool:
        return await self._write(leases.extend_lease, job_id, owner, until)

    async def update_leased_job(
        self, job_id: str, *, owner: str, changes: JobChanges
    ) -> Job | None:
        return await self._update(leases.update_leased_job, changes, job_id, owner, changes.copy())

    async def update_job_if_status(
        self, job_id: str, *, statuses: Collection[str], changes: JobChanges
    ) -> Job | None:
        update = jobs.update_job_if_status
        return await self._update(update, changes, job_id, tuple(statuses), changes.copy())

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
        complete = endings.complete_job
        return await self._write(complete, job_id, owner, changes.copy(), video, last_frame, charge)

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
        fail = endings.fail_job
        return await self._write(fail, job_id, owner, code, message, now, rejected, charge)

    async def attach_upstream_id(self, job_id: str, upstream_id: str, now: float) -> Job | None:
        return await self._write(endings.attach_upstream_id, job_id, upstream_id, now)

    async def get_asset(self, key: str) -> Asset | None:
        return await self._read(assets.get_asset, key)

    async def asset_media(self, keys: Collection[str]) -> dict[str, MediaFacts]:
        return await self._read(assets.asset_media, list(keys))

    async def live_followers(self, job_id: str) -> int:
        return await self._read(leases.live_followers, job_id)

    async def known_assets(self, keys: Collection[str]) -> set[str]:
        return await self._read(assets.known_assets, list(keys))

    async def running_chains(self) -> list[str]:
        return await self._read(leases.running_chains)

    async def attach_media(self, job_id: str, media: Sequence[Asset], now: int) -> None:
        await self._write(assets.attach_media, job_id, list(media), now)

    async def expire_jobs(self, now: int, limit: int) -> list[Deletion]:
        return await self._write(assets.expire_jobs, now, limit)

    async def purge_ended_jobs(self, before: int, limit: int) -> list[Deletion]:
        return await self._write(assets.purge_ended_jobs, before, limit)

    # -- MoneyStore: admission, budgets, traffic limits, unknown outcomes -------------------

    async def admit_job(self, plan: AdmissionPlan) -> Admission:
        return await self._write(admission.admit_job, plan)

    async def budget_lines(self, scopes: tuple[ScopeRef, ...], now: float) -> list[BudgetLine]:
        return await self._read(money.lines_for, scopes, now)

    async def set_limit(self, limit: BudgetLimit, now: int) -> None:
        await self._write(money.set_limit, limit, now)

    async def clear_limit(self, scope: Scope, scope_id: str, window: Window) -> bool:
        return await self._write(money.clear_limit, scope, scope_id, window)

    async def list_limits(
        self, scope: Scope | None = None, scope_id: str | None = None
    ) -> list[BudgetLimit]:
        return await self._read(money.list_limits, scope, scope_id)

    async def set_traffic_limit(self, limit: TrafficLimit, now: int) -> TrafficLimit:
        return await self._write(traffic.set_traffic_limit, limit, now)

    async def clear_traffic_limit(self, scope: TrafficScope, scope_id: str) -> bool:
        return await self._write(traffic.clear_traffic_limit, scope, scope_id)

    async def list_traffic_limits(
        self, scope: TrafficScope | None = None, scope_id: str | None = None
    ) -> list[TrafficLimit]:
        return await self._read(traffic.list_traffic_limits, scope, scope_id)

    async def in_flight_jobs(self, scope: TrafficScope, scope_id: str) -> int:
        return await self._read(traffic.in_flight_jobs, scope, scope_id)

    async def charge_part(
        self, job_id: str, *, owner: str, amount: int, changes: JobChanges, now: float
    ) -> Job | None:
        return await self._write(money.charge_part, job_id, owner, amount, changes.copy(), now)

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
        settle = (charge, actor, reason, now, amount, chain_json, message)
        return await self._write(endings.resolve_unknown, job_id, *settle)

    async def unknown_outcomes(self, limit: int) -> list[Job]:
        return await self._read(idempotency.unknown_outcomes, limit)

    async def idempotency_record(
        self, key_id: str, key: str, now: float
    ) -> IdempotencyRecord | None:
        return await self._read(idempotency.idempotency_record, key_id, key, now)

    async def expire_idempotency_keys(self, now: float, limit: int) -> int:
        return await self._write(idempotency.expire_idempotency_keys, now, limit)

    # -- ReportStore ----------------------------------------------------------------------

    async def metrics_snapshot(self, now: float) -> MetricsSnapshot:
        return await self._read(reports.metrics_snapshot, now)

    async def audit(self) -> list[str]:
        return await self._read(reports.audit)

    async def audit_team(self, team_id: str, month: str | None = None) -> list[str]:
        return await self._read(reports.audit_team, team_id, month)

    async def usage(self, team_id: str, *, since: float, by: str) -> list[UsageRow]:
        return await self._read(reports.usage, team_id, since, by)

    # -- BrowseStore ----------------------------------------------------------------------

    async def find_jobs(
        self, where: JobFilter, *, before: str | None, limit: int
    ) -> tuple[list[Job], bool]:
        return await self._read(browse.find_jobs, where, before, limit)

    async def ledger_lines(self, job_id: str) -> list[LedgerLine]:
        return await self._read(browse.ledger_lines, job_id)

    # -- WebhookStore ---------------------------------------------------------------------

    async def insert_endpoint(self, endpoint: WebhookEndpoint) -> None:
        await self._write(webhooks.insert_endpoint, endpoint)

    async def get_endpoint(
        self, endpoint_id: str, team_id: str | None = None
    ) -> WebhookEndpoint | None:
        return await self._read(webhooks.get_endpoint, endpoint_id, team_id)

    async def list_endpoints(
        self, team_id: str | None, *, after: str | None = None, limit: int = 100
    ) -> tuple[list[WebhookEndpoint], bool]:
        return await self._read(webhooks.list_endpoints, team_id, after, limit)

    async def count_endpoints(self, team_id: str) -> int:
        return await self._read(webhooks.count_endpoints, team_id)

    async def update_endpoint(
        self,
        endpoint_id: str,
        *,
        now: int,
        name: str | None = None,
        url: str | None = None,
        event_types: tuple[str, ...] | None = None,
        status: EndpointStatus | None = None,
        disabled_reason: str | None = None,
    ) -> WebhookEndpoint | None:
        fields = (name, url, event_types, status, disabled_reason)
        return await self._write(webhooks.update_endpoint, endpoint_id, now, *fields)

    async def replace_secret(
        self,
        endpoint_id: str,
        *,
        sealed: str,
        hint: str,
        now: int,
        previous_sealed: str | None,
        previous_expires_at: float | None,
    ) -> WebhookEndpoint | None:
        secret = (sealed, hint, now, previous_sealed, previous_expires_at)
        return await self._write(webhooks.replace_secret, endpoint_id, *secret)

    async def delete_endpoint(self, endpoint_id: str) -> bool:
        return await self._write(webhooks.delete_endpoint, endpoint_id)

    async def claim_deliveries(
        self, *, owner: str, now: float, lease_seconds: float, limit: int, per_endpoint: int
    ) -> list[WebhookDelivery]:
        claim = webhooks.claim_deliveries
        return await self._write(claim, owner, now, lease_seconds, limit, per_endpoint)

    async def record_attempt(
        self,
        attempt: WebhookAttempt,
        *,
        owner: str,
        next_attempt_at: float | None,
        disable_after: int,
    ) -> AttemptResult | None:
        record = webhooks.record_attempt
        return await self._write(record, attempt, owner, next_attempt_at, disable_after)

    async def list_deliveries(
        self, endpoint_id: str, *, limit: int = 100
    ) -> list[tuple[WebhookDelivery, list[WebhookAttempt]]]:
        return await self._read(webhooks.list_deliveries, endpoint_id, limit)

    async def resend_delivery(
        self, endpoint_id: str, delivery_id: str, now: float
    ) -> WebhookDelivery | None:
        return await self._write(webhooks.resend_delivery, endpoint_id, delivery_id, now)

    async def webhook_stats(self) -> WebhookStats:
        return await self._read(webhooks.webhook_stats)
