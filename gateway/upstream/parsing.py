"""Reading AIHubMix answers: job JSON in any plausible shape, status words, error bodies.

Pure functions from values to values (no I/O, no httpx): the upstream's Seedance poll JSON is
undocumented, so every known variant (OpenAI, Ark, new-api relays) is accepted here and
normalized into an ``UpstreamJob``. Must not import the client or any I/O library.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

from gateway.upstream.job import UpstreamJob, UpstreamStatus

_STATUS_WORDS: Final[Mapping[str, UpstreamStatus]] = {
    **dict.fromkeys(
        ("queued", "pending", "submitted", "created", "not_start", "not_started", "waiting"),
        "queued",
    ),
    **dict.fromkeys(("running", "processing", "in_progress", "generating"), "in_progress"),
    **dict.fromkeys(("succeeded", "success", "completed", "done"), "completed"),
    **dict.fromkeys(
        ("failed", "failure", "error", "cancelled", "canceled", "expired"),
        "failed",
    ),
}
# Failed jobs without an upstream error code report these raw statuses as the code.
_STATUS_AS_CODE: Final = frozenset({"cancelled", "canceled", "expired"})
_DEFAULT_PROGRESS: Final[Mapping[UpstreamStatus, int]] = {
    "queued": 0,
    "in_progress": 50,
    "completed": 100,
    "failed": 100,
}

_ID_PATHS: Final = (("id",), ("task_id",), ("video_id",), ("data", "id"), ("data", "task_id"))
_STATUS_PATHS: Final = (("status",), ("task_status",), ("data", "status"), ("data", "task_status"))
_PROGRESS_PATHS: Final = (("progress",), ("data", "progress"))
_DURATION_PATHS: Final = (("duration",), ("seconds",), ("data", "duration"), ("data", "seconds"))
_VIDEO_URL_PATHS: Final = (
    ("video_url",),
    ("url",),
    ("output_url",),
    ("content", "video_url"),
    ("metadata", "url"),
    ("data", "video_url"),
    ("data", "url"),
    ("data", 0, "url"),
    ("content", "file_url"),
)
_LAST_FRAME_PATHS: Final = (
    ("last_frame_url",),
    ("content", "last_frame_url"),
    ("metadata", "last_frame_url"),
    ("data", "last_frame_url"),
)

# "(tid: 2026...)", "(request id: ...)", "[trace_id=...]" and the same without brackets at the end.
_REQUEST_ID_RE: Final = re.compile(
    r"\s*[(\[]\s*(?:tid|request[ _-]?id|trace[ _-]?id|x-request-id)\s*[:=][^)\]]*[)\]]"
    r"|\s*\b(?:tid|request[ _-]?id|trace[ _-]?id)\s*[:=]\s*\S+\s*$",
    re.IGNORECASE,
)
_MAX_MESSAGE_CHARS: Final = 500


class MalformedJob(ValueError):
    """The upstream's JSON cannot be read as a job (not an object, or no id anywhere)."""


def map_status(raw: str) -> UpstreamStatus:
    """Map any upstream status word onto the four OpenAI statuses; unknown words keep polling."""
    word = raw.strip().lower().replace("-", "_").replace(" ", "_")
    return _STATUS_WORDS.get(word, "in_progress")


def parse_job(data: Mapping[str, Any], *, fallback_id: str | None = None) -> UpstreamJob:
    """Normalize one submit or poll answer into an ``UpstreamJob``.

    A missing status counts as ``queued`` (a bare ``{"id": ...}`` is a fresh submission);
    ``fallback_id`` is used when the body carries no id, else ``MalformedJob`` is raised.
    """
    if not isinstance(data, Mapping):
        raise MalformedJob("the upstream answer is not a JSON object")
    job_id = _first_text(data, _ID_PATHS) or fallback_id
    if not job_id:
        raise MalformedJob("the upstream answer carries no job id")
    raw_status = _first_text(data, _STATUS_PATHS) or ""
    status: UpstreamStatus = map_status(raw_status) if raw_status else "queued"
    error_code, error_message = _read_error(data)
    if status == "failed":
        word = raw_status.strip().lower()
        error_code = error_code or (word if word in _STATUS_AS_CODE else "upstream_failed")
        error_message = error_message or f"the upstream job ended with status {word!r}"
    return UpstreamJob(
        id=job_id,
        status=status,
        raw_status=raw_status,
        progress=_read_progress(data, status),
        video_url=_first_http_url(data, _VIDEO_URL_PATHS),
        last_frame_url=_first_http_url(data, _LAST_FRAME_PATHS),
        error_code=error_code,
        error_message=error_message,
        duration=_read_duration(data),
    )


