"""Webhook signing secrets at rest: sealed with Fernet (AES-128-CBC + HMAC-SHA256, from the
``cryptography`` package) under keys from ``GATEWAY_WEBHOOK_SECRET_KEY``, so the database never
holds a secret in plain text and a copy of it alone signs nothing.

The setting lists keys newest first, comma separated: the first seals, every one opens. To
rotate: put a new key in front, run ``gateway webhooks reseal`` (re-encrypts every secret with
it), then drop the old key.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from gateway.domain.webhooks import SECRET_BYTES, encode_secret


class SecretKeyError(ValueError):
    """The key setting is missing or malformed, or a sealed secret opens with none of its keys."""


class SecretBox:
    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise SecretKeyError(
                "webhooks need GATEWAY_WEBHOOK_SECRET_KEY (make one with"
                " `gateway webhooks new-key`)"
            )
        try:
            self._fernet = MultiFernet([Fernet(key.encode()) for key in keys])
        except ValueError as exc:
            # The message never includes the key itself.
            raise SecretKeyError(
                "GATEWAY_WEBHOOK_SECRET_KEY must hold Fernet keys (32 url-safe base64 bytes),"
                " comma separated, newest first"
            ) from exc

    @classmethod
    def from_setting(cls, value: str) -> SecretBox:
        return cls([part.strip() for part in value.split(",") if part.strip()])

    @staticmethod
    def new_key() -> str:
        return Fernet.generate_key().decode()

    @staticmethod
    def new_secret() -> str:
        """A fresh ``whsec_`` signing secret (32 random bytes)."""
        return encode_secret(secrets.token_bytes(SECRET_BYTES))

    def seal(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode()).decode()

    def open(self, sealed: str) -> str:
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken as exc:
            raise SecretKeyError(
                "a webhook secret does not open with any key in GATEWAY_WEBHOOK_SECRET_KEY"
                " (was a key removed before `gateway webhooks reseal`?)"
            ) from exc

    def reseal(self, sealed: str) -> str:
        """The same secret sealed with the newest key."""
        try:
            return self._fernet.rotate(sealed.encode()).decode()
        except InvalidToken as exc:
            raise SecretKeyError("a webhook secret does not open with any configured key") from exc
