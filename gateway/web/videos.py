"""The ``/v1/videos`` routes: thin handlers that decode, call the video service and render."""

from __future__ import annotations

from typing import get_args

from starlette.requests import Request
from starlette.responses import Response

from gateway.domain.jobs import TERMINAL_STATUSES
from gateway.domain.money import micros_to_usd_str
from gateway.domain.requests import parse_video_request
from gateway.errors import InvalidRequest, NotFound, UnsupportedFeature
from gateway.services.creation import CacheDirective
from gateway.store.base import Order
from gateway.web.body import decode_body
from gateway.web.context import authenticate, context
from gateway.web.rendering import JSONResponse, render_quote, render_video, render_video_list

QUOTE_PREFIX = "quote_"
DEFAULT_LIST_LIMIT = 20
MAX_IDEMPOTENCY_KEY = 255
MAX_LIST_LIMIT = 100


async def create_video(request: Request) -> Response:
    ctx = context(request)
    principal = await authenticate(request)
    body, from_form = await decode_body(request, ctx.settings.server.max_body_bytes)
    video_request = parse_video_request(
        body,
        ctx.catalog,
        reject_unknown_fields=ctx.settings.requests.reject_unknown_fields,
        from_form=from_form,
        max_chained_seconds=ctx.settings.requests.max_chained_seconds,
    )
    if _is_dry_run(request.headers.get("x-gateway-dry-run")):
        quote = await ctx.creator.quote(principal, video_request)
        return JSONResponse(
            render_quote(video_request, quote),
            headers={"X-Gateway-Cost-USD": micros_to_usd_str(quote.cost)},
        )
    _note_client_retry(request)
    admission = await ctx.creator.create(
        principal,
        video_request,
        directive=cache_directive(request.headers.get("cache-control")),
        request_id=request.state.request_id,
        idempotency_key=idempotency_key(request.headers.get("idempotency-key")),
    )
    job = admission.job
    request.state.model = job.model
    request.state.cost_micros = job.cost_micros
    request.state.cache_result = admission.outcome
    request.state.upstream_id = job.upstream_id
    headers = _poll_headers(request, job.status)
    headers["X-Gateway-Cache"] = admission.outcome
    headers["X-Gateway-Cost-USD"] = micros_to_usd_str(job.cost_micros)
    if admission.replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(render_video(job, public_base_url(request)), headers=headers)


def idempotency_key(value: str | None) -> str | None:
    """The client's ``Idempotency-Key``: 1 to 255 visible ASCII characters (Stripe's rule)."""
    if value is None:
        return None
    key = value.strip()
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY or not all(" " <= c <= "~" for c in key):
        raise InvalidRequest(
            f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters.",
            param="Idempotency-Key",
        )
    return key


def _note_client_retry(request: Request) -> None:
    """The OpenAI SDKs number their retries in ``x-stainless-retry-count``: log and count them
    (without an Idempotency-Key, a retried create may pay twice)."""
    raw = request.headers.get("x-stainless-retry-count", "0").strip()
    if raw.isdigit() and int(raw) > 0:
        request.state.client_retry_count = int(raw)
        context(request).metrics.create_retries.inc()


def _is_dry_run(value: str | None) -> bool:
    return value is not None and value.strip().lower() in ("1", "true", "yes")


def cache_directive(cache_control: str | None) -> CacheDirective:
    """``no-store`` (no lookup, no registration) beats ``no-cache`` (fresh generation)."""
    directives = {part.strip().lower() for part in (cache_control or "").split(",")}
    if "no-store" in directives:
        return "no-store"
    if "no-cache" in directives:
        return "no-cache"
    return "default"


async def retrieve_video(request: Request) -> Response:
    principal = await authenticate(request)
    if request.path_params["video_id"].startswith(QUOTE_PREFIX):
        raise NotFound(
            "A quote is not a video: a dry run (X-Gateway-Dry-Run) creates nothing to retrieve"
            " or poll. Create the video without the header.",
            param="video_id",
        )
    videos = context(request).videos
    job = await videos.get(principal, request.path_params["video_id"])
    media = (await videos.media_of([job])).get(job.id)
    return JSONResponse(
        render_video(job, public_base_url(request), media),
        headers=_poll_headers(request, job.status),
    )


def public_base_url(request: Request) -> str:
    """The gateway's address as clients reach it: ``server.public_url`` or the request's."""
    configured = context(request).settings.server.public_url
    return configured.rstrip("/") if configured else str(request.base_url).rstrip("/")


def _poll_headers(request: Request, status: str) -> dict[str, str]:
    if status in TERMINAL_STATUSES:
        return {}
    return {"openai-poll-after-ms": str(context(request).settings.jobs.poll_after_ms)}


async def list_videos(request: Request) -> Response:
    principal = await authenticate(request)
    query = request.query_params
    order = query.get("order", "desc")
    if order not in get_args(Order):
        raise InvalidRequest("order must be 'asc' or 'desc'.", param="order")
    raw_limit = query.get("limit", str(DEFAULT_LIST_LIMIT))
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_LIST_LIMIT:
        raise InvalidRequest(f"limit must be an integer from 1 to {MAX_LIST_LIMIT}.", param="limit")
    jobs, has_more = await context(request).videos.list(
        principal,
        after=query.get("after") or None,
        limit=int(raw_limit),
        order=order,  # type: ignore[arg-type]  # checked against Order above
    )
    media = await context(request).videos.media_of(jobs)
    return JSONResponse(render_video_list(jobs, has_more, public_base_url(request), media))


async def delete_video(request: Request) -> Response:
    principal = await authenticate(request)
    video_id = request.path_params["video_id"]
    await context(request).videos.delete(principal, video_id)
    return JSONResponse({"id": video_id, "object": "video.deleted", "deleted": True})


async def not_supported(request: Request) -> Response:
    """Sora-only operations (remix, edits, extensions, characters)."""
    await authenticate(request)
    raise UnsupportedFeature(
        "This operation is not supported for Seedance models "
        "(remix, edits, extensions and characters are Sora features)."
    )
