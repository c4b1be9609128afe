"""``PostgresStore``: the ``Store`` protocol on one PostgreSQL database, as one flat class.

Each method is a line or three: a single statement runs on the pool (``self._pool``, no
``BEGIN`` round trip), read-then-write work in ``self._transaction()``; either way it awaits the
function of the same name in the module of its concern (``keys``, ``jobs``, ``leases``,
``assets``, ``admission``, ``endings``, ``money``, ``idempotency``, ``traffic``, ``webhooks``,
``browse``, ``reports``), which holds the SQL and the locks. Several replicas may share one
database: every multi-step change is one transaction with row locks, so they see the same truth
as one process on SQLite.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Concatenate, ParamSpec, Self, TypeVar

from gateway.domain.budgets import BudgetLine, Scope, ScopeRef, Window
from gateway.domain.media import MediaFacts
from gateway.domain.traffic import TrafficScope
from gateway.errors import OutageTypes
from gateway.store.browsing import JobFilter, LedgerLine
from gateway.store.postgres import (
    admission,
    assets,
    browse,
    database,
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
from gateway.store.webhook_records import (
    AttemptResult,
    EndpointStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookStats,
)

if TYPE_CHECKING:
    from gateway.store.postgres.database import Connection, Pool

P = ParamSpec("P")
T = TypeVar("T")


class PostgresStore:
    """``Store`` on one PostgreSQL database; safe for concurrent callers, pools and replicas."""

    outage_errors: OutageTypes = database.OUTAGE_ERRORS

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        pool_min_size: int = database.DEFAULT_POOL_MIN_SIZE,
        pool_max_size: int = database.DEFAULT_POOL_MAX_SIZE,
    ) -> Self:
        """Connect a pool of ``pool_min_size`` to ``pool_max_size`` connections to ``url``."""
        return cls(await database.open_pool(url, pool_min_size, pool_max_size))

    def _transaction(self) -> AbstractAsyncContextManager[Connection]:
        return database.transaction(self._pool)

    async def _in_transaction(
        self,
        fn: Callable[Concatenate[Connection, P], Awaitable[T]],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """``fn(connection, ...)`` in one transaction, committed when it returns."""
        async with self._transaction() as connection:
            return await fn(connection, *args, **kwargs)

    # -- SchemaStore ----------------------------------------------------------------------

    async def migrate(self) -> int:
        return await database.migrate(self._pool)

    async def schema_version(self) -> int:
        return await database.schema_version(self._pool)

    async def latest_version(self) -> int:
        return database.shipped_version()

    async def close(self) -> None:
        await self._pool.close()

    # -- KeyStore ---------------------------------------------------------------------------

    async def create_team(self, name: str, now: int) -> Team:
        return await keys.create_team(self._pool, name, now)

    async def team_by_name(self, name: str) -> Team | None:
        return await keys.team_by_name(self._pool, name)

    async def team_by_id(self, team_id: str) -> Team | None:
        return await keys.team_by_id(self._pool, team_id)

    async def list_teams(self) -> list[Team]:
        return await keys.list_teams(self._pool)

    async def create_key(
        self, *, team_id: str, name: str, key_hash: str, prefix: str, now: int
    ) -> ApiKey:
        return await keys.create_key(
            self._pool, team_id=team_id, name=name, key_hash=key_hash, prefix=prefix, now=now
        )

    async def key_by_hash(self, key_hash: str) -> ApiKey | None:
        return await keys.key_by_hash(self._pool, key_hash)

    async def list_keys(self, team_id: str | None = None) -> list[ApiKey]:
        return await keys.list_keys(self._pool, team_id)

    async def revoke_key(self, key_id: str, now: int) -> bool:
        return await keys.revoke_key(self._pool, key_id, now)

    # -- JobStore: jobs -----------------------------------------------------------------------

    async def insert_job(self, job: Job) -> None:
        await jobs.insert_job(self._pool, job)

    async def get_job(
        self, job_id: str, team_id: str | None = None, *, include_deleted: bool = False
    ) -> Job | None:
        return await jobs.get_job(self._pool, job_id, team_id, include_deleted=include_deleted)

    async def update_job(self, job_id: str, changes: JobChanges) -> Job | None:
        return await jobs.update_job(self._pool, job_id, changes)

    async def update_job_if_status(
        self, job_id: str, *, statuses: Collection[str], changes: JobChanges
    ) -> Job | None:
        return await jobs.update_job_if_status(self._pool, job_id, statuses, changes)

    async def list_jobs(
        self, team_id: str, *, after: str | None, limit: int, order: Order
    ) -> tuple[list[Job], bool]:
        return await jobs.list_jobs(self._pool, team_id, after=after, limit=limit, order=order)

    async def delete_job(self, job_id: str, team_id: str, now: int) -> Deletion | None:
        return await self._in_transaction(jobs.delete_job, job_id, team_id, now)

    # -- JobStore: leases -------------------------------------------------------------------

    async def claim_due_jobs(
        self, *, owner: str, now: float, lease_seconds: float, limit: int
    ) -> list[Job]:
        return await leases.claim_due_jobs(
            self._pool, owner=owner, now=now, lease_seconds=lease_seconds, limit=limit
        )

    async def extend_lease(self, job_id: str, *, owner: str, until: float) -> bool:
        return await leases.extend_lease(self._pool, job_id, owner=owner, until=until)

    async def update_leased_job(
        self, job_id: str, *, owner: str, changes: JobChanges
    ) -> Job | None:
        return await leases.update_leased_job(self._pool, job_id, owner=owner, changes=changes)

    async def live_followers(self, job_id: str) -> int:
        return await leases.live_followers(self._pool, job_id)

    async def running_chains(self) -> list[str]:
        return await leases.running_chains(self._pool)

    # -- JobStore: endings --------------------------------------------------------------------

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
        settle = (owner, changes, video, last_frame, charge)
        return await self._in_transaction(endings.complete_job, job_id, *settle)

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
        failure = (owner, code, message, now, rejected, charge)
        return await self._in_transaction(endings.fail_job, job_id, *failure)

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
        return await self._in_transaction(endings.resolve_unknown, job_id, *settle)

    async def attach_upstream_id(self, job_id: str, upstream_id: str, now: float) -> Job | None:
        return await endings.attach_upstream_id(self._pool, job_id, upstream_id, now)

    # -- JobStore: assets ---------------------------------------------------------------------

    async def get_asset(self, key: str) -> Asset | None:
        return await assets.get_asset(self._pool, key)

    async def asset_media(self, keys: Collection[str]) -> dict[str, MediaFacts]:
        return await assets.asset_media(self._pool, keys)

    async def known_assets(self, keys: Collection[str]) -> set[str]:
        return await assets.known_assets(self._pool, keys)

    async def attach_media(self, job_id: str, media: Sequence[Asset], now: int) -> None:
        await self._in_transaction(assets.attach_media, job_id, media, now)

    async def expire_jobs(self, now: int, limit: int) -> list[Deletion]:
        return await self._in_transaction(assets.expire_jobs, now, limit)

    async def purge_ended_jobs(self, before: int, limit: int) -> list[Deletion]:
        return await self._in_transaction(assets.purge_ended_jobs, before, limit)

    # -- MoneyStore -------------------------------------------------------------------------

    async def admit_job(self, plan: AdmissionPlan) -> Admission:
        return await self._in_transaction(admission.admit_job, plan)

    async def budget_lines(self, scopes: tuple[ScopeRef, ...], now: float) -> list[BudgetLine]:
        return await money.lines_for(self._pool, scopes, now)

    async def set_limit(self, limit: BudgetLimit, now: int) -> None:
        await money.set_limit(self._pool, limit, now)

    async def clear_limit(self, scope: Scope, scope_id: str, window: Window) -> bool:
        return await money.clear_limit(self._pool, scope, scope_id, window)

    async def list_limits(
        self, scope: Scope | None = None, scope_id: str | None = None
    ) -> list[BudgetLimit]:
        return await money.list_limits(self._pool, scope, scope_id)

    async def charge_part(
        self, job_id: str, *, owner: str, amount: int, changes: JobChanges, now: float
    ) -> Job | None:
        charge = (owner, amount, changes, now)
        return await self._in_transaction(money.charge_part, job_id, *charge)

    async def set_traffic_limit(self, limit: TrafficLimit, now: int) -> TrafficLimit:
        return await traffic.set_traffic_limit(self._pool, limit, now)

    async def clear_traffic_limit(self, scope: TrafficScope, scope_id: str) -> bool:
        return await traffic.clear_traffic_limit(self._pool, scope, scope_id)

    async def list_traffic_limits(
        self, scope: TrafficScope | None = None, scope_id: str | None = None
    ) -> list[TrafficLimit]:
        return await traffic.list_traffic_limits(self._pool, scope, scope_id)

    async def in_flight_jobs(self, scope: TrafficScope, scope_id: str) -> int:
        return await traffic.in_flight_jobs(self._pool, scope, scope_id)

    async def unknown_outcomes(self, limit: int) -> list[Job]:
        return await idempotency.unknown_outcomes(self._pool, limit)

    async def idempotency_record(
        self, key_id: str, key: str, now: float
    ) -> IdempotencyRecord | None:
        return await idempotency.idempotency_record(self._pool, key_id, key, now)

    async def expire_idempotency_keys(self, now: float, limit: int) -> int:
        return await idempotency.expire_idempotency_keys(self._pool, now, limit)

    # -- ReportStore and BrowseStore ------------------------------------------------------------

    async def metrics_snapshot(self, now: float) -> MetricsSnapshot:
        return await reports.metrics_snapshot(self._pool, now)

    async def audit(self) -> list[str]:
        return await reports.audit(self._pool)

    async def audit_team(self, team_id: str, month: str | None = None) -> list[str]:
        return await reports.audit_team(self._pool, team_id, month)

    async def usage(self, team_id: str, *, since: float, by: str) -> list[UsageRow]:
        return await reports.usage(self._pool, team_id, since=since, by=by)

    async def find_jobs(
        self, where: JobFilter, *, before: str | None, limit: int
    ) -> tuple[list[Job], bool]:
        return await browse.find_jobs(self._pool, where, before=before, limit=limit)

    async def ledger_lines(self, job_id: str) -> list[LedgerLine]:
        return await browse.ledger_lines(self._pool, job_id)

    # -- WebhookStore -------------------------------------------------------------------------

    async def insert_endpoint(self, endpoint: WebhookEndpoint) -> None:
        await webhooks.insert_endpoint(self._pool, endpoint)

    async def get_endpoint(
        self, endpoint_id: str, team_id: str | None = None
    ) -> WebhookEndpoint | None:
        return await webhooks.get_endpoint(self._pool, endpoint_id, team_id)

    async def list_endpoints(
        self, team_id: str | None, *, after: str | None = None, limit: int = 100
    ) -> tuple[list[WebhookEndpoint], bool]:
        return await webhooks.list_endpoints(self._pool, team_id, after=after, limit=limit)

    async def count_endpoints(self, team_id: str) -> int:
        return await webhooks.count_endpoints(self._pool, team_id)

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
        return await webhooks.update_endpoint(self._pool, endpoint_id, now, *fields)

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
        return await webhooks.replace_secret(self._pool, endpoint_id, *secret)

    async def delete_endpoint(self, endpoint_id: str) -> bool:
        return await webhooks.delete_endpoint(self._pool, endpoint_id)

    async def claim_deliveries(
        self, *, owner: str, now: float, lease_seconds: float, limit: int, per_endpoint: int
    ) -> list[WebhookDelivery]:
        claim = (owner, now, lease_seconds, limit, per_endpoint)
        return await self._in_transaction(webhooks.claim_deliveries, *claim)

    async def record_attempt(
        self,
        attempt: WebhookAttempt,
        *,
        owner: str,
        next_attempt_at: float | None,
        disable_after: int,
    ) -> AttemptResult | None:
        record = (owner, next_attempt_at, disable_after)
        return await self._in_transaction(webhooks.record_attempt, attempt, *record)

    async def list_deliveries(
        self, endpoint_id: str, *, limit: int = 100
    ) -> list[tuple[WebhookDelivery, list[WebhookAttempt]]]:
        return await webhooks.list_deliveries(self._pool, endpoint_id, limit=limit)

    async def resend_delivery(
        self, endpoint_id: str, delivery_id: str, now: float
    ) -> WebhookDelivery | None:
        return await webhooks.resend_delivery(self._pool, endpoint_id, delivery_id, now)

    async def webhook_stats(self) -> WebhookStats:
        return await webhooks.webhook_stats(self._pool)
