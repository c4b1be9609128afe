"""Who is looking at the dashboard: sign-in with the admin token (or, when allowed, a team key
for a read-only team lead), the signed session cookie, CSRF checks, and sign-out.

The cookie is ``HttpOnly``, ``SameSite=Strict``, limited to ``/dashboard``, expires with the
session, and is ``Secure`` whenever the request came over HTTPS. Every state-changing request
is a POST carrying a CSRF token tied to the session. The dashboard answers 404 (as if absent)
when it is disabled or no admin token is configured.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from functools import wraps
from urllib.parse import parse_qsl, quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from gateway.errors import (
    AuthenticationFailed,
    GatewayError,
    InvalidRequest,
    NotFound,
    UnsupportedMediaType,
)
from gateway.web.body import read_limited
from gateway.web.context import context
from gateway.web.dashboard.render import render
from gateway.web.dashboard.session import COOKIE, PRE_COOKIE, Session, Signer, new_nonce
from gateway.web.dashboard.throttle import SignInThrottle

Page = Callable[[Request], Awaitable[Response]]
PREFIX = "/dashboard"
FORM_LIMIT = 64 * 1024
FORM_FIELDS = 50


def signer(request: Request) -> Signer:
    """The signer for this app's admin token; raises when the dashboard is off."""
    settings = context(request).settings
    if not settings.dashboard.enabled or not settings.admin_token:
        raise NotFound(f"Unknown path {request.url.path}.", code="unknown_url")  # as if absent
    cached = getattr(request.app.state, "dashboard_signer", None)
    if not isinstance(cached, Signer):
        cached = Signer(str(settings.admin_token))
        request.app.state.dashboard_signer = cached
    return cached


async def current_session(request: Request) -> Session | None:
    """The valid session on this request, or None. A lead's session ends with its key."""
    ctx = context(request)
    session = signer(request).read(request.cookies.get(COOKIE), now=ctx.clock())
    if session is None or session.is_admin:
        return session
    if not ctx.settings.dashboard.team_leads or session.team_id is None:
        return None
    keys = await ctx.store.list_keys(session.team_id)
    if not any(k.id == session.key_id and k.active for k in keys):
        return None
    return session


def signed_in(page: Page) -> Page:
    """Run ``page`` with ``request.state.session`` set, or redirect to the sign-in form."""

    @wraps(page)
    async def guarded(request: Request) -> Response:
        session = await current_session(request)
        if session is None:
            target = request.url.path
            if request.url.query:
                target += "?" + request.url.query
            return RedirectResponse(f"{PREFIX}/signin?next={quote(target, safe='')}", 303)
        request.state.session = session
        request.state.csrf = signer(request).csrf_token(session.nonce)
        if request.method == "POST":
            form = await read_form(request)
            if not signer(request).csrf_ok(session.nonce, form.get("csrf")):
                return render(
                    request,
                    "error.html",
                    {
                        "message": "The form expired or did not come from this dashboard: reload"
                        " the page and try again."
                    },
                    status=403,
                )
        try:
            return await page(request)
        except GatewayError as exc:
            if exc.status >= 500:
                raise
            return render(request, "error.html", {"message": exc.message}, status=exc.status)

    return guarded


def admin_only(page: Page) -> Page:
    """``signed_in``, and only for the admin (a team lead's view is read-only)."""

    async def check(request: Request) -> Response:
        if not request.state.session.is_admin:
            return render(
                request, "error.html", {"message": "Team leads have a read-only view."}, status=403
            )
        return await page(request)

    return signed_in(wraps(page)(check))


