"""Settling unknown outcomes by hand: an operator charges or refunds a job the upstream may or
may not have created, or attaches the upstream id found in the logs as evidence.

Used by ``gateway jobs resolve`` and ``POST /admin/jobs/{video_id}/resolve`` alike; the ledger
rows of a settlement name who decided and why. A chained video waiting on one segment is
settled segment-wise (``services/chain_outcomes.py``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

from gateway.errors import Conflict, InvalidRequest, NotFound
from gateway.services.chain_outcomes import attach_segment_evidence, settle_unknown_segment
from gateway.services.events import JobEvents
from gateway.store.base import Job, Store

Decision = Literal["charge", "refund"]
MAX_REASON_CHARS = 500


class OutcomeService:
    def __init__(
        self,
        store: Store,
        *,
        clock: Callable[[], float] = time.time,
        events: JobEvents | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._events = events or JobEvents()

    async def resolve(
        self,
        video_id: str,
        *,
        decision: Decision | None,
        actor: str,
        reason: str,
        upstream_id: str | None = None,
    ) -> Job:
        """Charge, refund, or (with ``upstream_id``) hand the job back to the runner to poll."""
        reason = _checked_reason(reason)
        if (decision is None) == (upstream_id is None):
            raise InvalidRequest(
                "Give exactly one of: charge, refund, or the upstream id found as evidence.",
                param="decision",
            )
        job = await self._awaiting_outcome(video_id)
        if upstream_id is not None:
            settled = await self._attach_evidence(job, upstream_id.strip())
        else:
            settled = await self._settle(
                job, charge=decision == "charge", actor=actor, reason=reason
            )
        if settled is None:
            raise Conflict(f"Video {video_id} was settled meanwhile; look at it again.")
        resolution = (
            "evidence"
            if upstream_id is not None
            else "charged"
            if decision == "charge"
            else "refunded"
        )
        self._events.unknown_resolved(settled, resolution, actor)
        return settled

    async def _awaiting_outcome(self, video_id: str) -> Job:
        """The job, which must exist and be in ``submit_unknown``."""
        job = await self._store.get_job(video_id, include_deleted=True)
        if job is None:
            raise NotFound(f"No video with id {video_id!r}.", param="video_id")
        if job.status != "submit_unknown":
            raise Conflict(
                f"Video {video_id} is {job.status}, not awaiting an unknown outcome: only"
                " videos in submit_unknown can be resolved."
            )
        return job

    async def _attach_evidence(self, job: Job, upstream_id: str) -> Job | None:
        """Hand the job (or a chained video's waiting segment) back to the runner to poll."""
        now = self._clock()
        if job.chain_json is not None:
            # A chained video waits on one segment: see ``services/chain_outcomes.py``.
            return await attach_segment_evidence(self._store, job.id, upstream_id, now)
        return await self._store.attach_upstream_id(job.id, upstream_id, now)

    async def _settle(self, job: Job, *, charge: bool, actor: str, reason: str) -> Job | None:
        """Charge or refund the job (or a chained video's waiting segment) by hand."""
        now = self._clock()
        if job.chain_json is not None:
            return await settle_unknown_segment(
                self._store, job, charge=charge, actor=actor, reason=reason, now=now
            )
        return await self._store.resolve_unknown(
            job.id, charge=charge, actor=actor, reason=reason, now=now
        )


def _checked_reason(reason: str) -> str:
    """The operator's reason, stripped; it is written to the ledger, so it must say something."""
    reason = reason.strip()
    if not reason or len(reason) > MAX_REASON_CHARS:
        raise InvalidRequest(
            f"A reason (1 to {MAX_REASON_CHARS} characters) is required.", param="reason"
        )
    return reason
