"""The dashboard's read pages: overview, the video gallery and a video's detail (with its
player), and the jobs that need a person. A team lead sees only its own team everywhere."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlencode

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response

from gateway.domain.jobs import PUBLIC_STATUS
from gateway.domain.video_request import VideoRequest
from gateway.errors import NotFound
from gateway.services.keys import Principal
from gateway.services.overview import OverviewService
from gateway.store.base import Job
from gateway.store.browsing import JobFilter
from gateway.web.content import content_variant, stored_response
from gateway.web.context import context
from gateway.web.dashboard.auth import session_of, signed_in
from gateway.web.dashboard.charts import (
    COLUMNS_HEIGHT,
    WIDTH,
    count_bars,
    hourly_columns,
    spend_bar,
)
from gateway.web.dashboard.render import render
from gateway.web.dashboard.timeline import timeline

PAGE_SIZE = 24
STATUS_FILTERS: dict[str, tuple[str, ...]] = {
    "queued": ("submitting", "queued"),
    "in_progress": ("in_progress", "downloading"),
    "completed": ("completed",),
    "failed": ("failed",),
}
LIVE_ORDER = ("queued", "running", "awaiting_download")
STATUS_ORDER = ("submitting", "queued", "in_progress", "downloading", "completed", "failed")
CACHE_ORDER = ("miss", "hit", "coalesced", "bypass", "none")
# Whether the Jobs page offers charge/refund buttons for unknown outcomes (the resolve route).
RESOLVE_READY = True


def overview_service(request: Request) -> OverviewService:
    ctx = context(request)
    return OverviewService(
        ctx.store,
        deadline_seconds=ctx.settings.jobs.deadline_seconds,
        near_deadline_seconds=ctx.settings.dashboard.near_deadline_seconds,
        clock=ctx.clock,
    )


def scope_team(request: Request) -> str | None:
    """The team a view is limited to: a lead's own, or None for the admin (everything)."""
    session = session_of(request)
    return None if session.is_admin else session.team_id


