"""The two response kinds every sandbox route returns: orjson-encoded JSON and the AIHubMix
error envelope (one renderer, so the error shape cannot drift between routes)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from gateway.sandbox.documents import error_envelope


class JSONBody(Response):
    """JSON rendered with orjson (several times faster than the stdlib for these small dicts)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error_response(status: int, message: str, *, retry_after: int | None = None) -> Response:
    """An AIHubMix error envelope with HTTP ``status`` (and ``Retry-After`` when given)."""
    headers = {"retry-after": str(retry_after)} if retry_after is not None else None
    return JSONBody(error_envelope(message), status_code=status, headers=headers)