def strip_request_ids(message: str) -> str:
    """Drop upstream request/trace ids such as ``(tid: 2026...)`` and bound the length."""
    cleaned = _REQUEST_ID_RE.sub("", message).strip()
    if len(cleaned) > _MAX_MESSAGE_CHARS:
        cleaned = cleaned[: _MAX_MESSAGE_CHARS - 1].rstrip() + "…"
    return cleaned


def error_message_from_body(body: bytes, content_type: str = "") -> str | None:
    """The human message of an error answer (``{"error": {"message"}}`` and kin), ids stripped.

    Plain-text bodies are used as they are; HTML pages and empty bodies give ``None``.
    """
    text = body.decode("utf-8", errors="replace").strip()
    if not text or "html" in content_type.lower() or text.startswith("<"):
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return strip_request_ids(text) or None
    message = _message_of(data)
    if not message:
        return None
    return strip_request_ids(message) or None


def _message_of(data: object) -> str | None:
    if isinstance(data, str):
        return data
    if not isinstance(data, Mapping):
        return None
    for key in ("error", "message", "detail", "msg", "error_message", "fail_reason"):
        value = data.get(key)
        if isinstance(value, Mapping):
            nested = _message_of(value)
            if nested:
                return nested
        elif isinstance(value, str) and value.strip():
            return value
    return None


def _read_error(data: Mapping[str, Any]) -> tuple[str | None, str | None]:
    error = _dig(data, ("error",))
    if error is None:
        error = _dig(data, ("data", "error"))
    code: str | None = None
    message: str | None = None
    if isinstance(error, Mapping):
        code = _text(error.get("code"))
        message = _text(error.get("message"))
    elif isinstance(error, str):
        message = _text(error)
    if message is None:
        message = _text(data.get("fail_reason")) or _text(data.get("error_message"))
    return code, strip_request_ids(message) if message else None


def _read_progress(data: Mapping[str, Any], status: UpstreamStatus) -> int:
    if status == "completed":
        return 100
    for path in _PROGRESS_PATHS:
        value = _number(_dig(data, path))
        if value is not None:
            return max(0, min(100, int(value)))
    return _DEFAULT_PROGRESS[status]


def _read_duration(data: Mapping[str, Any]) -> int | None:
    for path in _DURATION_PATHS:
        value = _number(_dig(data, path))
        if value is not None and value > 0:
            return int(value)
    return None


def _first_http_url(data: Mapping[str, Any], paths: Sequence[tuple[str | int, ...]]) -> str | None:
    for path in paths:
        value = _text(_dig(data, path))
        if value and value.lower().startswith(("https://", "http://")):
            return value
    return None


def _first_text(data: Mapping[str, Any], paths: Sequence[tuple[str | int, ...]]) -> str | None:
    for path in paths:
        value = _text(_dig(data, path))
        if value:
            return value
    return None


def _dig(data: object, path: tuple[str | int, ...]) -> object:
    """Follow keys (str) and list indexes (int); ``None`` as soon as the shape does not fit."""
    node = data
    for step in path:
        if isinstance(step, int):
            if not isinstance(node, Sequence) or isinstance(node, str) or len(node) <= step:
                return None
            node = node[step]
        elif isinstance(node, Mapping):
            node = node.get(step)
        else:
            return None
    return node


def _text(value: object) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | str):
        text = str(value).strip()
        return text or None
    return None


def _number(value: object) -> float | None:
    """An int, a float or a numeric string (``"45"``, ``"5.0"``, ``"45%"``); else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip().rstrip("%"))
        except ValueError:
            return None
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None