async def read_form(request: Request) -> dict[str, str]:
    """The urlencoded form, read once (cached on the request) and bounded: at most
    ``FORM_LIMIT`` bytes (413 past that, before buffering more) and ``FORM_FIELDS`` fields.
    A field given twice keeps its first value."""
    cached = getattr(request.state, "form", None)
    if isinstance(cached, dict):
        return cached
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != "application/x-www-form-urlencoded":
        raise UnsupportedMediaType("Dashboard forms are sent as application/x-www-form-urlencoded.")
    raw = await read_limited(request, FORM_LIMIT)
    try:
        pairs = parse_qsl(raw.decode(), keep_blank_values=True, max_num_fields=FORM_FIELDS)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidRequest("The form could not be read.", code="invalid_form") from exc
    fields: dict[str, str] = {}
    for name, value in pairs:
        fields.setdefault(name, value)
    request.state.form = fields
    return fields


def session_of(request: Request) -> Session:
    session = request.state.session
    assert isinstance(session, Session)
    return session


# -- sign-in and sign-out -------------------------------------------------------------------


async def signin_form(request: Request) -> Response:
    sign = signer(request)
    if await current_session(request) is not None:
        return RedirectResponse(_next(request.query_params.get("next")), 303)
    return _signin_page(request, sign, error=None, status=200)


async def signin(request: Request) -> Response:
    sign = signer(request)
    ctx = context(request)
    address = request.client.host if request.client else "unknown"
    wait = throttle(request).retry_after(address)
    if wait is not None:
        minutes = max(1, round(wait / 60))
        return _signin_page(
            request,
            sign,
            error=f"Too many failed sign-ins from your address: try again in {minutes} min.",
            status=429,
        )
    form = await read_form(request)
    if not sign.csrf_ok(request.cookies.get(PRE_COOKIE), form.get("csrf")):
        return _signin_page(request, sign, error="The sign-in form expired: try again.", status=403)
    token = form.get("token", "").strip()
    lifetime = ctx.settings.dashboard.session_hours * 3600
    now = ctx.clock()
    if hmac.compare_digest(token.encode(), str(ctx.settings.admin_token).encode()):
        _, cookie = sign.issue("admin", now=now, lifetime=lifetime)
    else:
        principal = None
        if ctx.settings.dashboard.team_leads and token.startswith("gw-"):
            try:
                principal = await ctx.keys.authenticate(f"Bearer {token}")
            except AuthenticationFailed:
                principal = None
        if principal is None:
            throttle(request).failed(address)
            return _signin_page(request, sign, error="That token is not valid.", status=401)
        _, cookie = sign.issue(
            "lead", now=now, lifetime=lifetime, team_id=principal.team_id, key_id=principal.key_id
        )
    throttle(request).succeeded(address)
    response = RedirectResponse(_next(form.get("next")), 303)
    _set_cookie(request, response, COOKIE, cookie, max_age=int(lifetime))
    response.delete_cookie(PRE_COOKIE, path=PREFIX, httponly=True, samesite="strict")
    return response


def throttle(request: Request) -> SignInThrottle:
    """This app's sign-in throttle (one per process, made on first use)."""
    current = getattr(request.app.state, "dashboard_throttle", None)
    if not isinstance(current, SignInThrottle):
        current = SignInThrottle()
        request.app.state.dashboard_throttle = current
    return current


@signed_in
async def signout(request: Request) -> Response:
    response = RedirectResponse(f"{PREFIX}/signin", 303)
    response.delete_cookie(COOKIE, path=PREFIX, httponly=True, samesite="strict")
    return response


def _signin_page(request: Request, sign: Signer, *, error: str | None, status: int) -> Response:
    nonce = new_nonce()
    response = render(
        request,
        "signin.html",
        {
            "csrf": sign.csrf_token(nonce),
            "next": _next(request.query_params.get("next") or request.query_params.get("n")),
            "error": error,
            "team_leads": context(request).settings.dashboard.team_leads,
        },
        status=status,
    )
    _set_cookie(request, response, PRE_COOKIE, nonce, max_age=3600)
    return response


def _set_cookie(
    request: Request, response: Response, name: str, value: str, *, max_age: int
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def _next(value: str | None) -> str:
    """Where to go after sign-in: only a dashboard path of ours (never another site)."""
    if (
        value
        and value.startswith(PREFIX + "/")
        and not value.startswith("//")
        and "\\" not in value
    ):
        return value
    return PREFIX + "/"
