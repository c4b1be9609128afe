"""What the gateway knows of one upstream job after a submit or a poll, whatever shape it came in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

UpstreamStatus = Literal["queued", "in_progress", "completed", "failed"]


@dataclass(frozen=True, slots=True)
class UpstreamJob:
    """An upstream job normalized to the four OpenAI statuses.

    ``raw_status`` keeps the upstream's own word (``succeeded``, ``expired`` ...) for logs;
    ``video_url``/``last_frame_url`` are the signed download links when the poll carried them.
    """

    id: str
    status: UpstreamStatus
    raw_status: str
    progress: int = 0
    video_url: str | None = None
    last_frame_url: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    duration: int | None = None
