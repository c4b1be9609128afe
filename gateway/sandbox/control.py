"""The ``/_sandbox`` control API (no auth): stats, reset, runtime config, faults, forced job
fates and link expiry, for tests and benchmarks that run the sandbox as a separate process."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from gateway.sandbox.faults import FaultRule
from gateway.sandbox.responses import JSONBody, error_response
from gateway.sandbox.state import Job, SandboxState


def control_routes(state: SandboxState) -> list[BaseRoute]:
    """The control endpoints bound to ``state``."""
    control = SandboxControl(state)
    return [
        Route("/_sandbox/stats", control.stats, methods=["GET"]),
        Route("/_sandbox/reset", control.reset, methods=["POST"]),
        Route("/_sandbox/config", control.get_config, methods=["GET"]),
        Route("/_sandbox/config", control.set_config, methods=["POST"]),
        Route("/_sandbox/faults", control.list_faults, methods=["GET"]),
        Route("/_sandbox/faults", control.add_fault, methods=["POST"]),
        Route("/_sandbox/faults", control.clear_faults, methods=["DELETE"]),
        Route("/_sandbox/jobs", control.list_jobs, methods=["GET"]),
        Route("/_sandbox/jobs/{video_id}", control.get_job, methods=["GET"]),
        Route("/_sandbox/jobs/{video_id}/status", control.force_status, methods=["POST"]),
        Route("/_sandbox/expire_links", control.expire_links, methods=["POST"]),
    ]


class InvalidControlBody(Exception):
    """A control request body that is not the JSON object expected."""


async def _json_object(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidControlBody("the body is not valid JSON") from exc
    if not isinstance(data, dict):
        raise InvalidControlBody("the body must be a JSON object")
    return data


def _job_record(state: SandboxState, job: Job) -> dict[str, Any]:
    status, progress = job.phase(state.clock())
    return {
        "id": job.id,
        "status": status,
        "progress": progress,
        "created_at": job.created_at,
        "finished_at": job.finished_at,
        "seed": job.seed,
        "video_bytes": job.video_bytes,
        "error": job.error,
        "body": job.body,
    }


class SandboxControl:
    """Handlers of the control API."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state

    async def stats(self, request: Request) -> Response:
        return JSONBody(self.state.stats())

    async def reset(self, request: Request) -> Response:
        self.state.reset()
        return JSONBody(self.state.stats())

    async def get_config(self, request: Request) -> Response:
        return JSONBody(dataclasses.asdict(self.state.config))

    async def set_config(self, request: Request) -> Response:
        try:
            config = self.state.set_config(**await _json_object(request))
        except (InvalidControlBody, ValueError) as exc:
            return error_response(400, str(exc))
        return JSONBody(dataclasses.asdict(config))

    async def list_faults(self, request: Request) -> Response:
        return JSONBody({"faults": [rule.to_json() for rule in self.state.faults.rules()]})

    async def add_fault(self, request: Request) -> Response:
        try:
            rule = FaultRule.from_json(await _json_object(request))
        except (InvalidControlBody, ValueError, TypeError) as exc:
            return error_response(400, str(exc))
        self.state.add_fault(rule)
        return JSONBody({"added": rule.to_json(), "faults": len(self.state.faults)})

    async def clear_faults(self, request: Request) -> Response:
        self.state.faults.clear()
        return JSONBody({"faults": 0})

    async def list_jobs(self, request: Request) -> Response:
        return JSONBody(
            {"data": [_job_record(self.state, job) for job in self.state.jobs.values()]}
        )

    async def get_job(self, request: Request) -> Response:
        job = self.state.jobs.get(request.path_params["video_id"])
        if job is None:
            return error_response(404, "video not found")
        return JSONBody(_job_record(self.state, job))

    async def force_status(self, request: Request) -> Response:
        try:
            data = await _json_object(request)
        except InvalidControlBody as exc:
            return error_response(400, str(exc))
        status, error = data.get("status"), data.get("error")
        if not isinstance(status, str) or (error is not None and not isinstance(error, dict)):
            return error_response(400, 'expected {"status": ..., "error": {...}}')
        try:
            job = self.state.force_status(request.path_params["video_id"], status, error)
        except KeyError:
            return error_response(404, "video not found")
        except ValueError as exc:
            return error_response(400, str(exc))
        return JSONBody(_job_record(self.state, job))

    async def expire_links(self, request: Request) -> Response:
        return JSONBody({"expired": self.state.expire_links()})
