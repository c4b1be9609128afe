"""The sandbox's memory: jobs, counters, faults and config, and how a job's status follows
the clock (queued for ``queue_seconds``, running for ``run_seconds``, then done).

Owns job ids (long opaque AIHubMix-style ids) and content seeds. No web framework here.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import random
import secrets
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

from gateway.sandbox.config import SandboxConfig
from gateway.sandbox.faults import FaultBook, FaultRule
from gateway.sandbox.links import LinkSigner
from gateway.sandbox.media import video_bytes_for
from gateway.sandbox.render import RenderSpec, colour_for, frame_size, render_mp4, still_png
from gateway.sandbox.validation import CreateParams

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

COUNTERS: tuple[str, ...] = ("create", "create_accepted", "poll", "content", "file", "delete")
FORCED_STATUSES: tuple[str, ...] = ("failed", "cancelled", "expired")
DEFAULT_ERRORS: Mapping[str, dict[str, str]] = {
    "failed": {"code": "InternalServiceError", "message": "The task failed."},
    "cancelled": {"code": "cancelled", "message": "task cancelled"},
    "expired": {"code": "expired", "message": "task expired"},
}


@dataclass(slots=True)
class Job:
    """One accepted create. Status is not stored: ``phase`` derives it from the clock.

    ``fate`` is how the job ends when it finishes (``completed``, or ``failed`` after a
    ``fail_job`` fault); ``forced`` is a terminal status imposed through the control API.
    """

    id: str
    body: dict[str, Any]
    params: CreateParams
    created_at: float
    started_at: float
    finished_at: float
    seed: int
    content_seed: bytes
    video_bytes: int
    render: RenderSpec
    fate: str = "completed"
    error: dict[str, Any] | None = None
    forced: str | None = None
    forced_progress: int = 0
    links_expire_at: float | None = None

    def phase(self, now: float) -> tuple[str, int]:
        """``(status, progress)`` at ``now`` in the OpenAI vocabulary plus Ark's
        ``cancelled``/``expired``; progress rises 1..99 while running."""
        if self.forced is not None:
            return self.forced, self.forced_progress
        if now < self.started_at:
            return "queued", 0
        if now < self.finished_at:
            span = self.finished_at - self.started_at
            return "in_progress", min(99, 1 + int(98 * (now - self.started_at) / span))
        return self.fate, 100


def expected_video_bytes(job: Job) -> bytes:
    """The exact MP4 the sandbox serves for ``job`` (for tests; renders synchronously)."""
    return video_bytes_for(render_mp4(job.render), job.content_seed, job.video_bytes)


def expected_last_frame_bytes(job: Job) -> bytes:
    """The exact PNG the sandbox serves as ``job``'s last frame (for tests)."""
    return still_png(job.render, job.render.last_counter)


def mint_job_id(model: str) -> str:
    """An id like AIHubMix's: base64url of ``{"model":..,"id":"cgt-.."}`` + ``channel<N>``."""
    inner = orjson.dumps({"model": model, "id": f"cgt-{secrets.token_hex(16)}"})
    encoded = base64.urlsafe_b64encode(inner).rstrip(b"=").decode()
    return f"{encoded}channel{random.randint(1000, 9999)}"


def content_seed_for(job_id: str, body: Mapping[str, Any], seed: int | None) -> bytes:
    """What the served bytes derive from: the canonical body when a fixed seed was asked for
    (same seed + same input = same video), otherwise the job id."""
    if seed is not None and seed != -1:
        return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).digest()
    return hashlib.sha256(job_id.encode()).digest()


