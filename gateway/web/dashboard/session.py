"""Dashboard sessions and CSRF tokens: signed values, no server-side state, no Starlette.

A session is a small JSON payload (role, team, key, expiry, nonce) signed with HMAC-SHA256
under a key derived from the admin token, so rotating the token signs everyone out. CSRF
tokens are HMACs of the session's nonce (after sign-in) or of a pre-sign-in cookie's nonce
(the sign-in form): a page from another origin can neither read nor forge them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Literal

import orjson

Role = Literal["admin", "lead"]
COOKIE = "gw_dashboard"
PRE_COOKIE = "gw_dashboard_pre"  # the sign-in form's CSRF nonce, before there is a session


@dataclass(frozen=True, slots=True)
class Session:
    role: Role
    expires: int
    nonce: str
    team_id: str | None = None  # a lead's team
    key_id: str | None = None  # the key a lead signed in with (revoking it ends the session)

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class Signer:
    """Signs and checks session cookies and CSRF tokens under one secret."""

    def __init__(self, admin_token: str) -> None:
        self._key = hmac.new(
            admin_token.encode(), b"gateway-dashboard-session-v1", hashlib.sha256
        ).digest()

    def issue(
        self,
        role: Role,
        *,
        now: float,
        lifetime: float,
        team_id: str | None = None,
        key_id: str | None = None,
    ) -> tuple[Session, str]:
        session = Session(
            role=role,
            expires=int(now + lifetime),
            nonce=secrets.token_urlsafe(16),
            team_id=team_id,
            key_id=key_id,
        )
        payload = _b64(
            orjson.dumps(
                {"r": role, "e": session.expires, "n": session.nonce, "t": team_id, "k": key_id}
            )
        )
        return session, f"{payload}.{self._mac(b'session:' + payload.encode())}"

    def read(self, cookie: str | None, *, now: float) -> Session | None:
        """The session in a cookie value, or None when absent, forged, malformed or expired."""
        if not cookie or cookie.count(".") != 1:
            return None
        payload, mac = cookie.split(".")
        if not hmac.compare_digest(mac, self._mac(b"session:" + payload.encode())):
            return None
        try:
            data = orjson.loads(_unb64(payload))
            role = data["r"]
            session = Session(
                role=role,
                expires=int(data["e"]),
                nonce=str(data["n"]),
                team_id=data["t"],
                key_id=data["k"],
            )
        except (ValueError, KeyError, TypeError):
            return None
        if role not in ("admin", "lead") or session.expires <= now:
            return None
        return session

    def csrf_token(self, nonce: str) -> str:
        return self._mac(b"csrf:" + nonce.encode())

    def csrf_ok(self, nonce: str | None, token: object) -> bool:
        return (
            bool(nonce)
            and isinstance(token, str)
            and hmac.compare_digest(token, self.csrf_token(str(nonce)))
        )

    def _mac(self, message: bytes) -> str:
        return _b64(hmac.new(self._key, message, hashlib.sha256).digest())


def new_nonce() -> str:
    return secrets.token_urlsafe(16)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
