"""Cache keys: which requests are known to produce the same video, within which scope.

A key hashes exactly the fields that define the output, taken from the normalized
``VideoRequest`` (so key order, explicit defaults and OpenAI aliases never matter) plus the scope
the cache is shared in. Inline ``data:`` media is keyed by the hash of its decoded bytes.
Pure: imports only the standard library and ``gateway.domain``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from typing import Any, Literal

from gateway.domain.video_request import ContentItem, VideoRequest

CACHE_KEY_VERSION = 1
CacheScope = Literal["team", "key", "org"]

_DATA_URL = re.compile(r"data:([^,;]*)((?:;[^,;]*)*);base64,(.*)", re.S | re.I)
_SPACE = re.compile(r"\s+")


def canonical_request(request: VideoRequest) -> dict[str, Any]:
    """The output-defining fields as plain JSON values; content keeps the client's order.

    A storyboard (``segments``) is keyed only when present, so other requests keep their keys.
    """
    canonical = {
        "model": request.model,
        "prompt": request.prompt,
        "content": [_canonical_item(item) for item in request.content],
        "ratio": request.ratio,
        "resolution": request.resolution,
        "duration": request.duration,
        "generate_audio": request.generate_audio,
        "return_last_frame": request.return_last_frame,
        "seed": request.seed,
        "watermark": request.watermark,
    }
    if request.segments:
        canonical["segments"] = [segment.to_json() for segment in request.segments]
    return canonical


def cache_key(request: VideoRequest, *, scope: CacheScope, scope_id: str) -> str:
    """``"v1:"`` + SHA-256 hex of the canonical JSON of the request within its scope."""
    document = {
        "v": CACHE_KEY_VERSION,
        "scope": scope,
        "scope_id": scope_id,
        "request": canonical_request(request),
    }
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    # "surrogatepass": JSON may carry a lone surrogate in the prompt; it must still hash.
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return f"v{CACHE_KEY_VERSION}:{digest}"


def is_cacheable(request: VideoRequest, *, include_unseeded: bool = False) -> bool:
    """Seeded requests reproduce their video; unseeded ones only when the operator opts in."""
    return request.seed is not None or include_unseeded


def _canonical_item(item: ContentItem) -> dict[str, Any]:
    canonical: dict[str, Any] = {"type": item.type, "role": item.role, "url": item.url}
    inline = _decode_data_url(item.url)
    if inline is not None:
        media_type, payload = inline
        canonical["url"] = f"sha256:{hashlib.sha256(payload).hexdigest()}"
        canonical["media_type"] = media_type
    return canonical


def _decode_data_url(url: str) -> tuple[str, bytes] | None:
    """(lower-cased media type, decoded bytes) of a base64 ``data:`` URL, else None.

    Whitespace (line wrapping) and missing padding are ignored, so only the bytes count;
    parameters such as ``;name=`` are dropped. Anything undecodable is keyed by its text.
    """
    match = _DATA_URL.fullmatch(url)
    if match is None:
        return None
    payload = _SPACE.sub("", match[3]).rstrip("=")
    try:
        decoded = base64.b64decode(payload + "=" * (-len(payload) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    return match[1].strip().lower(), decoded
