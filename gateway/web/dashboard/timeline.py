"""A video's life as an operator reads it: admitted, submitted, polled, stored, charged or
refunded, failed, deleted — from the job's own fields and its ledger lines, in that order
(there is no stored event log: these are the facts the database keeps)."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.domain.money import format_usd
from gateway.store.base import Job
from gateway.store.browsing import LedgerLine


@dataclass(frozen=True, slots=True)
class Step:
    at: float | None  # None: the moment was not recorded (only that it happened)
    what: str
    detail: str = ""


def timeline(job: Job, ledger: list[LedgerLine]) -> list[Step]:
    steps = [
        Step(
            job.created_at,
            "admitted",
            f"cache {job.cache_result or 'none'}; list price {format_usd(job.price_micros)},"
            f" cost {format_usd(job.cost_micros)}",
        )
    ]
    if job.leader_id:
        steps.append(Step(job.created_at, "joined", f"shares the generation of {job.leader_id}"))
    if job.upstream_id:
        steps.append(Step(None, "submitted upstream", f"upstream job {job.upstream_id}"))
    if job.attempts:
        steps.append(Step(None, "polled", f"{job.attempts} consecutive polls or download tries"))
    if job.upstream_finished_at:
        steps.append(Step(job.upstream_finished_at, "finished upstream"))
    if job.status == "completed" and job.completed_at:
        seconds = f"{job.delivered_seconds} s of video" if job.delivered_seconds else ""
        steps.append(Step(job.completed_at, "stored", seconds))
    for kind in ("charge", "refund"):
        lines = [line for line in ledger if line.kind == kind]
        if lines:
            amount = max(abs(line.spent_delta or line.reserved_delta) for line in lines)
            word = "charged" if kind == "charge" else "refunded"
            steps.append(Step(lines[0].created_at, word, format_usd(amount)))
    if job.status in ("failed", "rejected"):
        steps.append(Step(job.updated_at, job.status, f"{job.error_code}: {job.error_message}"))
    if job.deleted_at:
        steps.append(Step(job.deleted_at, "deleted"))
    return steps  # built in the order a job lives them
