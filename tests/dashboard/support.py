"""Signing in to the dashboard over plain HTTP (httpx), for the tests that need no browser."""

from __future__ import annotations

import re

import httpx

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    match = CSRF.search(html)
    assert match, "no CSRF field on the page"
    return match.group(1)


def sign_in(http: httpx.Client, token: str) -> httpx.Response:
    """Fetch the form (sets the pre-sign-in cookie), post the token; returns the POST answer."""
    form = http.get("/dashboard/signin")
    assert form.status_code == 200, form.text
    return http.post(
        "/dashboard/signin", data={"csrf": csrf_of(form.text), "token": token, "next": ""}
    )
