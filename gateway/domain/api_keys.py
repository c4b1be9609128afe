"""Gateway API keys: their format, how they are made and how they are hashed for storage.

A key is ``gw-`` plus 43 URL-safe characters (256 random bits). Only its sha256 is stored: the
keys are random enough that a slow password hash buys nothing, and sha256 keeps auth cheap.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

KEY_PREFIX = "gw-"
_KEY_PATTERN = re.compile(r"^gw-[A-Za-z0-9_-]{20,128}$")
DISPLAY_PREFIX_CHARS = 10


@dataclass(frozen=True, slots=True)
class NewKey:
    """A freshly made key: the plaintext is shown once and never stored."""

    plaintext: str
    key_hash: str
    prefix: str


def generate_key() -> NewKey:
    plaintext = KEY_PREFIX + secrets.token_urlsafe(32)
    return NewKey(
        plaintext=plaintext, key_hash=hash_key(plaintext), prefix=display_prefix(plaintext)
    )


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def display_prefix(plaintext: str) -> str:
    """The first characters of a key, safe to show in listings (``gw-AbCdEfG``)."""
    return plaintext[:DISPLAY_PREFIX_CHARS]


def is_well_formed(token: str) -> bool:
    return _KEY_PATTERN.match(token) is not None
