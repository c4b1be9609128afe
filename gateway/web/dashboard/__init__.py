"""The operator's dashboard at ``/dashboard``: server-rendered pages over the same services as
the admin API, mounted as a separate sub-application with its own security headers so the
``/v1`` hot path gains no middleware and no dependency. See docs/dashboard.md."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route, Router

from gateway.web.dashboard import auth, manage, outcomes, pages
from gateway.web.dashboard.security import SecurityHeaders

STATIC = Path(__file__).parent / "static"


async def stylesheet(request: Request) -> Response:
    auth.signer(request)  # 404 while the dashboard is off, like every other page
    return Response(
        (STATIC / "dashboard.css").read_bytes(),
        media_type="text/css",
        headers={"Cache-Control": "public, max-age=3600"},
    )


def dashboard_mount() -> Mount:
    router = Router(
        routes=[
            Route("/", pages.overview, methods=["GET"]),
            Route("/signin", auth.signin_form, methods=["GET"]),
            Route("/signin", auth.signin, methods=["POST"]),
            Route("/signout", auth.signout, methods=["POST"]),
            Route("/teams", manage.teams, methods=["GET"]),
            Route("/teams", manage.create_team, methods=["POST"]),
            Route("/keys", manage.create_key, methods=["POST"]),
            Route("/keys/{key_id}/revoke", manage.revoke_key, methods=["POST"]),
            Route("/budgets", manage.set_budget, methods=["POST"]),
            Route("/budgets/clear", manage.clear_budget, methods=["POST"]),
            Route("/videos", pages.videos, methods=["GET"]),
            Route("/videos/{video_id}", pages.video, methods=["GET"]),
            Route("/videos/{video_id}/content", pages.video_content, methods=["GET", "HEAD"]),
            Route("/jobs", pages.jobs, methods=["GET"]),
            Route("/jobs/{video_id}/resolve", outcomes.resolve, methods=["POST"]),
            Route("/static/dashboard.css", stylesheet, methods=["GET"]),
        ]
    )
    return Mount("/dashboard", app=SecurityHeaders(router))
