"""The sandbox upstream: a Starlette app that answers like AIHubMix's Seedance video API.

``create_sandbox_app`` builds it; the ``/v1/videos`` routes and the signed ``/files`` links
live here, the ``/_sandbox`` control routes in ``control.py``. Handlers stay lean (benchmarks
drive them at high request rates): no middleware, closures over one ``SandboxState``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from gateway.sandbox.config import SandboxConfig
from gateway.sandbox.control import control_routes
from gateway.sandbox.documents import STATUS_WORDS, create_document, poll_document
from gateway.sandbox.faults import FaultRule
from gateway.sandbox.media import iter_video_chunks, served_size, stream_chunks
from gateway.sandbox.render import render_mp4, still_png
from gateway.sandbox.responses import JSONBody, error_response
from gateway.sandbox.state import Clock, Job, SandboxState, Sleep
from gateway.sandbox.validation import RequestRejected, validate_create

INSUFFICIENT_BALANCE = "Your account balance is insufficient. Please recharge your account"


def create_sandbox_app(
    config: SandboxConfig | None = None,
    *,
    clock: Clock = time.time,
    sleep: Sleep = asyncio.sleep,
) -> Starlette:
    """A fresh sandbox with its own jobs and secret; ``app.state.sandbox`` is its state.

    ``clock`` drives job status and link expiry; ``sleep`` is what latency/timeout faults
    await (tests pass a recorder so nothing really waits).
    """
    state = SandboxState(config or SandboxConfig(), clock, sleep)
    routes: list[BaseRoute] = [*VideoRoutes(state).routes(), *control_routes(state)]
    app = Starlette(
        routes=routes,
        exception_handlers={404: _http_error, 405: _http_error},
    )
    app.state.sandbox = state
    return app


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    return error_response(status, "Invalid URL" if status == 404 else "Method not allowed")


class VideoRoutes:
    """The AIHubMix-shaped endpoints, bound to one state."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/v1/videos", self.create, methods=["POST"]),
            Route("/v1/videos/{video_id}", self.poll, methods=["GET"]),
            Route("/v1/videos/{video_id}", self.delete, methods=["DELETE"]),
            Route("/v1/videos/{video_id}/content", self.content, methods=["GET"]),
            Route("/files/{name}", self.file, methods=["GET"]),
        ]

    # -- the steps every /v1 request goes through -------------------------------------------

    def _authorize(self, request: Request, *, create: bool = False) -> Response | None:
        """None when the Bearer key is acceptable, else the 401/403 answer."""
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        key = key.strip()
        config = self.state.config
        if scheme.lower() != "bearer" or not key:
            return error_response(401, "Invalid token")
        if create and config.broke_key is not None and key == config.broke_key:
            return error_response(403, INSUFFICIENT_BALANCE)
        if config.api_key is not None and key != config.api_key:
            return error_response(401, "Invalid token")
        return None

    async def _meet_fault(self, op: str) -> tuple[Response | None, FaultRule | None]:
        """Act out the fault this request meets: sleep, or answer early, or hand the rule back
        for the route to apply (``fail_job``, ``truncate``)."""
        if not self.state.faults:
            return None, None
        rule = self.state.faults.take(op)
        if rule is None:
            return None, None
        if rule.kind in ("latency", "timeout"):
            await self.state.sleep(rule.sleep_seconds)
            return None, rule
        if rule.kind == "status":
            return error_response(
                rule.status, rule.status_message, retry_after=rule.retry_after
            ), rule
        if rule.kind == "reject":
            return error_response(400, rule.status_message), rule
        return None, rule

    def _job(self, request: Request) -> Job | None:
        return self.state.jobs.get(request.path_params["video_id"])

    def _links(self, request: Request, job: Job) -> tuple[str, str | None, float]:
        """The signed video and last-frame URLs of a completed job, and when they expire."""
        deadline = self.state.link_deadline(job)
        base = str(request.base_url).rstrip("/")
        signer = self.state.links
        video = base + signer.path(job.id, "mp4", int(deadline))
        frame = (
            base + signer.path(job.id, "png", int(deadline))
            if job.params.return_last_frame
            else None
        )
        return video, frame, deadline

    # -- routes ------------------------------------------------------------------------------

    async def create(self, request: Request) -> Response:
        denied = self._authorize(request, create=True)
        if denied is not None:
            return denied
        state = self.state
        state.counters["create"] += 1
        early, rule = await self._meet_fault("create")
        if early is not None:
            return early
        if not request.headers.get("content-type", "").lower().startswith("application/json"):
            return error_response(
                400, "Content-Type must be application/json (multipart/form-data is not supported)"
            )
        try:
            body: Any = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return error_response(400, "the request body is not valid JSON")
        try:
            params = validate_create(body)
        except RequestRejected as exc:
            return error_response(400, str(exc))
        fail = rule if rule is not None and rule.kind == "fail_job" else None
        job = state.create_job(body, params, fail=fail)
        state.counters["create_accepted"] += 1
        return JSONBody(create_document(job))

    async def poll(self, request: Request) -> Response:
        denied = self._authorize(request)
        if denied is not None:
            return denied
        self.state.counters["poll"] += 1
        early, _ = await self._meet_fault("poll")
        if early is not None:
            return early
        job = self._job(request)
        if job is None:
            return error_response(404, "video not found")
        now = self.state.clock()
        config = self.state.config
        if job.phase(now)[0] != "completed":
            return JSONBody(poll_document(job, now, config))
        video, frame, deadline = self._links(request, job)
        doc = poll_document(
            job, now, config, video_url=video, last_frame_url=frame, expires_at=deadline
        )
        return JSONBody(doc)

    async def content(self, request: Request) -> Response:
        denied = self._authorize(request)
        if denied is not None:
            return denied
        self.state.counters["content"] += 1
        early, rule = await self._meet_fault("content")
        if early is not None:
            return early
        job = self._job(request)
        if job is None:
            return error_response(404, "video not found")
        now = self.state.clock()
        phase = job.phase(now)[0]
        if phase != "completed":
            word = STATUS_WORDS[self.state.config.poll_shape][phase]
            return error_response(400, f"the video is not completed yet, current status: {word}")
        if now >= self.state.link_deadline(job):
            return error_response(404, "the video has expired")
        variant = request.query_params.get("variant", "video")
        if variant in ("thumbnail", "last_frame"):
            if variant == "last_frame" and not job.params.return_last_frame:
                return error_response(404, "the task has no last frame")
            return _still_response(job, variant, rule)
        return await _video_response(job, rule)

    async def file(self, request: Request) -> Response:
        state = self.state
        state.counters["file"] += 1
        early, rule = await self._meet_fault("file")
        if early is not None:
            return early
        token, _, ext = request.path_params["name"].rpartition(".")
        query = request.query_params
        try:
            job_id, expires = state.links.verify(token, ext, query.get("expires"), query.get("sig"))
        except ValueError:
            return error_response(403, "invalid or missing signature")
        now = state.clock()
        if now >= expires:
            return error_response(403, "the link has expired")
        job = state.jobs.get(job_id)
        if job is None or job.phase(now)[0] != "completed":
            return error_response(404, "file not found")
        if now >= state.link_deadline(job):
            return error_response(403, "the link has expired")
        if ext == "mp4":
            return await _video_response(job, rule)
        if not job.params.return_last_frame:
            return error_response(404, "file not found")
        return _still_response(job, "last_frame", rule)

    async def delete(self, request: Request) -> Response:
        denied = self._authorize(request)
        if denied is not None:
            return denied
        self.state.counters["delete"] += 1
        early, _ = await self._meet_fault("delete")
        if early is not None:
            return early
        job = self.state.jobs.pop(request.path_params["video_id"], None)
        if job is None:
            return error_response(404, "video not found")
        return JSONBody({"id": job.id, "object": "video.deleted", "deleted": True})