@signed_in
async def overview(request: Request) -> Response:
    data = await overview_service(request).overview(scope_team(request))
    spends = [*data.teams, *([data.org] if data.org else [])]
    largest = {w: max((s.used(w) for s in spends), default=0) for w in ("day", "month")}
    stats = data.last_24h
    return render(
        request,
        "overview.html",
        {
            "data": data,
            "width": WIDTH,
            "day_bars": [spend_bar(s, "day", largest["day"]) for s in data.teams],
            "month_bars": [spend_bar(s, "month", largest["month"]) for s in data.teams],
            "org_bars": [spend_bar(data.org, w, largest[w]) for w in ("day", "month")]
            if data.org
            else [],
            "live_bars": count_bars(data.live, LIVE_ORDER),
            "status_bars": count_bars(stats.by_status, STATUS_ORDER),
            "cache_bars": count_bars(stats.by_cache, CACHE_ORDER),
            "stats": stats,
            "columns": hourly_columns(data.per_hour, int(data.now // 3600) % 24),
            "columns_height": COLUMNS_HEIGHT,
        },
    )


@signed_in
async def videos(request: Request) -> Response:
    ctx = context(request)
    params = request.query_params
    errors: list[str] = []
    all_teams = await ctx.store.list_teams()
    lead_team = scope_team(request)
    teams = [t for t in all_teams if lead_team is None or t.id == lead_team]
    where = _gallery_filter(params, {t.name: t.id for t in teams}, lead_team, errors)
    keys = await ctx.store.list_keys(lead_team)
    jobs: list[Job] = []
    more = False
    if not errors:
        jobs, more = await ctx.store.find_jobs(
            where, before=params.get("before") or None, limit=PAGE_SIZE
        )
    return render(
        request,
        "videos.html",
        {
            "jobs": jobs,
            "public": PUBLIC_STATUS,
            "teams": teams,
            "keys": keys,
            "team_names": {t.id: t.name for t in all_teams},
            "key_names": {k.id: k.name or k.prefix for k in keys},
            "models": sorted(ctx.catalog.models),
            "statuses": list(STATUS_FILTERS),
            "params": dict(params),
            "errors": errors,
            "next_query": _next_page_query(params, jobs) if more else None,
        },
    )


def _gallery_filter(
    params: QueryParams, team_ids: dict[str, str], lead_team: str | None, errors: list[str]
) -> JobFilter:
    """The gallery's filter from the query string; each invalid value adds to ``errors``. A
    team lead's filter is always its own team."""
    team_id = lead_team
    if params.get("team") and lead_team is None:
        team_id = team_ids.get(params["team"])
        if team_id is None:
            errors.append(f"No team named {params['team']!r}.")
    status = params.get("status") or ""
    if status and status not in STATUS_FILTERS:
        errors.append(f"status must be one of {', '.join(STATUS_FILTERS)}.")
    return JobFilter(
        team_id=team_id,
        key_id=params.get("key") or None,
        model=params.get("model") or None,
        statuses=STATUS_FILTERS.get(status, ()),
        created_from=_day(params.get("from"), errors, "from"),
        created_to=_day(params.get("to"), errors, "to", end=True),
    )


def _next_page_query(params: QueryParams, jobs: list[Job]) -> str | None:
    """The query string of the next page: the same filters, older than the last job shown."""
    if not jobs:
        return None
    kept = [(k, v) for k, v in params.multi_items() if k != "before" and v]
    return urlencode([*kept, ("before", jobs[-1].id)])


@signed_in
async def video(request: Request) -> Response:
    ctx = context(request)
    job = await _visible_job(request)
    ledger = await ctx.store.ledger_lines(job.id)
    team = await ctx.store.team_by_id(job.team_id)
    key = next((k for k in await ctx.store.list_keys(job.team_id) if k.id == job.key_id), None)
    video_asset = await ctx.store.get_asset(job.video_asset) if job.video_asset else None
    return render(
        request,
        "video.html",
        {
            "job": job,
            "public": PUBLIC_STATUS,
            "team": team,
            "key": key,
            "asset": video_asset,
            "request_lines": _request_lines(job.request),
            "timeline": timeline(job, ledger),
            "ledger": ledger,
        },
    )


@signed_in
async def video_content(request: Request) -> Response:
    """The stored video or thumbnail for the player, with Range support, from our storage."""
    job = await _visible_job(request)
    variant = content_variant(request.query_params.get("variant", "video"))
    content = await context(request).videos.content(
        Principal(key_id=job.key_id, team_id=job.team_id), job.id, variant
    )
    return stored_response(request, content, variant)


@signed_in
async def jobs(request: Request) -> Response:
    return await jobs_page(request)


async def jobs_page(request: Request, *, error: str | None = None, status: int = 200) -> Response:
    """The Jobs page, with an error from a failed resolution or a notice of a done one."""
    service = overview_service(request)
    attention = await service.needs_attention(scope_team(request))
    notice = None
    for word in ("charged", "refunded"):
        if request.query_params.get(word):
            notice = f"Video {request.query_params[word]} {word}."
    return render(
        request,
        "jobs.html",
        {
            "attention": attention,
            "deadline_of": service.deadline_of,
            "now": context(request).clock(),
            "public": PUBLIC_STATUS,
            "resolve_ready": RESOLVE_READY,
            "error": error,
            "notice": notice,
        },
        status=status,
    )


async def _visible_job(request: Request) -> Job:
    video_id = request.path_params["video_id"]
    job = await context(request).store.get_job(video_id, scope_team(request))
    if job is None or job.status == "rejected":
        raise NotFound(f"No video {video_id!r}.", param="video_id")
    return job


def _day(value: str | None, errors: list[str], name: str, *, end: bool = False) -> int | None:
    if not value:
        return None
    try:
        day = datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        errors.append(f"{name} must be a date YYYY-MM-DD.")
        return None
    return int(day.timestamp()) + (86_400 if end else 0)


def _request_lines(request: VideoRequest, limit: int = 300) -> list[tuple[str, str]]:
    """The stored request as JSON, field by field, long values shortened (references can be
    data URLs)."""
    lines = []
    for name, value in request.to_json().items():
        text = str(value)
        lines.append(
            (name, text if len(text) <= limit else text[:limit] + f"… ({len(text)} chars)")
        )
    return lines
