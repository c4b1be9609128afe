"""Inline (``data:``) media in a request: found, decoded, and replaced by references in the copy
of the request the database keeps.

A 20 MiB image inline in ``request_json`` would make every row read and every backup carry it;
instead the bytes go to the blob store (content-addressed, so a repeated image is stored once)
and the stored request names them by digest. The upstream still receives the request exactly as
the client sent it. Pure: no I/O.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, replace
from typing import Final

from gateway.domain.video_request import StoredMedia, VideoRequest

BLOB_URL_PREFIX: Final = "blob:sha256:"
_DATA_URL: Final = re.compile(
    r"data:([A-Za-z]+/[A-Za-z0-9.+-]+)(?:;[^;,=]+=[^;,]*)*;base64,(.*)", re.S
)


@dataclass(frozen=True, slots=True)
class InlineMedia:
    """The decoded bytes of content item ``index``."""

    index: int
    media_type: str
    data: bytes


@dataclass(frozen=True, slots=True)
class MediaRef:
    """Where item ``index``'s bytes are stored (``key`` is their sha256 hex)."""

    index: int
    key: str
    size: int
    media_type: str


def inline_media(request: VideoRequest) -> list[InlineMedia]:
    """Every ``data:`` URL among the request's content items, decoded (validated upstream of
    here by ``requests.parse_video_request``; an undecodable one is left inline)."""
    found: list[InlineMedia] = []
    for index, item in enumerate(request.content):
        url = item.url
        match = _DATA_URL.fullmatch(url) if url[:5].lower() == "data:" else None
        if match is None:
            continue
        try:
            data = base64.b64decode(match[2], validate=True)
        except (binascii.Error, ValueError):
            continue
        found.append(InlineMedia(index=index, media_type=match[1].lower(), data=data))
    return found


def with_references(request: VideoRequest, refs: list[MediaRef]) -> VideoRequest:
    """A copy of ``request`` whose inline items name their stored blob instead of holding it."""
    content = list(request.content)
    for ref in refs:
        stored = StoredMedia(sha256=ref.key, bytes=ref.size, media_type=ref.media_type)
        content[ref.index] = replace(
            content[ref.index], url=f"{BLOB_URL_PREFIX}{ref.key}", stored=stored
        )
    return replace(request, content=tuple(content))
