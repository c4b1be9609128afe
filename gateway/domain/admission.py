"""What a create becomes, decided from the rows an adapter read under its locks: a cache hit (a
new video served from a finished identical one), a join onto a running identical job, or a new
job that goes upstream (its price reserved, registered as in flight when asked).

Each function returns the rows to write; the adapter inserts them in its own transaction. The
budget check itself is ``budgets.check``; the traffic checks are ``traffic``. Pure: imports
only the standard library and ``gateway.domain``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from gateway.domain.budgets import ScopeRef
from gateway.domain.jobs import UNJOINABLE, J, JobFacts
from gateway.domain.ledger import Movement, Settlement, reservation, settlement
from gateway.domain.webhooks import VIDEO_COMPLETED

CacheResult = Literal["miss", "hit", "coalesced", "bypass"]
Lookup = Literal["join", "hit"]
EntryStatus = Literal["running", "completed"]


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """A ``cache_entries`` row: which job leads a cache key, and whether it is still running."""

    key: str
    leader_id: str
    status: str
    created_at: float
    expires_at: float | None

    def live(self, now: float) -> bool:
        """Whether the entry may still be used (its own TTL has not passed)."""
        return self.expires_at is None or self.expires_at > now


@dataclass(frozen=True, slots=True)
class Hit:
    """A cache hit's rows: the new video, and when hits are charged the reservation and its
    immediate settlement (the record is already in its final, charged state)."""

    record_id: str
    reserve: Movement | None
    settle: Settlement | None
    asset_keys: tuple[str, ...]  # each gains one reference
    event: str = VIDEO_COMPLETED

    def movements(self) -> tuple[Movement, ...]:
        """The ledger movements, in order: reserve, then charge."""
        if self.reserve is None or self.settle is None:
            return ()
        return (self.reserve, self.settle.movement)


def lookup(entry: CacheEntry | None, leader: JobFacts | None, now: float) -> Lookup | None:
    """Join the running leader, serve the finished one, or neither (None: generate afresh)."""
    if entry is None or leader is None or not entry.live(now):
        return None
    if entry.status == "running":
        if leader.deleted_at is not None:
            return None  # its owner deleted it: start afresh rather than join a video nobody keeps
        return "join" if leader.status not in UNJOINABLE else None
    if entry.status == "completed" and leader.status == "completed":
        return "hit" if leader.video_asset is not None else None
    return None


def join_record(job: J, leader: JobFacts, cache_key: str) -> J:
    """The new video coalesced onto ``leader``: it moves with the leader and costs nothing (the
    leader's reservation pays for both)."""
    return replace(
        job,
        status=leader.status if leader.status != "submitting" else "queued",
        progress=leader.progress,
        leader_id=leader.id,
        cache_key=cache_key,
        cache_result="coalesced",
        cost_micros=0,  # the leader's reservation pays for both
        next_check_at=None,
        upstream_id=leader.upstream_id,
    )


def hit_asset_keys(source: JobFacts) -> tuple[str, ...]:
    """The stored objects a hit on ``source`` serves (all must still be stored)."""
    return tuple(key for key in (source.video_asset, source.last_frame_asset) if key is not None)


def charges_hit(charge_hits: bool, cost: int) -> bool:
    """Whether a hit pays its price (reserved and charged at once)."""
    return charge_hits and cost > 0


def hit_record(
    job: J,
    source: JobFacts,
    *,
    cache_key: str,
    now: float,
    retention_seconds: float | None,
    charged: bool,
) -> J:
    """The new video served from ``source``: completed now, kept like any other video."""
    return replace(
        job,
        status="completed",
        progress=100,
        completed_at=int(now),
        next_check_at=None,
        video_asset=source.video_asset,
        last_frame_asset=source.last_frame_asset,
        delivered_seconds=source.delivered_seconds,
        expires_at=int(now + retention_seconds) if retention_seconds else None,
        leader_id=source.id,
        cache_key=cache_key,
        cache_result="hit",
        money_state="charged" if charged else "none",
        reserved_at=now if charged else None,
        charged_micros=job.cost_micros if charged else None,
        cost_micros=job.cost_micros if charged else 0,
    )


def hit(job: JobFacts, source: JobFacts, scopes: tuple[ScopeRef, ...], now: float) -> Hit:
    """The money rows of a hit ``job`` (as ``hit_record`` made it) on ``source``."""
    if job.money_state != "charged":
        return Hit(job.id, None, None, hit_asset_keys(source))
    reserve = reservation(job.id, scopes, job.cost_micros, now)
    reserved = _Reserved(job.id, job.key_id, job.team_id, job.cost_micros, now)
    return Hit(
        job.id,
        reserve,
        settlement(reserved, charge=job.cost_micros, now=now),
        hit_asset_keys(source),
    )


@dataclass(frozen=True, slots=True)
class _Reserved:
    """A job's money as it stands between its reservation and its settlement."""

    id: str
    key_id: str
    team_id: str
    cost_micros: int
    reserved_at: float
    money_state: Literal["reserved"] = "reserved"
    settled_micros: int = 0


def new_record(job: J, *, cache_key: str | None, register: bool, now: float) -> J:
    """A job that goes upstream: reserved when it has a price; a ``miss`` that registers as in
    flight when asked (``in_flight_entry``), a ``bypass`` otherwise."""
    if job.cost_micros > 0:
        job = replace(job, money_state="reserved", reserved_at=now)
    outcome: CacheResult = "miss" if cache_key is not None and register else "bypass"
    return replace(job, cache_key=cache_key, cache_result=outcome)


def in_flight_entry(cache_key: str, leader_id: str, now: float, ttl: float | None) -> CacheEntry:
    """The entry that makes ``leader_id`` the job identical requests join."""
    return CacheEntry(cache_key, leader_id, "running", now, now + ttl if ttl else None)


def new_reservation(job: JobFacts, scopes: tuple[ScopeRef, ...], now: float) -> Movement | None:
    """The reservation of a new job's price (None when it costs nothing)."""
    return reservation(job.id, scopes, job.cost_micros, now) if job.cost_micros > 0 else None
