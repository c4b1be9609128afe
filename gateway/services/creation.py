"""Creating videos: price the request, decide with the cache and the budgets (one atomic store
step), submit upstream only when nothing identical exists, and answer dry-run quotes.

The job is written (and its price reserved) before the upstream call, so a crash never leaves an
upstream job we do not know, nor money we cannot account for. When the upstream's answer is lost
the job becomes ``submit_unknown`` and keeps its reservation (never refunded on a guess); an
``Idempotency-Key`` binds a client's retries to the one video its first request created.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from typing import Literal, cast

from gateway.blobs.base import BlobError, BlobStore
from gateway.domain.budgets import BudgetLine, Window, check, scopes_for, window_end
from gateway.domain.cache_keys import CacheScope, cache_key, is_cacheable
from gateway.domain.catalog import Catalog, default_catalog
from gateway.domain.chains import chain_price, is_chained, new_chain
from gateway.domain.inline_media import MediaRef, inline_media, with_references
from gateway.domain.pricing import PriceTable, price_of
from gateway.domain.traffic import TrafficDefaults
from gateway.domain.video_request import VideoRequest
from gateway.errors import (
    AuthenticationFailed,
    BudgetExceeded,
    GatewayError,
    OutcomeUnknown,
    ServiceUnavailable,
    TrafficLimitExceeded,
)
from gateway.ids import new_id
from gateway.services.events import JobEvents
from gateway.services.idempotency import IDEMPOTENCY_WAIT_SECONDS, fingerprint, replay
from gateway.services.keys import Principal
from gateway.settings import CacheSettings, JobSettings
from gateway.store.base import (
    UNKNOWN_OUTCOME_CODE,
    Admission,
    AdmissionPlan,
    Asset,
    IdempotencyKeyTaken,
    IdempotencyRecord,
    Job,
    JobChanges,
    KeyRevoked,
    Store,
)
from gateway.upstream.job import UpstreamJob
from gateway.upstream.port import Upstream, may_have_created

log = logging.getLogger("gateway.videos")

# What the client asked of the cache (its Cache-Control header).
CacheDirective = Literal["default", "no-cache", "no-store"]
# Pauses between attempts to record an accepted upstream job through database errors.
RECORD_RETRY_DELAYS: tuple[float, ...] = (0.05, 0.2, 0.5)


@dataclass(frozen=True, slots=True)
class Quote:
    """A dry run: what the request would cost and where each budget would stand."""

    cost: int
    lines: list[BudgetLine]

    @property
    def fits(self) -> bool:
        return not check(self.cost, self.lines)


class CreateService:
    def __init__(
        self,
        store: Store,
        upstream: Upstream,
        prices: PriceTable,
        jobs: JobSettings,
        cache: CacheSettings,
        *,
        retention_days: int = 0,
        clock: Callable[[], float] = time.time,
        events: JobEvents | None = None,
        idempotency_seconds: float = 86400.0,
        record_retry_delays: tuple[float, ...] = RECORD_RETRY_DELAYS,
        idempotency_wait_seconds: float = IDEMPOTENCY_WAIT_SECONDS,
        catalog: Catalog | None = None,
        traffic: TrafficDefaults | None = None,
        blobs: BlobStore | None = None,
    ) -> None:
        self._catalog = catalog or default_catalog()
        # With a blob store, inline (data:) media are kept there instead of in the job row.
        self._blobs = blobs
        self._idempotency_wait = idempotency_wait_seconds
        self._events = events or JobEvents()
        self._idempotency_seconds = idempotency_seconds
        self._record_retry_delays = record_retry_delays
        self._traffic = traffic
        self._store = store
        self._upstream = upstream
        self._prices = prices
        self._jobs = jobs
        self._cache = cache
        self._retention_seconds = retention_days * 86400 if retention_days > 0 else None
        self._clock = clock

    @property
    def traffic(self) -> TrafficDefaults:
        """The configured limits of every team and key (none when built without them)."""
        return self._traffic or TrafficDefaults()

    @property
    def prices(self) -> PriceTable:
        """The configured price table (``GET /v1/models`` shows it)."""
        return self._prices

    def price(self, request: VideoRequest) -> int:
        """The request's price; a chained video's is the sum of its segments' prices."""
        max_each = self._max_each(request)
        if is_chained(request, max_each):
            return chain_price(request, self._prices, max_each)
        return price_of(request, self._prices)

    def _max_each(self, request: VideoRequest) -> int:
        spec = self._catalog.models.get(request.model)
        return spec.max_duration if spec is not None else request.duration

    def _chain_json(self, request: VideoRequest) -> str | None:
        """The segment plan of a chained request (None for a single upstream job)."""
        max_each = self._max_each(request)
        if not is_chained(request, max_each):
            return None
        return new_chain(request, self._prices, max_each).to_json()

    async def quote(self, principal: Principal, request: VideoRequest) -> Quote:
        lines = await self._store.budget_lines(
            scopes_for(principal.key_id, principal.team_id), self._clock()
        )
        return Quote(cost=self.price(request), lines=lines)

    async def create(
        self,
        principal: Principal,
        request: VideoRequest,
        *,
        directive: CacheDirective = "default",
        request_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> Admission:
        """Admit the request (hit, join, or a new reserved job) and submit new jobs upstream.

        With ``idempotency_key``, a request whose key is already bound answers the bound video
        and creates nothing (``Admission.replayed``)."""
        plan = self._plan(principal, request, directive, idempotency_key)
        bound = await self._bound_video(principal, plan)
        if bound is not None:
            return bound
        # A chained video's segments are submitted later from the stored request: it keeps its
        # media inline (docs/security.md).
        chained = is_chained(request, self._max_each(request))
        stored, media = (request, []) if chained else await self._offload_media(request)
        plan = replace(plan, job=replace(plan.job, request=stored))
        try:
            admission = await self._admit(plan)
        except IdempotencyKeyTaken as exc:
            assert plan.idempotency is not None
            return await replay(self._store, self._events, principal, exc.record, plan.idempotency)
        if media:
            await self._store.attach_media(admission.job.id, media, int(self._clock()))
        self._events.admitted(admission.job, admission.outcome)
        if not admission.submit_upstream:
            return admission
        job = admission.job
        if job.chain_json is not None:
            return replace(admission, job=await self._hand_chain_to_runner(job))
        accepted = await self._submit(job, request, request_id)
        submitted = await self._record_accepted(job, accepted)
        self._events.submitted(submitted)
        return replace(admission, job=submitted)

    async def _bound_video(self, principal: Principal, plan: AdmissionPlan) -> Admission | None:
        """The video an ``Idempotency-Key`` is already bound to, replayed (None when unbound)."""
        if plan.idempotency is None:
            return None
        bound = await self._store.idempotency_record(
            principal.key_id, plan.idempotency.key, plan.now
        )
        if bound is None:
            return None
        return await replay(
            self._store,
            self._events,
            principal,
            bound,
            plan.idempotency,
            wait_seconds=self._idempotency_wait,
        )

    async def _admit(self, plan: AdmissionPlan) -> Admission:
        """One atomic store step: hit, join or reserve; a refusal becomes the client's error."""
        try:
            return await self._store.admit_job(plan)
        except BudgetExceeded as exc:
            self._events.budget_rejected(exc.scope, exc.window)
            if exc.window in ("day", "month"):
                # Until the window resets, a retry meets the same limit.
                ends = window_end(cast(Window, exc.window), plan.now)
                exc.retry_after = max(1.0, (ends or plan.now) - plan.now)
            raise
        except KeyRevoked as exc:
            raise AuthenticationFailed("This API key has been revoked.") from exc
        except TrafficLimitExceeded as exc:
            self._events.limit_rejected(exc.limit, exc.scope)
            raise

    async def _submit(self, job: Job, request: VideoRequest, request_id: str | None) -> UpstreamJob:
        """Send the job upstream. A refusal refunds it; an answer that may hide a created job
        keeps its reservation and tells the client the outcome is unknown."""
        try:
            # What the client sent (inline media included), not the row's references.
            return await self._upstream.submit(request.to_json(), request_id=request_id)
        except GatewayError as exc:
            if may_have_created(exc):
                await self._mark_unknown(job, exc.code)
                raise OutcomeUnknown.for_video(job.id, detail=exc.message) from exc
            await self._reject(job, exc.code, exc.message)
            raise
        except Exception as exc:
            # Not an answer we understand: the request may have reached the upstream.
            log.exception("upstream submit failed unexpectedly", extra={"job_id": job.id})
            await self._mark_unknown(job, "internal_error")
            raise OutcomeUnknown.for_video(
                job.id, detail="the upstream call failed unexpectedly"
            ) from exc

    async def _offload_media(self, request: VideoRequest) -> tuple[VideoRequest, list[Asset]]:
        """Move inline media into the blob store; the request as the row keeps it."""
        found = inline_media(request) if self._blobs is not None else []
        if not found or self._blobs is None:
            return request, []
        refs: list[MediaRef] = []
        assets: list[Asset] = []
        for item in found:
            try:
                info = await self._blobs.put(_one_chunk(item.data), expected_size=len(item.data))
            except (BlobError, OSError) as exc:  # a full disk: nothing admitted, retry later
                log.warning("could not store request media", extra={"error": str(exc)})
                raise ServiceUnavailable(
                    "The gateway cannot store this request's media right now; retry shortly."
                ) from exc
            refs.append(MediaRef(item.index, info.key, info.size, item.media_type))
            assets.append(Asset(key=info.key, size=info.size, content_type=item.media_type))
        return with_references(request, refs), assets

    def _plan(
        self,
        principal: Principal,
        request: VideoRequest,
        directive: CacheDirective,
        idempotency_key: str | None = None,
    ) -> AdmissionPlan:
        now = self._clock()
        job = Job(
            id=new_id("video", now=now),
            team_id=principal.team_id,
            key_id=principal.key_id,
            model=request.model,
            request=request,
            status="submitting",
            created_at=int(now),
            updated_at=int(now),
            price_micros=(price := self.price(request)),
            cost_micros=price,
            chain_json=self._chain_json(request),
            # Should this process die before the upstream answers, the runner settles it later.
            next_check_at=now + self._jobs.submit_grace_seconds,
        )
        cache = self._cache
        key = self._cache_key(principal, request, directive)
        return AdmissionPlan(
            job=job,
            scopes=scopes_for(principal.key_id, principal.team_id),
            now=now,
            cache_key=key,
            lookup=key is not None and directive == "default",
            register=key is not None,
            charge_hits=cache.charge_hits,
            cache_ttl_seconds=cache.ttl_days * 86400 if cache.ttl_days else None,
            retention_seconds=self._retention_seconds,
            idempotency=(
                self._idempotency_record(principal, request, idempotency_key, job.id, now)
                if idempotency_key is not None
                else None
            ),
            traffic=self._traffic,
        )

    def _cache_key(
        self, principal: Principal, request: VideoRequest, directive: CacheDirective
    ) -> str | None:
        """The request's cache key in the configured scope; None when it may not be cached."""
        cache = self._cache
        if not (
            cache.enabled
            and directive != "no-store"
            and is_cacheable(request, include_unseeded=cache.include_unseeded)
        ):
            return None
        scope: CacheScope = cache.scope  # type: ignore[assignment]  # validated at start-up
        scope_id = {"team": principal.team_id, "key": principal.key_id, "org": "org"}[scope]
        return cache_key(request, scope=scope, scope_id=scope_id)

    def _idempotency_record(
        self,
        principal: Principal,
        request: VideoRequest,
        idempotency_key: str,
        job_id: str,
        now: float,
    ) -> IdempotencyRecord:
        """The binding of the client's ``Idempotency-Key`` to this request and its new video."""
        return IdempotencyRecord(
            key_id=principal.key_id,
            key=idempotency_key,
            fingerprint=fingerprint(request),
            job_id=job_id,
            created_at=now,
            expires_at=now + self._idempotency_seconds,
        )

    async def _hand_chain_to_runner(self, job: Job) -> Job:
        """A chained video's segments are submitted by the job runner, one after another; it
        takes the job at once. Should this update be lost, the runner still takes the job when
        its submit grace ends (nothing was sent upstream)."""
        now = self._clock()
        changes: JobChanges = {"status": "queued", "next_check_at": now, "updated_at": int(now)}
        updated = await self._store.update_job_if_status(
            job.id, statuses=("submitting",), changes=changes
        )
        return updated or replace(job, status="queued")

    async def _reject(self, job: Job, code: str, message: str) -> None:
        """The upstream refused the job: it never ran, so its reservation is refunded."""
        failed = await self._store.fail_job(
            job.id, owner=None, code=code, message=message, now=self._clock(), rejected=True
        )
        if failed is not None:
            self._events.failed(
                failed, code, job.cost_micros if job.money_state == "reserved" else 0
            )

    async def _record_accepted(self, job: Job, accepted: UpstreamJob) -> Job:
        """Store the upstream id. The upstream has the job now: never fail or refund it after
        this. Database errors are retried with back-off; if the id still cannot be written the
        job is left to the unknown-outcome path (its money stays reserved)."""
        changes: JobChanges = {
            "upstream_id": accepted.id,
            "status": "in_progress" if accepted.status == "in_progress" else "queued",
            "progress": min(accepted.progress, 99),
        }
        for delay in (*self._record_retry_delays, None):
            now = self._clock()
            changes |= {
                "refreshed_at": now,
                "updated_at": int(now),
                "next_check_at": now + self._jobs.poll_min_seconds,
            }
            try:
                updated = await self._store.update_job_if_status(
                    job.id, statuses=("submitting",), changes=changes
                )
                if updated is None:
                    # The runner declared the outcome unknown meanwhile (a very slow answer):
                    # this answer is the evidence that settles it; the runner polls it now.
                    updated = await self._store.attach_upstream_id(job.id, accepted.id, now)
                    if updated is not None:
                        self._events.unknown_resolved(updated, "evidence")
                if updated is None:
                    log.warning(
                        "upstream accepted a job already settled",
                        extra={"job_id": job.id, "upstream_id": accepted.id},
                    )
                    updated = await self._store.get_job(job.id, include_deleted=True)
                return updated or replace(job, **changes)
            except Exception:
                if delay is None:
                    break
                log.warning(
                    "could not record accepted upstream job yet; retrying",
                    extra={"job_id": job.id, "upstream_id": accepted.id},
                )
                await asyncio.sleep(delay)
        # The upstream id goes to the log: an operator can attach it as evidence.
        log.error(
            "could not record accepted upstream job; its outcome is now unknown",
            extra={"job_id": job.id, "upstream_id": accepted.id},
        )
        await self._mark_unknown(job, "record_failed")
        raise OutcomeUnknown.for_video(
            job.id, detail="the upstream accepted it, but the gateway could not record that"
        )

    async def _mark_unknown(self, job: Job, reason: str) -> None:
        """Keep the reservation, and let evidence, an operator or the deadline settle it. When
        even this cannot be written, the job stays ``submitting`` and the runner's sweep makes
        it ``submit_unknown`` after ``jobs.submit_grace_seconds``."""
        now = self._clock()
        try:
            marked = await self._store.update_job_if_status(
                job.id,
                statuses=("submitting",),
                changes={
                    "status": "submit_unknown",
                    "error_code": UNKNOWN_OUTCOME_CODE,
                    "error_message": f"The upstream's answer to the submit was lost ({reason}).",
                    "updated_at": int(now),
                    "next_check_at": job.created_at + self._jobs.deadline_seconds,
                },
            )
        except Exception:
            log.exception("could not mark the outcome unknown", extra={"job_id": job.id})
            marked = None
        self._events.outcome_unknown(marked or job, reason)


async def _one_chunk(data: bytes) -> AsyncIterator[bytes]:
    yield data
