"""Rendering dashboard pages: one Jinja2 environment (autoescaped, built on first use, never at
import) with filters that format numbers with their units."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse

from gateway.domain.money import format_usd

TEMPLATES = Path(__file__).parent / "templates"


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        usd=format_usd,
        duration=format_duration,
        percent=format_percent,
        size=format_bytes,
        when=format_time,
    )
    return env


def render(
    request: Request, name: str, values: dict[str, Any], *, status: int = 200
) -> HTMLResponse:
    page = {
        "session": getattr(request.state, "session", None),
        "csrf": getattr(request.state, "csrf", None),
        "path": request.url.path,
        **values,
    }
    html = environment().get_template(name).render(page)
    return HTMLResponse(html, status_code=status)


def format_duration(seconds: float | None) -> str:
    """ "—" when unknown; "42 s", "3 min 20 s", "2 h 5 min"."""
    if seconds is None:
        return "—"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def format_percent(share: float | None) -> str:
    if share is None:
        return "—"
    return f"{share * 100:.1f} %"


def format_bytes(size: int | None) -> str:
    """ "—" when unknown; "512 B", "64.0 KiB", "1.5 MiB", "2.0 GiB"."""
    if size is None:
        return "—"
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if value < 1024 or unit == "GiB":
            break
    return f"{value:.1f} {unit}"


def format_time(timestamp: float | None) -> str:
    if timestamp is None:
        return "—"
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
