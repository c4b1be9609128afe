"""Creating videos: price the request, decide with the cache and the budgets (one atomic store
step), submit upstream only when nothing identical exists, and answer dry-run quotes.

The job is written (and its price reserved) before the upstream call, so a crash never leaves an
upstream job we do not know, nor money we cannot account for.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

from gateway.domain.budgets import BudgetLine, check, scopes_for
from gateway.domain.cache_keys import CacheScope, cache_key, is_cacheable
from gateway.domain.pricing import PriceTable, price_of
from gateway.domain.video_request import VideoRequest
from gateway.errors import BudgetExceeded, GatewayError, UpstreamError
from gateway.ids import new_id
from gateway.services.events import JobEvents
from gateway.services.keys import Principal
from gateway.settings import CacheSettings, JobSettings
from gateway.store.base import Admission, AdmissionPlan, Job, Store
from gateway.upstream.client import UpstreamClient
from gateway.upstream.job import UpstreamJob

log = logging.getLogger("gateway.videos")

# What the client asked of the cache (its Cache-Control header).
CacheDirective = Literal["default", "no-cache", "no-store"]


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
        upstream: UpstreamClient,
        prices: PriceTable,
        jobs: JobSettings,
        cache: CacheSettings,
        *,
        retention_days: int = 0,
        clock: Callable[[], float] = time.time,
        events: JobEvents | None = None,
    ) -> None:
        self._events = events or JobEvents()
        self._store = store
        self._upstream = upstream
        self._prices = prices
        self._jobs = jobs
        self._cache = cache
        self._retention_seconds = retention_days * 86400 if retention_days > 0 else None
        self._clock = clock

    def price(self, request: VideoRequest) -> int:
        return price_of(request, self._prices)

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
    ) -> Admission:
        """Admit the request (hit, join, or a new reserved job) and submit new jobs upstream."""
        try:
            admission = await self._store.admit_job(self._plan(principal, request, directive))
        except BudgetExceeded as exc:
            self._events.budget_rejected(exc.scope, exc.window)
            raise
        self._events.admitted(admission.job, admission.outcome)
        if not admission.submit_upstream:
            return admission
        job = admission.job
        try:
            accepted = await self._upstream.submit(job.request, request_id=request_id)
        except GatewayError as exc:
            await self._reject(job, exc.code, exc.message)
            raise
        except Exception as exc:
            await self._reject(job, "internal_error", "The upstream call failed.")
            raise UpstreamError("The upstream call failed unexpectedly.") from exc
        submitted = await self._record_accepted(job, accepted)
        self._events.submitted(submitted)
        return replace(admission, job=submitted)

    def _plan(
        self, principal: Principal, request: VideoRequest, directive: CacheDirective
    ) -> AdmissionPlan:
        now = self._clock()
        job = Job(
            id=new_id("video", now=now),
            team_id=principal.team_id,
            key_id=principal.key_id,
            model=request.model,
            request=request.to_json(),
            status="submitting",
            created_at=int(now),
            updated_at=int(now),
            price_micros=(price := self.price(request)),
            cost_micros=price,
            # Should this process die before the upstream answers, the runner settles it later.
            next_check_at=now + self._jobs.submit_grace_seconds,
        )
        cache = self._cache
        key = None
        if (
            cache.enabled
            and directive != "no-store"
            and is_cacheable(request, include_unseeded=cache.include_unseeded)
        ):
            scope: CacheScope = cache.scope  # type: ignore[assignment]  # validated at start-up
            scope_id = {"team": principal.team_id, "key": principal.key_id, "org": "org"}[scope]
            key = cache_key(request, scope=scope, scope_id=scope_id)
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
        )

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
        """Store the upstream id. The upstream has the job now: never fail this request after it."""
        now = self._clock()
        changes: dict[str, Any] = {
            "upstream_id": accepted.id,
            "status": "in_progress" if accepted.status == "in_progress" else "queued",
            "progress": min(accepted.progress, 99),
            "refreshed_at": now,
            "updated_at": int(now),
            "next_check_at": now + self._jobs.poll_min_seconds,
        }
        try:
            updated = await self._store.update_job_if_status(
                job.id, statuses=("submitting",), changes=changes
            )
            if updated is None:
                # The runner gave up on this submit meanwhile (a very slow upstream answer):
                # keep its verdict, but remember the upstream id for the audit trail.
                log.warning("upstream accepted a job already given up", extra={"job_id": job.id})
                updated = await self._store.update_job(job.id, {"upstream_id": accepted.id})
        except Exception:
            log.exception("could not record accepted upstream job", extra={"job_id": job.id})
            updated = None
        return updated or replace(job, **changes)
