"""``GET``/``HEAD /v1/videos/{id}/content``: a stored video or last frame, served from our own
storage with ``ETag``, ``Range`` (206/416), ``If-None-Match`` (304) and constant memory.

Only ``video/mp4`` and PNG/JPEG/WebP are ever served, always with ``X-Content-Type-Options:
nosniff`` and as an attachment (``?disposition=inline`` for players), so stored bytes can never
run as a page in the gateway's origin."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from gateway.domain.ranges import RangeNotSatisfiable, etag_matches, parse_range
from gateway.errors import InvalidRequest, UnsatisfiableRange, UnsupportedFeature
from gateway.media.images import IMAGE_TYPES
from gateway.services.videos import StoredContent, Variant
from gateway.web.context import authenticate, context
from gateway.web.rendering import error_response

SERVED_TYPES = frozenset({"video/mp4", *IMAGE_TYPES})
EXTENSIONS = {"video/mp4": "mp4", "image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}

VARIANT_ALIASES: dict[str, Variant] = {
    "video": "video",
    "thumbnail": "last_frame",
    "last_frame": "last_frame",
}


def content_variant(raw: str) -> Variant:
    if raw == "spritesheet":
        raise UnsupportedFeature(
            "variant=spritesheet is not supported for Seedance models; "
            "use variant=video or variant=thumbnail (the last frame).",
            param="variant",
        )
    variant = VARIANT_ALIASES.get(raw)
    if variant is None:
        raise InvalidRequest(
            "variant must be one of video, thumbnail, last_frame.", param="variant"
        )
    return variant


async def download_content(request: Request) -> Response:
    principal = await authenticate(request)
    variant = content_variant(request.query_params.get("variant", "video"))
    content = await context(request).videos.content(
        principal, request.path_params["video_id"], variant
    )
    return stored_response(request, content, variant)


def stored_response(request: Request, content: StoredContent, variant: Variant) -> Response:
    """``content`` as a response honouring ``Range``, ``If-Range`` and ``If-None-Match``
    (also used by the dashboard's player)."""
    asset = content.asset
    etag = f'"{asset.key}"'
    media_type = asset.content_type if asset.content_type in SERVED_TYPES else None
    if media_type is None:  # stored before types were checked: bytes only, never rendered
        media_type = "video/mp4" if variant == "video" else "application/octet-stream"
    headers = {
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "Cache-Control": "private, max-age=86400",
        "X-Content-Type-Options": "nosniff",
        "Content-Disposition": content_disposition(
            request.path_params["video_id"],
            EXTENSIONS.get(media_type, "bin"),
            inline=request.query_params.get("disposition") == "inline",
        ),
    }
    if etag_matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    if_range = request.headers.get("if-range")
    range_header = request.headers.get("range") if if_range in (None, etag) else None
    try:
        wanted = parse_range(range_header, asset.size)
    except RangeNotSatisfiable:
        return error_response(
            UnsatisfiableRange(
                f"The requested range is outside the content's {asset.size} bytes.",
                param="range",
            ),
            headers={"Content-Range": f"bytes */{asset.size}"},
        )
    status = 200
    start, end = 0, asset.size
    if wanted is not None:
        status, start, end = 206, wanted.start, wanted.end
        headers["Content-Range"] = wanted.content_range(asset.size)
    headers["Content-Length"] = str(end - start)
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers, media_type=media_type)
    return ContentResponse(
        content.read(start, end), status_code=status, headers=headers, media_type=media_type
    )


class ContentResponse(Response):
    """A body streamed from an async iterator, without a task per response.

    Starlette's ``StreamingResponse`` starts a task group and a disconnect listener for every
    response under uvicorn (ASGI 2.3): about a third of the CPU of serving a 1 MiB video that
    is read in one chunk. Here the listener starts only when a second chunk comes (a long
    body), so a disconnected client still stops the reads of a large video."""

    def __init__(
        self,
        chunks: AsyncIterator[bytes],
        *,
        status_code: int,
        headers: dict[str, str],
        media_type: str,
    ) -> None:
        self.chunks = chunks
        super().__init__(status_code=status_code, headers=headers, media_type=media_type)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        listener: asyncio.Task[None] | None = None
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": self.status_code,
                    "headers": self.raw_headers,
                }
            )
            sent = 0
            async for chunk in self.chunks:
                if sent == 1:
                    listener = asyncio.ensure_future(_until_disconnect(receive))
                elif listener is not None and listener.done():
                    return  # the client went away: stop reading
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                sent += 1
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            if listener is not None:
                listener.cancel()
            aclose = getattr(self.chunks, "aclose", None)  # close the file (or S3 body) now
            if aclose is not None:
                await aclose()


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def content_disposition(video_id: str, extension: str, *, inline: bool) -> str:
    """``attachment; filename="<id>.<ext>"``; the id is ours (``video_...``) but is filtered to
    filename-safe characters all the same."""
    safe = "".join(c for c in video_id if c.isascii() and (c.isalnum() or c in "-_")) or "video"
    return f'{"inline" if inline else "attachment"}; filename="{safe}.{extension}"'
