"""Long videos chained from several upstream jobs: the segment plan, each segment's upstream
request, the chain's price, and the persisted state of a running chain.

A request longer than the model's per-job maximum (or one with a ``segments`` storyboard) is cut
into balanced segments (31 s -> 11 + 10 + 10). The first segment gets the client's content and
``return_last_frame``; each next one starts from the previous segment's last frame
(``first_frame``); the client's own ``last_frame`` goes to the final segment; reference media and
the seed go to every segment. Pure: no I/O; the runner's chain step (``services/chains.py``)
acts on what these return.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

from gateway.domain.pricing import PriceTable, price_of
from gateway.domain.video_request import ContentItem, VideoRequest

# ``unknown``: the segment's submit may or may not have reached the upstream (a lost answer, a
# crash between send and record); the video waits, its money reserved, until that is settled.
SegmentStatus = Literal[
    "pending", "submitting", "unknown", "queued", "in_progress", "stored", "failed"
]
REFERENCE_ROLES = frozenset({"reference_image", "reference_video", "reference_audio"})


def balanced_durations(total: int, max_each: int) -> list[int]:
    """``total`` seconds in the fewest segments of at most ``max_each``, longest first."""
    count = max(1, math.ceil(total / max_each))
    base, extra = divmod(total, count)
    return [base + 1 if index < extra else base for index in range(count)]


def is_chained(request: VideoRequest, max_each: int) -> bool:
    return bool(request.segments) or request.duration > max_each


def plan(request: VideoRequest, max_each: int) -> list[tuple[str, int]]:
    """``(prompt, duration)`` of every segment: the storyboard, or balanced with the prompt."""
    if request.segments:
        return [(segment.prompt, segment.duration) for segment in request.segments]
    return [(request.prompt, seconds) for seconds in balanced_durations(request.duration, max_each)]


def segment_request(
    request: VideoRequest,
    index: int,
    count: int,
    prompt: str,
    duration: int,
    first_frame_url: str | None,
) -> VideoRequest:
    """The upstream request of segment ``index`` of ``count``.

    ``first_frame_url`` is the previous segment's last frame (None for the first segment).
    """
    final = index == count - 1
    content = [item for item in request.content if _belongs(item, index, final)]
    if first_frame_url is not None:
        content.insert(0, ContentItem(type="image_url", url=first_frame_url, role="first_frame"))
    return replace(
        request,
        prompt=prompt,
        duration=duration,
        content=tuple(content),
        return_last_frame=request.return_last_frame if final else True,
        segments=(),
    )


def _belongs(item: ContentItem, index: int, final: bool) -> bool:
    """Reference media go to every segment, the client's frames to the ends they lock."""
    if item.role == "first_frame":
        return index == 0
    if item.role == "last_frame":
        return final
    return item.role in REFERENCE_ROLES


def chain_price(request: VideoRequest, table: PriceTable, max_each: int) -> int:
    """The sum of every segment's price, each with its own surcharges."""
    return sum(segment.price_micros for segment in new_chain(request, table, max_each).segments)


@dataclass(frozen=True, slots=True)
class Segment:
    """One segment of a running chain, as persisted with the job."""

    index: int
    prompt: str
    duration: int
    price_micros: int
    status: SegmentStatus = "pending"
    progress: int = 0
    upstream_id: str | None = None
    submitted_at: float | None = None
    # Submits the upstream certainly refused (connect error, 429, 5xx) and when the first try
    # was: they are tried again with back-off until the deadline after the first try.
    refusals: int = 0
    first_tried_at: float | None = None
    video_key: str | None = None
    video_size: int = 0
    duration_ms: int = 0
    last_frame_url: str | None = None  # the upstream's link: the next segment's first frame
    last_frame_key: str | None = None
    last_frame_size: int = 0
    error_code: str | None = None
    error_message: str | None = None


@dataclass(frozen=True, slots=True)
class Chain:
    """Every segment of a chained video, in order."""

    segments: tuple[Segment, ...]

    def current(self) -> Segment | None:
        """The first segment not yet stored (None: every segment is stored)."""
        return next((s for s in self.segments if s.status != "stored"), None)

    def unknown(self) -> Segment | None:
        """The segment whose submit outcome is unknown, if any (at most one: the chain waits)."""
        return next((s for s in self.segments if s.status == "unknown"), None)

    def charge_with(self, segment: Segment) -> int:
        """The finished segments' price plus ``segment``'s: an unknown segment charged."""
        return self.charge_for_stored() + segment.price_micros

    def previous(self, segment: Segment) -> Segment | None:
        return self.segments[segment.index - 1] if segment.index > 0 else None

    def with_segment(self, index: int, **changes: Any) -> Chain:
        segments = list(self.segments)
        segments[index] = replace(segments[index], **changes)
        return Chain(tuple(segments))

    @property
    def total_seconds(self) -> int:
        return sum(s.duration for s in self.segments)

    def progress(self) -> int:
        """Seconds done (stored, plus the running segment's share), as a percentage below 100."""
        done = sum(
            s.duration if s.status == "stored" else s.duration * s.progress / 100
            for s in self.segments
        )
        return min(99, int(100 * done / max(1, self.total_seconds)))

    def charge_for_stored(self) -> int:
        """What the finished segments cost: charged even when a later segment fails."""
        return sum(s.price_micros for s in self.segments if s.status == "stored")

    def public(self, *, completed: bool = False) -> list[dict[str, Any]]:
        """The Video object's ``segments`` extension: each segment's plan and status.

        ``completed``: the video is complete (a cache hit or a joined request carries the plan
        but not the leader's progress), so every segment is too.
        """
        return [
            {
                "index": s.index,
                "duration": s.duration,
                "status": "completed" if completed else _PUBLIC_STATUS[s.status],
                "progress": 100 if completed or s.status == "stored" else s.progress,
            }
            for s in self.segments
        ]

    def to_json(self) -> str:
        return json.dumps({"segments": [asdict(s) for s in self.segments]}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Chain:
        data = json.loads(text)
        return cls(tuple(Segment(**item) for item in data["segments"]))


_PUBLIC_STATUS: dict[str, str] = {
    "pending": "queued",
    "submitting": "queued",
    "unknown": "queued",  # like the video itself while its outcome is unknown
    "queued": "queued",
    "in_progress": "in_progress",
    "stored": "completed",
    "failed": "failed",
}


def new_chain(request: VideoRequest, table: PriceTable, max_each: int) -> Chain:
    """The chain for ``request``, every segment pending and priced."""
    planned = plan(request, max_each)
    count = len(planned)
    segments = []
    for index, (prompt, duration) in enumerate(planned):
        body = segment_request(request, index, count, prompt, duration, None)
        segments.append(Segment(index, prompt, duration, price_of(body, table)))
    return Chain(tuple(segments))