class SandboxState:
    """Everything one sandbox app remembers; ``app.state.sandbox`` is one of these."""

    def __init__(
        self,
        config: SandboxConfig,
        clock: Clock,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.config = config
        self.clock = clock
        self.sleep = sleep
        self.counters: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        self.jobs: OrderedDict[str, Job] = OrderedDict()  # oldest first, O(1) eviction
        self.faults = FaultBook()
        self.links = LinkSigner()

    def reset(self) -> None:
        """Forget every job, counter and fault (the config stays)."""
        self.jobs.clear()
        self.counters.update(dict.fromkeys(COUNTERS, 0))
        self.faults.clear()

    def set_config(self, **changes: Any) -> SandboxConfig:
        """Replace the config with a checked copy; ``ValueError`` on a bad change.

        Timings and ``video_bytes`` apply to jobs created afterwards; ``link_ttl_seconds``,
        the shapes and the keys apply at once.
        """
        self.config = self.config.with_changes(changes)
        return self.config

    def add_fault(self, rule: FaultRule) -> None:
        self.faults.add(rule)

    def create_job(
        self, body: dict[str, Any], params: CreateParams, *, fail: FaultRule | None = None
    ) -> Job:
        """Record an accepted create and return the new job."""
        job_id = mint_job_id(params.model)
        while job_id in self.jobs:  # pragma: no cover - 128 random bits
            job_id = mint_job_id(params.model)
        now = self.clock()
        started = now + self.config.queue_seconds
        content_seed = content_seed_for(job_id, body, params.seed)
        if params.seed is not None and params.seed != -1:
            seed = params.seed
        else:
            seed = int.from_bytes(content_seed[:4], "big")
        job = Job(
            render=self._render_spec(params, seed),
            id=job_id,
            body=body,
            params=params,
            created_at=now,
            started_at=started,
            finished_at=started + self.config.run_seconds,
            seed=seed,
            content_seed=content_seed,
            video_bytes=self.config.video_bytes,
        )
        if fail is not None:
            job.fate = "failed"
            job.error = {"code": fail.error_code, "message": fail.error_message}
        if self.config.max_jobs and len(self.jobs) >= self.config.max_jobs:
            self.jobs.popitem(last=False)
        self.jobs[job_id] = job
        return job

    def _render_spec(self, params: CreateParams, seed: int) -> RenderSpec:
        """What the job's video shows: its own colour from frame 0, or, when its first frame is
        a last frame this sandbox served, the previous video's colour from that frame on."""
        previous = self._job_behind_frame(params.first_frame_url)
        width, height = frame_size(params.ratio, self.config.frame_short_side)
        colour, start = colour_for(params.prompt, seed), 0
        if previous is not None:
            colour, start = previous.render.colour, previous.render.last_counter
        return RenderSpec(
            width=width,
            height=height,
            fps=self.config.frame_rate,
            seconds=params.duration,
            colour=colour,
            start_frame=start,
            audio=params.generate_audio,
        )

    def _job_behind_frame(self, url: str | None) -> Job | None:
        """The job whose signed last-frame link ``url`` is, if it is one of ours."""
        if url is None:
            return None
        parts = urlsplit(url)
        name = parts.path.rpartition("/files/")[2]
        token, _, ext = name.rpartition(".")
        query = {key: values[0] for key, values in parse_qs(parts.query).items()}
        try:
            job_id, _ = self.links.verify(token, ext, query.get("expires"), query.get("sig"))
        except ValueError:
            return None
        job = self.jobs.get(job_id)
        return job if job is not None and ext == "png" else None

    def force_status(self, job_id: str, status: str, error: dict[str, Any] | None) -> Job:
        """End a job now with ``status`` (failed/cancelled/expired); ``KeyError`` if unknown."""
        if status not in FORCED_STATUSES:
            raise ValueError(f"status must be one of {', '.join(FORCED_STATUSES)}")
        job = self.jobs[job_id]
        job.forced_progress = job.phase(self.clock())[1]
        job.forced = status
        job.error = dict(error) if error else dict(DEFAULT_ERRORS[status])
        return job

    def expire_links(self) -> int:
        """Make every existing job's download links expired from now on; returns how many."""
        now = self.clock()
        for job in self.jobs.values():
            job.links_expire_at = now
        return len(self.jobs)

    def link_deadline(self, job: Job) -> float:
        """When the job's download links stop working."""
        natural = job.finished_at + self.config.link_ttl_seconds
        if job.links_expire_at is not None:
            return min(natural, job.links_expire_at)
        return natural

    def stats(self) -> dict[str, int]:
        return {**self.counters, "jobs": len(self.jobs)}
