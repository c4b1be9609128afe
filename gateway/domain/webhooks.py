"""Webhooks as values: the event types we emit, the event body in OpenAI's shape, the Standard
Webhooks signature, the retry schedule and endpoint input checks. Pure: no I/O, no clock (times
are passed in), no randomness (the jitter draw is passed in), so every rule is unit-testable.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from urllib.parse import urlsplit

import orjson

from gateway.errors import InvalidRequest

VIDEO_COMPLETED = "video.completed"
VIDEO_FAILED = "video.failed"
# What this gateway emits: the video events of OpenAI's webhook event types.
EVENT_TYPES: tuple[str, ...] = (VIDEO_COMPLETED, VIDEO_FAILED)
SECRET_PREFIX = "whsec_"  # noqa: S105 (a format marker, not a secret)
SECRET_BYTES = 32
MAX_NAME_LENGTH = 256
MAX_URL_LENGTH = 2048


def event_body(event_id: str, event_type: str, created_at: int, video_id: str) -> bytes:
    """The exact bytes sent for an event (OpenAI's ``{"id", "object", "type", "created_at",
    "data": {"id"}}``); stored once so every retry sends, and signs, the same body."""
    return orjson.dumps(
        {
            "id": event_id,
            "object": "event",
            "type": event_type,
            "created_at": created_at,
            "data": {"id": video_id},
        }
    )


def encode_secret(raw: bytes) -> str:
    """``whsec_`` + base64: the form OpenAI's SDK and ``standardwebhooks`` both accept."""
    return SECRET_PREFIX + base64.b64encode(raw).decode()


def decode_secret(secret: str) -> bytes:
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("a signing secret starts with whsec_")
    return base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)


def secret_hint(secret: str) -> str:
    """A masked form safe to show and store in plain text: the prefix and the last 4 characters."""
    return f"{SECRET_PREFIX}****{secret[-4:]}"


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256 of "id.timestamp.body">`` (Standard Webhooks)."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(decode_secret(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_header(
    secrets: Sequence[str], message_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """The three Standard Webhooks headers; one signature per secret (space separated) while an
    old secret is still honoured after a rotation, so receivers holding either one verify."""
    if not secrets:
        raise ValueError("at least one signing secret is needed")
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signature(s, message_id, timestamp, body) for s in secrets),
    }


def retry_delay(attempts: int, *, base: float, maximum: float, draw: float) -> float:
    """Seconds before the next try after ``attempts`` failed tries: ``base * 2^(attempts-1)``
    capped at ``maximum``, then jittered into its upper half by ``draw`` in [0, 1) ("equal
    jitter"), so receivers that come back are not hit by every sender at the same instant."""
    exponent = min(max(0, attempts - 1), 62)
    ceiling = min(maximum, base * float(2**exponent))
    return ceiling / 2 + ceiling / 2 * min(max(draw, 0.0), 1.0)


def gives_up(created_at: float, next_attempt_at: float, max_age_seconds: float) -> bool:
    """True when the next try would come after the event's delivery window has closed."""
    return next_attempt_at > created_at + max_age_seconds


def disables(status: str, failures: int, disable_after: int) -> bool:
    """True when an enabled endpoint's ``failures`` in a row (this one counted) reach
    ``disable_after``: it is disabled, and its deliveries wait until it is enabled again."""
    return status == "enabled" and failures >= disable_after


def check_event_types(values: object, *, param: str = "event_types") -> tuple[str, ...]:
    """The requested event types, deduplicated in our order; only the ones we emit."""
    if not isinstance(values, list) or not values:
        raise InvalidRequest(f"'{param}' must be a non-empty list of event types.", param=param)
    unknown = sorted({str(v) for v in values if v not in EVENT_TYPES})
    if unknown:
        raise InvalidRequest(
            f"Unsupported event types {unknown}: this gateway emits {list(EVENT_TYPES)}.",
            param=param,
            code="unsupported_event_type",
        )
    return tuple(t for t in EVENT_TYPES if t in values)


def check_name(value: object) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_NAME_LENGTH:
        raise InvalidRequest(
            f"'name' must be a non-empty string of at most {MAX_NAME_LENGTH} characters.",
            param="name",
        )
    return value.strip()


def check_url_shape(value: object) -> str:
    """An absolute http(s) URL without credentials (where it points is checked separately,
    against the outbound policy)."""
    if not isinstance(value, str) or not value or len(value) > MAX_URL_LENGTH:
        raise InvalidRequest("'url' must be an absolute http(s) URL.", param="url")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequest("'url' must be an absolute http(s) URL.", param="url")
    if parts.username or parts.password:
        raise InvalidRequest("'url' must not contain credentials.", param="url")
    return value