async def _video_response(job: Job, rule: FaultRule | None) -> Response:
    """The job's MP4: rendered off the event loop (FFmpeg blocks), cached by render spec."""
    core = await asyncio.to_thread(render_mp4, job.render)
    size = served_size(len(core), job.video_bytes)
    if rule is not None and rule.kind == "cut_file":
        return Response(_head(core, job, rule.truncate_at), media_type="video/mp4")
    return _streamed(
        iter_video_chunks(core, job.content_seed, job.video_bytes), size, "video/mp4", rule
    )


def _head(core: bytes, job: Job, size: int) -> bytes:
    """The first ``size`` bytes of the job's served file."""
    head = bytearray()
    for chunk in iter_video_chunks(core, job.content_seed, job.video_bytes):
        head += chunk
        if len(head) >= size:
            break
    return bytes(head[:size])


def _still_response(job: Job, variant: str, rule: FaultRule | None) -> Response:
    """The last frame (or, for ``thumbnail``, the first frame) as the exact pixels, PNG."""
    counter = job.render.last_counter if variant == "last_frame" else job.render.start_frame
    png = still_png(job.render, counter)
    if rule is not None and rule.kind == "truncate":
        return _streamed([png], len(png), "image/png", rule)
    return Response(png, media_type="image/png")


def _streamed(
    chunks: Iterable[bytes], size: int, media_type: str, rule: FaultRule | None
) -> Response:
    """A streamed body with an honest Content-Length, cut short when ``rule`` truncates."""
    stop_after = rule.truncate_at if rule is not None and rule.kind == "truncate" else None
    pause = rule.sleep_seconds if rule is not None and rule.kind == "slow" else 0.0
    return StreamingResponse(
        stream_chunks(chunks, stop_after=stop_after, pause=pause),
        media_type=media_type,
        headers={"content-length": str(size)},
    )
