"""Unknown outcomes of a chained video's segments: issue #13's rule applied per segment.

A segment whose submit may or may not have reached the upstream (a lost answer, a crash between
send and record, an accepted id that could not be written) puts the whole video in
``submit_unknown``. Not only that segment's price stays reserved but the rest of the chain's
too: evidence resumes the chain, and its later segments must not then meet a budget that others
spent meanwhile; the overstatement lasts until the deadline at most. Settling it charges (or
refunds) that one segment and fails the video: finished segments stay charged, the rest of the
price is refunded. Evidence (the segment's upstream id) hands the segment back to the runner.

Used by the runner's chain step (the deadline) and by ``OutcomeService`` (an operator).
"""

from __future__ import annotations

from gateway.domain.chains import Chain, Segment
from gateway.store.base import UNKNOWN_OUTCOME_CODE, Job, JobChanges, JobStore, MoneyStore

DEADLINE_REASON = "the deadline passed with the upstream's answer still unknown"


def unknown_segment_number(job: Job) -> int | None:
    """The 1-based number of a chained video's segment whose outcome is unknown, if any."""
    if job.chain_json is None:
        return None
    segment = Chain.from_json(job.chain_json).unknown()
    return segment.index + 1 if segment is not None else None


def unknown_message(chain: Chain, segment: Segment, detail: str) -> str:
    """What ``gateway jobs unknown`` shows of a chained video waiting on one segment."""
    return (
        f"Segment {segment.index + 1} of {len(chain.segments)}: {detail}. It may or may not"
        " exist upstream, so the video's remaining price stays reserved until evidence, an"
        " operator or the deadline settles it."
    )


def segment_deadline(job: Job, segment: Segment | None, deadline_seconds: float) -> float:
    """When an unknown segment is charged: the deadline after its (last) submit."""
    started = segment.submitted_at if segment is not None else None
    return (started or float(job.created_at)) + deadline_seconds


async def settle_unknown_segment(
    store: MoneyStore, job: Job, *, charge: bool, actor: str, reason: str, now: float
) -> Job | None:
    """Charge (or refund) the unknown segment and fail the video in one store transaction;
    finished segments stay charged, the rest of the reservation is refunded. None when the
    video is no longer ``submit_unknown`` (settled meanwhile)."""
    assert job.chain_json is not None
    chain = Chain.from_json(job.chain_json)
    segment = chain.unknown()
    settled = "charged" if charge else "refunded"
    amount = chain.charge_for_stored()
    message = f"The outcome of a segment's submit was unknown; {settled} by {actor}: {reason}."
    if segment is not None:
        if charge:
            amount = chain.charge_with(segment)
        chain = chain.with_segment(
            segment.index,
            status="failed",
            error_code=UNKNOWN_OUTCOME_CODE,
            error_message=f"{settled} by {actor}: {reason}",
        )
        message = (
            f"Segment {segment.index + 1} of {len(chain.segments)} failed: the outcome of its"
            f" submit was unknown; {settled} by {actor}: {reason}. Finished segments stay"
            " charged; the rest of the price was refunded."
        )
    return await store.resolve_unknown(
        job.id,
        charge=charge,
        actor=actor,
        reason=reason,
        now=now,
        amount=amount,
        chain_json=chain.to_json(),
        message=message,
    )


async def attach_segment_evidence(
    store: JobStore, job_id: str, upstream_id: str, now: float
) -> Job | None:
    """Evidence: the unknown segment is ``upstream_id`` upstream. The video runs on (the
    runner polls that segment at once, stores and charges it as usual); its money stays
    reserved. None when the video is not waiting on an unknown segment (any more)."""
    job = await store.get_job(job_id, include_deleted=True)
    if job is None or job.status != "submit_unknown" or job.chain_json is None:
        return None
    chain = Chain.from_json(job.chain_json)
    segment = chain.unknown()
    if segment is None:
        return None
    chain = chain.with_segment(
        segment.index, status="queued", upstream_id=upstream_id, error_code=None, error_message=None
    )
    changes: JobChanges = {
        "chain_json": chain.to_json(),
        "status": "in_progress" if segment.index > 0 else "queued",
        "error_code": None,
        "error_message": None,
        "attempts": 0,
        "next_check_at": now,
        "updated_at": int(now),
    }
    return await store.update_job_if_status(job_id, statuses=("submit_unknown",), changes=changes)
