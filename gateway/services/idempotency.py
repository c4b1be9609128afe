"""Idempotency-Keys on creates: the canonical fingerprint of a request, and the answer to a
request whose key is already bound (the same video, a 409 for another body, or a wait while the
first request is still submitting). Binding itself happens in the store's admission transaction.
"""

from __future__ import annotations

import asyncio
import hashlib
import time

import orjson

from gateway.domain.video_request import VideoRequest
from gateway.errors import IdempotencyKeyInUse, IdempotencyKeyReused, OutcomeUnknown
from gateway.services.events import JobEvents
from gateway.services.keys import Principal
from gateway.store.base import Admission, IdempotencyRecord, JobStore

# How long a request waits for another with the same Idempotency-Key to finish its submit.
IDEMPOTENCY_WAIT_SECONDS = 10.0


async def replay(
    store: JobStore,
    events: JobEvents,
    principal: Principal,
    bound: IdempotencyRecord,
    wanted: IdempotencyRecord,
    *,
    wait_seconds: float = IDEMPOTENCY_WAIT_SECONDS,
) -> Admission:
    """The answer for a request whose Idempotency-Key is already bound: the same video
    (as it is now), once its first request has finished submitting."""
    if bound.fingerprint != wanted.fingerprint:
        events.idempotency("reused")
        raise IdempotencyKeyReused(
            "This Idempotency-Key was already used with a different request body. Use a"
            " new key for a new request.",
            param="Idempotency-Key",
        )
    waited_until = time.monotonic() + wait_seconds
    pause = 0.02
    while True:
        job = await store.get_job(bound.job_id, principal.team_id, include_deleted=True)
        if job is not None and job.status != "submitting":
            break
        if time.monotonic() >= waited_until:
            events.idempotency("in_use")
            raise IdempotencyKeyInUse(
                "Another request with this Idempotency-Key is still being processed;"
                " retry shortly with the same key.",
                param="Idempotency-Key",
                retry_after=1.0,
            )
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.25)
    events.idempotency("replayed")
    if job.status == "submit_unknown" and job.chain_json is None:
        # (A chained video was created and answered; only one of its segments is unknown.)
        raise OutcomeUnknown.for_video(job.id)
    return Admission(job=job, outcome=job.cache_result or "bypass", replayed=True)


def fingerprint(request: VideoRequest) -> str:
    """The hash of a request's canonical form: equal for retries of the same create however
    the client spelled it (aliases, defaults, form or JSON)."""
    return hashlib.sha256(orjson.dumps(request.to_json(), option=orjson.OPT_SORT_KEYS)).hexdigest()
