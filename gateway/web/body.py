"""Reading a ``POST /v1/videos`` body: size limit, content type, JSON or multipart decoding.

Turns the wire format into a plain dict for ``domain.requests``; every failure is a precise
OpenAI-style 4xx (413, 415 or 400) before anything else happens.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import orjson
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

from gateway.domain.requests import UploadedFile
from gateway.errors import InvalidRequest, PayloadTooLarge, UnsupportedMediaType
from gateway.web.forms import rebuild_form

MAX_FORM_PARTS = 1000


async def read_limited(request: Request, limit: int) -> bytes:
    """The whole body, refusing (413) as soon as it is known to exceed ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"Request body exceeds the gateway's limit of {limit} bytes. "
        "Send large media as https:// URLs rather than data: URLs."
    )


async def decode_body(request: Request, limit: int) -> tuple[dict[str, Any], bool]:
    """The decoded body and whether it came from a form (so strings may stand for numbers)."""
    content_type = request.headers.get("content-type", "")
    media_type = content_type.partition(";")[0].strip().lower()
    if media_type == "application/json":
        return _decode_json(await read_limited(request, limit)), False
    if media_type == "multipart/form-data":
        body = await read_limited(request, limit)
        return rebuild_form(await _parse_multipart(request, body, limit)), True
    raise UnsupportedMediaType(
        f"Unsupported Content-Type {media_type or '(none)'!r}: "
        "send application/json or multipart/form-data."
    )


def _decode_json(raw: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(
            f"The request body is not valid JSON: {exc}.", code="invalid_json"
        ) from exc
    if not isinstance(data, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_type")
    return data


async def _parse_multipart(
    request: Request, body: bytes, limit: int
) -> list[tuple[str, str | UploadedFile]]:
    async def stream() -> AsyncGenerator[bytes, None]:
        yield body
        yield b""

    parser = MultiPartParser(
        request.headers,
        stream(),
        max_files=MAX_FORM_PARTS,
        max_fields=MAX_FORM_PARTS,
        max_part_size=limit,
    )
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise InvalidRequest(
            f"The multipart body could not be parsed: {exc.message}", code="invalid_multipart"
        ) from exc
    items: list[tuple[str, str | UploadedFile]] = []
    try:
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                items.append(
                    (
                        name,
                        UploadedFile(
                            filename=value.filename,
                            content_type=value.content_type or "application/octet-stream",
                            data=await value.read(),
                        ),
                    )
                )
            else:
                items.append((name, value))
    finally:
        await form.close()
    return items
