"""Turning gateway values into HTTP responses: the one JSON encoder, the one error renderer and
the OpenAI Video object.

The only place that knows the wire shape of a Video; routes call these and nothing else.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson
from starlette.responses import Response

from gateway.domain.catalog import size_for
from gateway.domain.chains import Chain
from gateway.domain.jobs import PUBLIC_STATUS
from gateway.domain.media import MediaFacts
from gateway.domain.money import micros_to_usd_str
from gateway.domain.video_request import VideoRequest
from gateway.errors import GatewayError
from gateway.ids import new_id
from gateway.services.creation import Quote
from gateway.store.base import Job


class JSONResponse(Response):
    """A JSON response encoded with orjson (several times faster than the standard library)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error_response(error: GatewayError, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """The OpenAI error envelope for ``error``, with ``Retry-After`` when it has one and
    ``x-should-retry: false`` when a retry cannot change the answer (the SDKs obey it)."""
    out = dict(headers or {})
    if error.retry_after is not None:
        out["Retry-After"] = str(max(1, round(error.retry_after)))
    if error.should_retry is False:
        out["x-should-retry"] = "false"
    return JSONResponse(error.envelope(), status_code=error.status, headers=out)


def render_video(job: Job, base_url: str, media: MediaFacts | None = None) -> dict[str, Any]:
    """The OpenAI Video object for ``job`` plus the Seedance extras, every field always present.

    ``base_url`` is the gateway's public address, for ``last_frame_url``; ``media`` is what the
    probe measured of the stored video (the ``delivered_*`` fields, null until it is stored).
    """
    request = job.request
    error = (
        {"code": job.error_code or "failed", "message": job.error_message or "The job failed."}
        if PUBLIC_STATUS[job.status] == "failed"
        else None
    )
    return {
        "id": job.id,
        "object": "video",
        "model": job.model,
        "status": PUBLIC_STATUS[job.status],
        "progress": 100 if job.status == "completed" else min(job.progress, 99),
        "created_at": job.created_at,
        "completed_at": job.completed_at,
        "expires_at": job.expires_at,
        "prompt": request.prompt,
        "size": size_for(request.ratio, request.resolution),
        "seconds": str(request.duration),
        "remixed_from_video_id": None,
        "error": error,
        "ratio": request.ratio,
        "resolution": request.resolution,
        "duration": request.duration,
        "seed": request.seed,
        "generate_audio": request.generate_audio,
        "return_last_frame": request.return_last_frame,
        "watermark": request.watermark,
        "cost_usd": micros_to_usd_str(
            job.charged_micros if job.charged_micros is not None else job.cost_micros
        ),
        "last_frame_url": (
            f"{base_url}/v1/videos/{job.id}/content?variant=thumbnail"
            if job.last_frame_asset
            else None
        ),
        **(media.extension_fields() if media is not None else NO_MEDIA),
        # A chained video: each segment's plan and status (null for a single upstream job).
        "segments": (
            Chain.from_json(job.chain_json).public(completed=job.status == "completed")
            if job.chain_json
            else None
        ),
    }


NO_MEDIA: dict[str, Any] = {
    "delivered_duration_ms": None,
    "delivered_width": None,
    "delivered_height": None,
    "delivered_codec": None,
    "delivered_audio": None,
}


def render_video_list(
    jobs: list[Job],
    has_more: bool,
    base_url: str,
    media: Mapping[str, MediaFacts] | None = None,
) -> dict[str, Any]:
    """An OpenAI cursor page: ``{object: list, data, first_id, last_id, has_more}``."""
    media = media or {}
    return {
        "object": "list",
        "data": [render_video(job, base_url, media.get(job.id)) for job in jobs],
        "first_id": jobs[0].id if jobs else None,
        "last_id": jobs[-1].id if jobs else None,
        "has_more": has_more,
    }


def render_quote(request: VideoRequest, quote: Quote) -> dict[str, Any]:
    """The dry-run answer: the price and, for every limit that applies, what remains (for the
    organisation's limits only whether the request fits).

    It has an ``id`` (``quote_...``, never stored) and ``created_at``, so the OpenAI SDK, which
    parses every ``videos.create`` answer as a Video, gives callers no ``None`` id; its
    ``object`` ("video.quote") tells it apart from a real video."""
    return {
        "id": new_id("quote"),
        "object": "video.quote",
        "created_at": int(time.time()),
        "model": request.model,
        "seconds": str(request.duration),
        "resolution": request.resolution,
        "size": size_for(request.ratio, request.resolution),
        "cost_usd": micros_to_usd_str(quote.cost),
        "cost_micros": quote.cost,
        "fits": quote.fits,
        "budgets": [
            {"scope": "org", "window": line.window, "fits": line.fits(quote.cost)}
            if line.scope.scope == "org"  # the organisation's figures are not a team's business
            else {
                "scope": line.scope.scope,
                "scope_id": line.scope.id,
                "window": line.window,
                "limit_usd": micros_to_usd_str(line.limit),
                "spent_usd": micros_to_usd_str(line.spent),
                "reserved_usd": micros_to_usd_str(line.reserved),
                "remaining_usd": micros_to_usd_str(line.remaining or 0),
                "fits": line.fits(quote.cost),
            }
            for line in quote.lines
            if line.limit is not None
        ],
    }
